import { createHash } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { GatewayError } from './errors';

/**
 * WeChat / WeCom callback XML: `<xml><ToUserName><![CDATA[..]]></ToUserName>...</xml>`.
 *
 * The body comes from the internet (plaintext mode needs only a token-signed query string, and the
 * signature does not cover the body), so parsing is defensive and cheap, in this order:
 *   1. size cap (`too_large`), from the string's length alone when that suffices;
 *   2. one linear scan that reads the markup exactly as the parser will (`refuseHostileMarkup`):
 *      every `<` outside a CDATA section must open a CDATA section or be a bare tag (`<Name>`,
 *      `</Name>`, `<Name/>`); any other `<!` (DOCTYPE, ENTITY, ELEMENT, ATTLIST, a comment, ...),
 *      any `<?` other than one leading `<?xml ...?>`, and any tag with attributes are refused
 *      (`hostile_xml`, or `bad_xml` for a plain attribute), so billion laughs and XXE never reach
 *      the parser;
 *   3. well-formedness (fast-xml-parser's validator: the parser itself accepts unclosed tags);
 *   4. parsing with entity processing off and every value kept as a string.
 * CDATA content is data, and step 2 does not look into it: a user who types "<?php" or
 * "<!DOCTYPE html>" in a message is not hostile, and inside CDATA it is only text. That is sound
 * only because step 2 finds the same CDATA sections as the parser: a `<![CDATA[` the scan skips
 * must be one the parser reads as CDATA too. Quotes are what could tell them apart (inside an
 * attribute value `<![CDATA[`, `<!--` or `<!DOCTYPE` are text to the parser, and a quoted `>`
 * does not end the tag), so tags may not have attributes at all, and the scan never has to track
 * quotes: without them the parser ends every tag at its first `>`, and the scan does too.
 * Comments are refused rather than skipped for the same reason (nothing has to be matched up).
 * WeChat and WeCom send no attributes, comments, DTDs or processing instructions.
 *
 * Decisions, for whoever reads the fields:
 * - Values stay strings, exactly as sent: no number parsing (a 64-bit MsgId such as
 *   4561255354251345929 does not survive as a JS number).
 * - Whitespace: text outside CDATA is trimmed (it is pretty-printing between elements, or
 *   numbers), CDATA content is kept byte for byte (a text message's spaces are the user's).
 * - Entities are not decoded: `&amp;` outside CDATA stays `&amp;`. WeChat puts every free-text
 *   field in CDATA, so this only matters for hand-written XML.
 * - Attributes are refused (WeChat sends none; see step 2).
 * - Nested elements (ScanCodeInfo, SendPicsInfo, SendLocationInfo, WeCom's event payloads) stay
 *   nested objects of strings rather than JSON text: the fields go into a JSON frame as they are,
 *   and agents should not have to parse JSON inside JSON. An element that repeats becomes an
 *   array, and `<item>` (WeChat's list entry, e.g. SendPicsInfo.PicList.item) is always an array,
 *   so that one picture and two pictures have the same shape.
 * - Text mixed with elements (`<A>t<B/></A>`) is not WeChat's and is refused as `bad_xml`.
 * - Element names that are Object.prototype properties (`__proto__`, `constructor`, `toString`,
 *   `hasOwnProperty`, ...) are refused as `bad_xml`, and the returned objects have no prototype.
 */

export type WechatXmlFailure =
  /** The body is larger than the cap. */
  | 'too_large'
  /** A DTD, entity declaration, comment or processing instruction (anywhere, attribute values included): refused before parsing. */
  | 'hostile_xml'
  /** Not well-formed XML, empty, or not a single `<xml>` root with element children. */
  | 'bad_xml'
  /** Well-formed, but a field a message type requires is missing or not text. */
  | 'bad_message'
  /** A MsgType toWechatMessage does not model (the fields themselves are fine). */
  | 'unsupported_message';

export class WechatXmlError extends GatewayError {
  constructor(
    readonly reason: WechatXmlFailure,
    message: string,
  ) {
    super(reason === 'too_large' ? 'too_large' : 'bad_request', message);
    this.name = 'WechatXmlError';
  }
}

export type WechatXmlValue = string | WechatXmlObject | readonly WechatXmlValue[];
export interface WechatXmlObject {
  readonly [name: string]: WechatXmlValue;
}
/** The children of the `<xml>` root by element name. */
export type WechatFields = WechatXmlObject;

export const DEFAULT_MAX_XML_BYTES = 64 * 1024;
/** WeChat's deepest documented nesting is 5 (xml > SendPicsInfo > PicList > item > PicMd5Sum). */
const MAX_DEPTH = 16;
const TEXT_NODE = '#text';
// Only at the very start (after an optional BOM), as XML requires; `<?xml-stylesheet` is a PI.
// Quotes must pair up and hold no `<`, `>` or `?`: the parser skips quoted values when it looks for
// the closing `?>`, so with a stray quote (`<?xml v="?><![CDATA[ ... "?>`) it would end the
// declaration later than this pattern does, and read as markup what the scan took for CDATA.
const XML_DECLARATION = /<\?xml[ \t\r\n][^<>?"']*(?:(?:"[^"<>?]*"|'[^'<>?]*')[^<>?"']*)*\?>/y;
/**
 * A tag without attributes: a name, optional whitespace, `>` or `/>`. No quote can occur in it, so
 * the parser's tag ends at the same `>`. (Names the validator would refuse, e.g. `<1A>`, pass
 * here and are refused there as bad_xml.)
 */
const BARE_TAG = /<\/?[^\s<>"'\/=!?&]+[ \t\r\n]*\/?>/y;
/** Markup that is hostile wherever it appears outside CDATA: a `<!` other than CDATA, or a `<?`. */
const DECLARATION_OR_PI = /<!(?!\[CDATA\[)|<\?/;

/** Created at first use, not at import: most functions that bundle this module never parse XML. */
let parser: XMLParser | undefined;
const xmlParser = (): XMLParser => (parser ??= new XMLParser({
  processEntities: false,
  htmlEntities: false,
  ignoreAttributes: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  textNodeName: TEXT_NODE,
  cdataPropName: false,
  commentPropName: false,
  isArray: (tagName) => tagName === 'item',
  maxNestedTags: MAX_DEPTH,
  // The library renames elements such as <toString> to "__toString", which would merge them with a
  // real <__toString>; WeChat uses none of these names, so they are refused instead.
  onDangerousProperty: () => {
    throw new WechatXmlError('bad_xml', 'element names that are Object.prototype properties are not accepted');
  },
}));

/** Parses a callback body (or a decrypted message) into the fields of its `<xml>` root. */
export function parseWechatXml(text: string, maxBytes = DEFAULT_MAX_XML_BYTES): WechatFields {
  // UTF-8 never takes fewer bytes than UTF-16 code units, so a long string is refused unmeasured.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, 'utf8') > maxBytes)) {
    throw new WechatXmlError('too_large', `XML body over ${maxBytes} bytes`);
  }
  refuseHostileMarkup(text);

  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    // Code and position only: the validator's message quotes the input.
    throw new WechatXmlError('bad_xml', `malformed XML (${valid.err.code} at line ${valid.err.line}, column ${valid.err.col})`);
  }
  let parsed: unknown;
  try {
    parsed = xmlParser().parse(text);
  } catch (err) {
    if (err instanceof WechatXmlError) throw err;
    // e.g. nesting deeper than MAX_DEPTH, or <__proto__> / <constructor> (the library refuses those).
    throw new WechatXmlError('bad_xml', 'malformed XML (refused by the parser)');
  }
  if (!isRecord(parsed) || Object.keys(parsed).length !== 1 || !Object.hasOwn(parsed, 'xml')) {
    throw new WechatXmlError('bad_xml', 'the root element must be <xml>');
  }
  const root = parsed.xml;
  if (root === '') return Object.create(null) as WechatFields; // <xml/> or <xml></xml>
  if (!isRecord(root)) throw new WechatXmlError('bad_xml', '<xml> must contain elements, not text');
  return normalize(root, 1) as WechatFields;
}

/**
 * The pre-scan (step 2 above). Reads the document the way the parser will: text, bare tags and
 * CDATA sections, nothing else. Everything outside CDATA is looked at, attribute values included
 * (a tag with attributes is refused, and why it is refused looks at the rest of the document).
 */
function refuseHostileMarkup(text: string): void {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  if (text.startsWith('<?', i)) {
    XML_DECLARATION.lastIndex = i;
    if (!XML_DECLARATION.test(text)) throw new WechatXmlError('hostile_xml', 'processing instructions are not accepted');
    i = XML_DECLARATION.lastIndex;
  }
  for (;;) {
    const lt = text.indexOf('<', i);
    if (lt < 0) return;
    const next = text[lt + 1];
    if (next === '?') {
      throw new WechatXmlError('hostile_xml', 'processing instructions are not accepted (only a leading <?xml ...?> declaration)');
    }
    if (next === '!') {
      if (!text.startsWith('<![CDATA[', lt)) {
        // <!DOCTYPE, <!ENTITY, <!ELEMENT, <!ATTLIST, <!NOTATION, in any case: DTDs are how entity
        // expansion (billion laughs) and external entities (XXE) get in. Comments too (<!--).
        throw new WechatXmlError('hostile_xml', 'DTDs, entity declarations and comments are not accepted');
      }
      const end = text.indexOf(']]>', lt + 9);
      if (end < 0) throw new WechatXmlError('bad_xml', 'malformed XML (unterminated CDATA section)');
      i = end + 3;
      continue;
    }
    BARE_TAG.lastIndex = lt;
    if (BARE_TAG.test(text)) {
      i = BARE_TAG.lastIndex;
      continue;
    }
    // Attributes, or not a tag at all (`a < b`, `<1 A>`). Past a quote the scan can no longer tell
    // data from markup, so any declaration or PI further on counts as hostile.
    if (DECLARATION_OR_PI.test(text.slice(lt))) {
      throw new WechatXmlError('hostile_xml', 'a declaration or processing instruction after a tag with attributes (or a stray "<")');
    }
    throw new WechatXmlError('bad_xml', 'malformed XML (attributes are not accepted, or a "<" that does not start a tag)');
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Copies the parser's output into prototype-less objects, refusing mixed content. */
function normalize(value: unknown, depth: number): WechatXmlValue {
  if (typeof value === 'string') return value;
  if (depth > MAX_DEPTH) throw new WechatXmlError('bad_xml', `elements nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(value)) return value.map((item) => normalize(item, depth + 1));
  if (!isRecord(value)) throw new WechatXmlError('bad_xml', 'unexpected value in XML');
  const out: Record<string, WechatXmlValue> = Object.create(null);
  for (const [name, child] of Object.entries(value)) {
    if (name === TEXT_NODE) throw new WechatXmlError('bad_xml', 'text mixed with elements is not accepted');
    out[name] = normalize(child, depth + 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Typed messages

interface WechatMessageBase {
  ToUserName: string;
  FromUserName: string;
  /** Unix seconds. */
  CreateTime: number;
  /** WeCom only: the application that received the message. */
  AgentID?: string;
  /** Every field as parsed, including those the type does not name. */
  fields: WechatFields;
}

export interface WechatTextMessage extends WechatMessageBase {
  MsgType: 'text';
  Content: string;
  MsgId: string;
}
export interface WechatImageMessage extends WechatMessageBase {
  MsgType: 'image';
  PicUrl: string;
  MediaId: string;
  MsgId: string;
}
export interface WechatVoiceMessage extends WechatMessageBase {
  MsgType: 'voice';
  MediaId: string;
  Format: string;
  /** Speech recognition result, when the account has it enabled. */
  Recognition?: string;
  MsgId: string;
}
export interface WechatVideoMessage extends WechatMessageBase {
  MsgType: 'video' | 'shortvideo';
  MediaId: string;
  ThumbMediaId: string;
  MsgId: string;
}
export interface WechatLocationMessage extends WechatMessageBase {
  MsgType: 'location';
  /** Latitude, as sent (decimal text). */
  Location_X: string;
  /** Longitude, as sent (decimal text). */
  Location_Y: string;
  Scale: string;
  Label: string;
  MsgId: string;
}
export interface WechatLinkMessage extends WechatMessageBase {
  MsgType: 'link';
  Title: string;
  Description: string;
  Url: string;
  MsgId: string;
}
export interface WechatEventMessage extends WechatMessageBase {
  MsgType: 'event';
  /** As sent: `subscribe`, `CLICK`, `SCAN`, `LOCATION`, WeCom's `change_contact`, ... */
  Event: string;
  EventKey?: string;
  Ticket?: string;
}

export type WechatMessage =
  | WechatTextMessage
  | WechatImageMessage
  | WechatVoiceMessage
  | WechatVideoMessage
  | WechatLocationMessage
  | WechatLinkMessage
  | WechatEventMessage;

export const WECHAT_MESSAGE_TYPES = ['text', 'image', 'voice', 'video', 'shortvideo', 'location', 'link', 'event'] as const;

type Fields = Readonly<Record<string, unknown>>;

function field(fields: Fields, name: string, { nonEmpty }: { nonEmpty: boolean }): string {
  const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
  if (value === undefined) throw new WechatXmlError('bad_message', `${name} is required`);
  if (typeof value !== 'string') throw new WechatXmlError('bad_message', `${name} must be text`);
  if (nonEmpty && value === '') throw new WechatXmlError('bad_message', `${name} must not be empty`);
  return value;
}
/** Identifiers and types: present and non-empty. */
const id = (fields: Fields, name: string) => field(fields, name, { nonEmpty: true });
/** Free text (a link's description, a location's label): present, possibly empty. */
const text = (fields: Fields, name: string) => field(fields, name, { nonEmpty: false });
function optional(fields: Fields, name: string): string | undefined {
  return Object.hasOwn(fields, name) ? text(fields, name) : undefined;
}

function createTime(fields: Fields): number {
  const value = id(fields, 'CreateTime');
  if (!/^\d{1,12}$/.test(value)) throw new WechatXmlError('bad_message', 'CreateTime must be unix seconds');
  return Number(value);
}

/**
 * The typed view of parsed fields. Accepts any record (e.g. fields that went through a queue as
 * JSON); required fields that are missing, empty identifiers or non-text values are `bad_message`
 * naming the field; a MsgType not modelled here is `unsupported_message` (its fields are still
 * usable as they are).
 */
export function toWechatMessage(fields: Fields): WechatMessage {
  const msgType = id(fields, 'MsgType');
  const base: WechatMessageBase = {
    ToUserName: id(fields, 'ToUserName'),
    FromUserName: id(fields, 'FromUserName'),
    CreateTime: createTime(fields),
    fields: fields as WechatFields,
  };
  const agentId = optional(fields, 'AgentID');
  if (agentId !== undefined) base.AgentID = agentId;

  switch (msgType) {
    case 'text':
      return { ...base, MsgType: msgType, Content: text(fields, 'Content'), MsgId: id(fields, 'MsgId') };
    case 'image':
      return { ...base, MsgType: msgType, PicUrl: id(fields, 'PicUrl'), MediaId: id(fields, 'MediaId'), MsgId: id(fields, 'MsgId') };
    case 'voice': {
      const message: WechatVoiceMessage = { ...base, MsgType: msgType, MediaId: id(fields, 'MediaId'), Format: id(fields, 'Format'), MsgId: id(fields, 'MsgId') };
      const recognition = optional(fields, 'Recognition');
      if (recognition !== undefined) message.Recognition = recognition;
      return message;
    }
    case 'video':
    case 'shortvideo':
      return { ...base, MsgType: msgType, MediaId: id(fields, 'MediaId'), ThumbMediaId: id(fields, 'ThumbMediaId'), MsgId: id(fields, 'MsgId') };
    case 'location':
      return {
        ...base,
        MsgType: msgType,
        Location_X: id(fields, 'Location_X'),
        Location_Y: id(fields, 'Location_Y'),
        Scale: id(fields, 'Scale'),
        Label: text(fields, 'Label'),
        MsgId: id(fields, 'MsgId'),
      };
    case 'link':
      return { ...base, MsgType: msgType, Title: text(fields, 'Title'), Description: text(fields, 'Description'), Url: id(fields, 'Url'), MsgId: id(fields, 'MsgId') };
    case 'event': {
      const message: WechatEventMessage = { ...base, MsgType: msgType, Event: id(fields, 'Event') };
      const eventKey = optional(fields, 'EventKey');
      if (eventKey !== undefined) message.EventKey = eventKey;
      const ticket = optional(fields, 'Ticket');
      if (ticket !== undefined) message.Ticket = ticket;
      return message;
    }
    default:
      throw new WechatXmlError('unsupported_message', `MsgType ${JSON.stringify(msgType.slice(0, 32))} is not modelled`);
  }
}

/**
 * WeChat's retry key (docs/wechat.md): `MsgId` when the message has one, else
 * `FromUserName:CreateTime:Event` (events have no MsgId; a message without an Event gets an empty
 * one). The separator keeps "ab"+"12" and "a"+"b12" apart; neither openIds, WeCom user ids nor
 * timestamps contain ":". Retries of one callback carry the same values, so they get the same key.
 */
export function dedupKeyOf(fields: Fields): string {
  // An empty MsgId is treated as absent rather than refused: refusing would make WeChat retry
  // (and then drop) a message whose other fields are fine.
  const msgId = optional(fields, 'MsgId') ?? optional(fields, 'MsgID'); // template-send events say MsgID
  if (msgId) return msgId;
  // Without a MsgId, FromUserName + CreateTime + Event alone would merge distinct events of one
  // second (two menu clicks with different EventKeys, WeCom's bulk "sys" changes). WeChat's
  // retries resend the same XML, so the whole field set keys them exactly.
  id(fields, 'FromUserName');
  id(fields, 'CreateTime');
  return `${optional(fields, 'FromUserName')}:${optional(fields, 'CreateTime')}:${optional(fields, 'Event') ?? ''}:${createHash('sha256').update(canonical(fields)).digest('hex')}`;
}

/** Field set as JSON with keys sorted at every level, so equal XML gives equal text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
