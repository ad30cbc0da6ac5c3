import { createHash, createHmac } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import WebSocket, { type RawData } from 'ws';
import { SignJWT, base64url } from 'jose';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { eventually, refusedUpgradeStatus, tokenFor } from '../support/ws-test-client';

/**
 * Hostile inputs, table-driven, against ONE real local runtime (the real authorizer and route
 * handlers, DynamoDB Local, the SQS emulator and its poller, the emulated WebSocket server).
 *
 * Every case states its documented answer (docs/protocol-notes.md, frames.ts) and is checked for
 * (1) the reply: an error frame with its code and the echoed `id` exactly when frameIdOf echoes
 *     one (a string of at most 128 UTF-16 units, empty included, in a text frame that parses and
 *     nests at most 64 deep),
 *     the ack/pong/sync of a valid edge input, the HTTP status of a refused upgrade, or the close
 *     code;
 * (2) the socket's fate (open, or closed with which code);
 * (3) nothing queued or stored where it should not be: a refused send leaves the inbox of its
 *     (fresh, per-case) recipient, of every literal `to` id and of the sender empty after the
 *     queue drains; an accepted edge input is stored once per audience inbox and its body comes
 *     back EXACTLY (deep-equal and the same JSON text) through `sync`;
 * (4) a `ping` on the same socket is still answered with `pong` afterwards when it should be open.
 *
 * All cases run in beforeAll, concurrently: frame cases on pools of sockets (each socket runs its
 * cases one after another and is reused while it survives), cases that may end their socket on
 * sockets of their own, upgrades in batches. Each generated test then asserts the observation of
 * its case, so a failure names the case. The counts are printed in afterAll.
 */

// ---- limits as documented ---------------------------------------------------------------------

const KiB = 1024;
const MAX_BODY_BYTES = 32 * KiB;
const MAX_MESSAGE_BYTES = 128 * KiB;
const MAX_DEPTH = 64;
const JWT_SECRET = 'local-dev-jwt-secret';
/**
 * Binary frames: docs/protocol-notes.md ("Binary frames", since 5d4f6b2) documents what API
 * Gateway does: the connection is closed with 1003, no route runs, nothing is decoded as text.
 * (The route middleware would answer `bad_request` "binary frames are not supported; send JSON
 * text frames" to a base64 event, which no route receives any more.)
 */
const BINARY_FRAME_ANSWER: Expect = { reply: 'close', code: 1003 };
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const RESUME_CURSOR = /^r\.[0-9A-HJKMNP-TV-Z]{26}$/;
const NEXT_CURSOR = /^n\.[0-9A-HJKMNP-TV-Z]{26}\.[0-9A-HJKMNP-TV-Z]{26}$/;

const POOL_SIZE = { refuse: 8, accept: 8, sync: 3 } as const;
const refuseUsers = Array.from({ length: POOL_SIZE.refuse }, (_, i) => `hx-bad-${i + 1}`);
const acceptUsers = Array.from({ length: POOL_SIZE.accept }, (_, i) => `hx-ok-${i + 1}`);
const SYNC_USER = 'hx-sync';
const SYNC_SETUP_BODIES = [{ n: 1, text: 'first' }, { n: 2, text: '第二' }, { n: 3, text: '😀 third' }];

// ---- table helpers ------------------------------------------------------------------------------

let seq = 0;
/** A user/group id no other case uses, so inbox counts are exact. */
const fresh = (prefix: string) => `hx-${prefix}${++seq}`;
let idSeq = 0;
const nextId = (prefix = 'c') => `${prefix}${++idSeq}`;

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
function sized<T>(value: T, expectedBytes: number): T {
  const actual = bytes(JSON.stringify(value));
  if (actual !== expectedBytes) throw new Error(`table arithmetic: ${actual} bytes, meant ${expectedBytes}`);
  return value;
}
/** Deterministic pseudo-random bytes, so runs are reproducible. */
function prng(seed: string, n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, len = 0; len < n; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    parts.push(block);
    len += block.length;
  }
  return Buffer.concat(parts).subarray(0, n);
}
const nestedArrays = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
const nestedObjects = (levels: number) => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);

/** Deepest nesting of arrays/objects in JSON text (strings skipped), as frames.ts measures it. */
function textDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if (c === ']' || c === '}') depth--;
  }
  return max;
}

/**
 * The id a reply must echo (frameIdOf): a string id of 1-128 UTF-16 units of well-formed Unicode
 * (no lone surrogate) in a parseable, <= 64-deep text frame.
 */
function expectedEcho(sent: Wire): string | undefined {
  const frame = textOf(sent);
  if (frame === undefined || frame === '' || textDepth(frame) > MAX_DEPTH) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    return undefined;
  }
  const id = value !== null && typeof value === 'object' ? (value as { id?: unknown }).id : undefined;
  const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  return typeof id === 'string' && id.length >= 1 && id.length <= 128 && !loneSurrogate.test(id) ? id : undefined;
}

function parsedOrUndefined(sent: Wire): Record<string, any> | undefined {
  const frame = textOf(sent);
  if (frame === undefined) return undefined;
  try {
    const value = JSON.parse(frame);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

// ---- case model ---------------------------------------------------------------------------------

/**
 * What goes on the wire: one text frame, one binary frame, or one text message sent as several
 * frames (fragments, split on byte boundaries; API Gateway limits a frame to 32 KB, a message to 128 KiB).
 */
type Wire = string | Buffer | { fragments: Buffer[] };
/** The text of a text message (fragments joined), or undefined for a binary frame. */
function textOf(sent: Wire): string | undefined {
  if (typeof sent === 'string') return sent;
  if (Buffer.isBuffer(sent)) return undefined;
  return Buffer.concat(sent.fragments).toString('utf8');
}
const fragmentsOf = (text: string, frameBytes = 32 * KiB): Wire => {
  const buffer = Buffer.from(text, 'utf8');
  const fragments: Buffer[] = [];
  for (let at = 0; at < buffer.length; at += frameBytes) fragments.push(buffer.subarray(at, at + frameBytes));
  return { fragments };
};

type Expect =
  | { reply: 'error'; code: string; message?: string | RegExp }
  | { reply: 'ack' }
  | { reply: 'pong' }
  | { reply: 'sync'; count?: number; more?: boolean }
  | { reply: 'close'; code: number };

type Pool = 'refuse' | 'accept' | 'sync' | 'own';

interface FrameCase {
  category: string;
  name: string;
  frame: Wire | (() => string);
  expect: Expect;
  pool: Pool;
  /** Inboxes that must stay empty (refused sends): fresh recipients, group members, literal `to` ids. */
  quiet: string[];
  /** Acks: inboxes that must hold exactly one row of the message (besides the sender's, checked via sync). */
  audience: string[];
  /** Acks: each of these inboxes must hold no other row than this message's. */
  exclusive: string[];
}

const frameCases: FrameCase[] = [];

function literalRecipients(frame: Wire | (() => string)): string[] {
  if (typeof frame === 'function') return [];
  const to = parsedOrUndefined(frame)?.to;
  if (to === null || typeof to !== 'object' || Array.isArray(to)) return [];
  return [to.user, to.group].filter((v): v is string => typeof v === 'string');
}

function refused(category: string, name: string, frame: FrameCase['frame'], code: string, opts: { quiet?: string[]; message?: string | RegExp; pool?: Pool } = {}) {
  frameCases.push({
    category,
    name,
    frame,
    expect: { reply: 'error', code, message: opts.message },
    pool: opts.pool ?? 'refuse',
    quiet: [...new Set([...(opts.quiet ?? []), ...literalRecipients(frame)])],
    audience: [],
    exclusive: [],
  });
}

function accepted(category: string, name: string, frame: string, opts: { audience?: string[]; exclusive?: string[] } = {}) {
  const audience = opts.audience ?? literalRecipients(frame);
  frameCases.push({ category, name, frame, expect: { reply: 'ack' }, pool: 'accept', quiet: [], audience, exclusive: opts.exclusive ?? audience });
}

function answered(category: string, name: string, frame: FrameCase['frame'], expect: Expect, pool: Pool = 'refuse') {
  frameCases.push({ category, name, frame, expect, pool, quiet: [], audience: [], exclusive: [] });
}

const send = (fields: Record<string, unknown>) => JSON.stringify({ action: 'send', ...fields });
/** A send frame whose body is given as raw JSON text (escapes and key order exactly as written). */
const sendWithBodyText = (to: string, bodyText: string, id?: string) =>
  `{"action":"send",${id === undefined ? '' : `"id":${JSON.stringify(id)},`}"to":{"user":${JSON.stringify(to)}},"body":${bodyText}}`;

/** Groups the setup creates: [groupId, members]. */
const groupsToCreate: Array<[string, string[]]> = [];

// ---- 1. frames that are not JSON objects --------------------------------------------------------

const notJson: Array<[string, string]> = [
  ['an empty frame', ''],
  ['a single space', ' '],
  ['only whitespace and newlines', '\n\t\r '],
  ['a bare word', 'nope'],
  ['a lone opening brace', '{'],
  ['a lone closing brace', '}'],
  ['a truncated send', '{"action":"send", nope'],
  ['single-quoted JSON', "{'action':'ping'}"],
  ['unquoted keys', '{action:"ping"}'],
  ['a trailing comma', '{"action":"ping",}'],
  ['two JSON objects in one frame', '{"action":"ping"} {"action":"ping"}'],
  ['trailing garbage after the object', '{"action":"ping"}x'],
  ['a byte order mark before the object', '\uFEFF{"action":"ping","id":"bom"}'],
  ['NaN', 'NaN'],
  ['Infinity', 'Infinity'],
  ['undefined', 'undefined'],
  ['a hex number', '0x10'],
  ['a number with a leading zero', '01'],
  ['a comment inside the object', '{"action":"ping",/* c */"id":"x"}'],
  ['an unterminated string', '{"action":"ping","id":"unterminated}'],
  ['an invalid escape', '{"action":"ping","id":"\\x41"}'],
  ['a short unicode escape', '{"action":"ping","id":"\\u12"}'],
  ['a raw newline inside a string', '{"action":"ping","id":"a\nb"}'],
  ['a raw NUL inside a string', '{"action":"ping","id":"a\u0000b"}'],
  ['an exponent without digits', '{"action":"ping","n":1e}'],
  ['an extra closing brace', '{"action":"ping"}}'],
  ['a lone opening bracket', '['],
  ['an unterminated top-level string', '"unterminated'],
  ['two literals', 'true false'],
  ['a JavaScript object literal with a function', '{"action":"ping","f":function(){}}'],
];
for (const [name, frame] of notJson) refused('frame not JSON', name, frame, 'bad_request');

const notObject: Array<[string, string]> = [
  ['an empty array', '[]'],
  ['an array of numbers', '[1,2,3]'],
  ['a ping inside an array', '[{"action":"ping","id":"in-array"}]'],
  ['a send inside an array', `[${send({ id: 'arr-send', to: { user: 'hx-never-array' }, body: 1 })}]`],
  ['the number 1', '1'],
  ['a negative float', '-1.5e3'],
  ['zero', '0'],
  ['a number that overflows to Infinity', '1e999'],
  ['a string', '"ping"'],
  ['a string holding a JSON object', JSON.stringify(JSON.stringify({ action: 'ping', id: 'str' }))],
  ['true', 'true'],
  ['false', 'false'],
  ['null', 'null'],
  ['an array padded with whitespace', '  [ ]  '],
];
for (const [name, frame] of notObject) refused('frame not an object', name, frame, 'bad_request', { quiet: ['hx-never-array'] });

// ---- 2. action ----------------------------------------------------------------------------------

const badActions: Array<[string, unknown]> = [
  ['a null action', null],
  ['a numeric action', 1],
  ['a boolean action', true],
  ['an array action', ['send']],
  ['an object action', { name: 'send' }],
  ['an empty action', ''],
  ['the unknown action "pong"', 'pong'],
  ['the unknown action "message"', 'message'],
  ['the unknown action "ack"', 'ack'],
  ['"SEND" in upper case', 'SEND'],
  ['"Ping" capitalised', 'Ping'],
  ['"ping " with a trailing space', 'ping '],
  ['" ping" with a leading space', ' ping'],
  ['"ping" followed by NUL', 'ping\u0000'],
  ['"send" followed by a newline', 'send\n'],
  ['"$connect"', '$connect'],
  ['"$disconnect"', '$disconnect'],
  ['"$default"', '$default'],
  ['"$send"', '$send'],
  ['a lone "$"', '$'],
  ['"__proto__"', '__proto__'],
  ['"constructor"', 'constructor'],
  ['"toString"', 'toString'],
  ['"hasOwnProperty"', 'hasOwnProperty'],
  ['a 10,000-character action', 'x'.repeat(10_000)],
  ['a CJK action', '发送'],
  ['an emoji action', '😀'],
  ['a dotted action "sync.ping"', 'sync.ping'],
];
refused('action', 'no action at all ({})', '{}', 'bad_request');
refused('action', 'no action, only an id', JSON.stringify({ id: 'no-action' }), 'bad_request');
refused('action', '"Action" instead of "action"', JSON.stringify({ Action: 'ping', id: 'cap-key' }), 'bad_request');
refused('action', '"type" instead of "action"', JSON.stringify({ type: 'ping', id: 'type-key' }), 'bad_request');
for (const [name, action] of badActions) refused('action', name, JSON.stringify({ action, id: nextId('act') }), 'bad_request');
{
  const r = fresh('r');
  refused('action', 'a send frame with action "$connect" stores nothing', send({ action: '$connect', id: 'as-connect', to: { user: r }, body: 1 }), 'bad_request');
  const r2 = fresh('r');
  refused('action', 'a send frame with action "$default" stores nothing', send({ action: '$default', to: { user: r2 }, body: 1 }), 'bad_request');
}
answered('action', 'a duplicated "action" key: the last one ("ping") wins for the route and the handler', '{"action":"nope","action":"ping","id":"dup-action-1"}', { reply: 'pong' });
refused('action', 'a duplicated "action" key: the last one ("nope") wins', '{"action":"ping","action":"nope","id":"dup-action-2"}', 'bad_request');

// ---- 3. send: `to` ------------------------------------------------------------------------------

{
  const toShapes: Array<[string, (r: string) => unknown]> = [
    ['to is an empty object', () => ({})],
    ['to.user is a number', () => ({ user: 1 })],
    ['to has both user and group', (r) => ({ user: r, group: fresh('g') })],
    ['to.users is an array', (r) => ({ users: [r] })],
    ['to is null', () => null],
    ['to is an empty array', () => []],
    ['to is a bare string', (r) => r],
    ['to is a number', () => 5],
    ['to is true', () => true],
    ['to.user is null', () => ({ user: null })],
    ['to.user is an array', (r) => ({ user: [r] })],
    ['to.user is an object', (r) => ({ user: { id: r } })],
    ['to.group is a number', () => ({ group: 1 })],
    ['to.group is null', () => ({ group: null })],
    ['to has an extra key next to user', (r) => ({ user: r, extra: 1 })],
    ['to has user and wechat', (r) => ({ user: r, wechat: { accountId: 'acc', openId: 'o1' } })],
    ['to.channel', (r) => ({ channel: r })],
    ['to.User capitalised', (r) => ({ User: r })],
    ['to is a string holding a JSON object', (r) => JSON.stringify({ user: r })],
    ['to.wechat is an empty object', () => ({ wechat: {} })],
    ['to.wechat is a string', () => ({ wechat: 'x' })],
    ['to.wechat.accountId is invalid', () => ({ wechat: { accountId: 'a b', openId: 'o1' } })],
    ['to.wechat.openId is empty', () => ({ wechat: { accountId: 'acc', openId: '' } })],
  ];
  for (const [name, toOf] of toShapes) {
    const r = fresh('r');
    refused('send.to', name, send({ id: nextId('to'), to: toOf(r), body: { text: 'x' } }), 'bad_request', { quiet: [r] });
  }
  const r = fresh('r');
  refused('send.to', 'to is missing', send({ id: nextId('to'), body: { text: 'x', user: r } }), 'bad_request', { quiet: [r] });
  refused('send.to', 'to.wechat from a user who is not an agent of the account', send({ id: nextId('to'), to: { wechat: { accountId: 'acc-1', openId: 'open-1' } }, body: { text: 'x' } }), 'forbidden', {
    message: /wechat:acc-1/,
  });
  refused('send.to', 'to.wechat without an id, from a non-agent, is forbidden too', send({ to: { wechat: { accountId: 'acc-2', openId: 'open-2' } }, body: 1 }), 'forbidden');
}

// ---- 4. send: invalid user and group ids --------------------------------------------------------

const invalidIds: Array<[string, string]> = [
  ['empty', ''],
  ['129 characters', 'u'.repeat(129)],
  ['a space inside', 'a b'],
  ['a leading space', ' hx-a'],
  ['a trailing space', 'hx-a '],
  ['a slash', 'a/b'],
  ['a hash (the key separator)', 'a#b'],
  ['"../x"', '../x'],
  ['a key-like "inbox#x"', 'inbox#hx-x'],
  ['a Latin-1 letter', 'ü'],
  ['CJK', '用户'],
  ['an emoji', '😀'],
  ['a NUL', '\u0000'],
  ['a trailing NUL', 'hx-a\u0000'],
  ['a newline', 'a\nb'],
  ['a tab', 'a\tb'],
  ['a percent-encoded slash', 'a%2Fb'],
  ['a plus', 'a+b'],
  ['a comma', 'a,b'],
  ['a double quote', 'a"b'],
  ['a backslash', 'a\\b'],
  ['an asterisk', 'a*b'],
  ['a question mark', 'a?b'],
  ['a zero-width space', 'a\u200bb'],
  ['a fullwidth letter', 'ａ'],
  ['a combining accent', 'a\u0301'],
  ['a lone surrogate', 'a\ud800'],
];
for (const kind of ['user', 'group'] as const) {
  for (const [name, id] of invalidIds) {
    refused(`send.to.${kind} id`, `to.${kind} ${name}`, send({ id: nextId('bid'), to: { [kind]: id }, body: { text: 'x' } }), 'bad_request');
  }
}

// ---- 5. send/ping/sync: the client frame `id` ----------------------------------------------------

{
  const badFrameIds: Array<[string, unknown]> = [
    ['a number', 5],
    ['zero', 0],
    ['a float', 1.5],
    ['true', true],
    ['null', null],
    ['an object', { x: 'y' }],
    ['an empty array', []],
    ['an array of a string', ['a']],
    ['empty', ''],
    ['129 characters', 'i'.repeat(129)],
    ['1,000 characters', 'i'.repeat(1000)],
    ['127 characters and an emoji (129 UTF-16 units)', 'i'.repeat(127) + '😀'],
    // A lone surrogate cannot be stored as UTF-8: two such ids would share a de-duplication key.
    ['a lone high surrogate', '\udbff'],
    ['a lone low surrogate', 'x\udc00'],
    ['a reversed surrogate pair', '\udc00\ud800'],
  ];
  for (const [name, id] of badFrameIds) {
    const r = fresh('r');
    refused('send.id', `send with an id that is ${name}`, send({ id, to: { user: r }, body: { text: 'x' } }), 'bad_request', { quiet: [r] });
  }
  {
    // Same id, frame refused for another reason: frameIdOf measures UTF-16 units, so no echo.
    const r = fresh('r');
    refused('send.id', 'a refused send (bad to.user) with an id of 127 characters and an emoji echoes no id', send({ id: 'j'.repeat(127) + '😀', to: { user: `${r}/x` }, body: 1 }), 'bad_request');
  }
  for (const [name, id] of badFrameIds.filter(([n]) => ['a number', 'null', 'empty', '129 characters', 'an object'].includes(n))) {
    refused('ping.id', `ping with an id that is ${name}`, JSON.stringify({ action: 'ping', id }), 'bad_request');
    refused('sync.id', `sync with an id that is ${name}`, JSON.stringify({ action: 'sync', id }), 'bad_request', { pool: 'sync' });
  }
  answered('ping.id', 'ping with an id of 128 characters answers pong echoing it', JSON.stringify({ action: 'ping', id: 'p'.repeat(128) }), { reply: 'pong' });
  answered('ping.id', 'ping without an id answers pong without one', JSON.stringify({ action: 'ping' }), { reply: 'pong' });
  answered('ping.id', 'ping with extra keys answers pong', JSON.stringify({ action: 'ping', id: 'px', extra: [1, { a: 2 }], limit: 'x' }), { reply: 'pong' });

  const goodFrameIds: Array<[string, string]> = [
    ['128 characters', 'k'.repeat(128)],
    ['127 characters', 'K'.repeat(127)],
    ['one character', 'z'],
    ['64 emoji (128 UTF-16 units)', '😃'.repeat(64)],
    ['a NUL', '\u0000'],
    ['a single space', ' '],
    ['spaces and punctuation', 'a b/c#d?e'],
    ['a Latin-1 letter', 'ö'],
    ['a quote and backslash', '"\\\''],
    ['an HTML tag', '</script><script>alert(1)</script>'],
    ['a key-like "dedup#x#y"', 'dedup#x#y'],
    ['a surrogate pair (one emoji)', '\ud83d\ude00'],
  ];
  for (const [name, id] of goodFrameIds) {
    const r = fresh('r');
    accepted('send.id', `send with an id that is ${name} is acked echoing it`, send({ id, to: { user: r }, body: { id: name } }));
  }
}

// ---- 6. send: body presence and size -------------------------------------------------------------

{
  const r = fresh('r');
  refused('send.body', 'a send without body', send({ id: nextId('b'), to: { user: r } }), 'bad_request', { quiet: [r] });
  const tooLarge: Array<[string, unknown]> = [
    ['an ASCII string of 32 KiB + 1 once serialized', sized('x'.repeat(MAX_BODY_BYTES - 1), MAX_BODY_BYTES + 1)],
    ['16,384 "é" (2 bytes each): under 32 Ki chars, over 32 KiB', sized('é'.repeat(16_384), MAX_BODY_BYTES + 2)],
    ['10,923 CJK chars (3 bytes each)', sized('中'.repeat(10_923), MAX_BODY_BYTES + 3)],
    ['8,192 emoji (4 bytes each)', sized('😀'.repeat(8192), MAX_BODY_BYTES + 2)],
    ['a 4-byte char crossing the limit by one byte', sized('x'.repeat(32_763) + '😀', MAX_BODY_BYTES + 1)],
    ['16,384 newlines (2 bytes each escaped)', sized('\n'.repeat(16_384), MAX_BODY_BYTES + 2)],
    ['5,462 NULs (6 bytes each escaped)', sized('\u0000'.repeat(5462), MAX_BODY_BYTES + 6)],
    ['an object one byte over', sized({ k: 'x'.repeat(32_761) }, MAX_BODY_BYTES + 1)],
    ['an array of 16,384 ones', sized(Array.from({ length: 16_384 }, () => 1), MAX_BODY_BYTES + 1)],
    ['a 100 KB string', 'y'.repeat(100_000)],
  ];
  for (const [name, body] of tooLarge) {
    const rr = fresh('r');
    refused('send.body size', `${name} is too_large`, send({ id: nextId('big'), to: { user: rr }, body }), 'too_large', { quiet: [rr] });
  }

  const fits: Array<[string, unknown]> = [
    ['an ASCII string of exactly 32 KiB serialized', sized('x'.repeat(MAX_BODY_BYTES - 2), MAX_BODY_BYTES)],
    ['16,383 "é": exactly 32 KiB by bytes', sized('é'.repeat(16_383), MAX_BODY_BYTES)],
    ['10,922 CJK chars: exactly 32 KiB', sized('中'.repeat(10_922), MAX_BODY_BYTES)],
    ['8,191 emoji and 2 ASCII: exactly 32 KiB', sized('😀'.repeat(8191) + 'ab', MAX_BODY_BYTES)],
    ['a 4-byte char ending exactly at 32 KiB', sized('x'.repeat(32_762) + '😀', MAX_BODY_BYTES)],
    ['CJK with an emoji at the 32 KiB edge', sized('中'.repeat(10_920) + '😀' + 'ab', MAX_BODY_BYTES)],
    ['16,383 newlines: exactly 32 KiB escaped', sized('\n'.repeat(16_383), MAX_BODY_BYTES)],
    ['an object of exactly 32 KiB', sized({ k: 'x'.repeat(32_760) }, MAX_BODY_BYTES)],
    ['an array of 16,383 ones', sized(Array.from({ length: 16_383 }, () => 1), MAX_BODY_BYTES - 1)],
    ['null', null],
    ['false', false],
    ['zero', 0],
    ['an empty string', ''],
    ['an empty array', []],
    ['an empty object', {}],
    ['a tiny float', -1.5e-7],
    ['the largest double', 1.7976931348623157e308],
    ['the smallest subnormal', 5e-324],
    ['a string "true"', 'true'],
  ];
  for (const [name, body] of fits) {
    const rr = fresh('r');
    accepted('send.body size', `${name} is acked and round-trips`, send({ id: nextId('fit'), to: { user: rr }, body }));
  }
  // Measured once parsed and re-serialized, not on the wire.
  const r1 = fresh('r');
  accepted('send.body size', 'a body of 16,383 "\\u00e9" escapes on the wire (98 KB) is 32 KiB serialized: acked', sendWithBodyText(r1, '"' + '\\u00e9'.repeat(16_383) + '"', nextId('wire')));
  const r2 = fresh('r');
  accepted('send.body size', 'a small body padded with 60 KB of whitespace on the wire is acked', sendWithBodyText(r2, '{ "a" :' + ' '.repeat(60_000) + '[ 1 ,\n 2 ,\t 3 ] }', nextId('wire')));
  const r3 = fresh('r');
  accepted('send.body size', 'a huge integer literal loses precision like JSON.parse and round-trips as parsed', sendWithBodyText(r3, '{"n":9007199254740993,"m":1E+2,"z":-0.0}', nextId('num')));
  const r4 = fresh('r');
  accepted('send.body size', 'duplicated body keys: the last one wins', `{"action":"send","id":"dupbody","to":{"user":"${r4}"},"body":{"v":1},"body":{"v":2}}`);
}

// ---- 7. nesting -------------------------------------------------------------------------------------

{
  const nestMsg = /nests deeper than 64/;
  for (const [name, text] of [
    ['arrays', nestedArrays(MAX_DEPTH - 1)],
    ['objects', nestedObjects(MAX_DEPTH - 1)],
    ['mixed arrays and objects', '[{"a":'.repeat(31) + '[]' + '}]'.repeat(31)],
  ] as Array<[string, string]>) {
    const r = fresh('r');
    const frame = sendWithBodyText(r, text, nextId('deep'));
    if (textDepth(frame) !== MAX_DEPTH) throw new Error(`table arithmetic: depth ${textDepth(frame)}`);
    accepted('nesting', `a body of ${name} nested to a total depth of exactly 64 is acked`, frame);
  }
  for (const [name, text] of [
    ['arrays to total depth 65', nestedArrays(MAX_DEPTH)],
    ['objects to total depth 65', nestedObjects(MAX_DEPTH)],
    ['arrays 5,000 deep (10 KB)', nestedArrays(5000)],
    ['objects 2,000 deep', nestedObjects(2000)],
  ] as Array<[string, string]>) {
    const r = fresh('r');
    refused('nesting', `a body of ${name} is refused (no id echoed)`, sendWithBodyText(r, text, nextId('deep')), 'bad_request', { message: nestMsg, quiet: [r] });
  }
  refused('nesting', 'a whole frame of 5,000 nested arrays (10 KB) is refused', nestedArrays(5000), 'bad_request', { message: nestMsg });
  refused('nesting', 'a frame of 5,000 unclosed "[" is refused for depth', '['.repeat(5000), 'bad_request', { message: nestMsg });
  const ofDepth = (frame: string, depth: number) => {
    if (textDepth(frame) !== depth) throw new Error(`table arithmetic: depth ${textDepth(frame)}, meant ${depth}`);
    return frame;
  };
  refused('nesting', 'a ping with an extra key nested to total depth 65', ofDepth(`{"action":"ping","id":"deep-ping","x":${nestedArrays(MAX_DEPTH)}}`, 65), 'bad_request', { message: nestMsg });
  answered('nesting', 'a ping with an extra key nested to total depth 64 answers pong', ofDepth(`{"action":"ping","id":"ok-deep-ping","x":${nestedArrays(MAX_DEPTH - 1)}}`, 64), { reply: 'pong' });
  refused('nesting', 'a sync with an extra key nested to total depth 65', ofDepth(`{"action":"sync","id":"deep-sync","x":${nestedObjects(MAX_DEPTH)}}`, 65), 'bad_request', { message: nestMsg, pool: 'sync' });
  answered('nesting', 'a sync with an extra key nested to total depth 64 is a plain sync', ofDepth(`{"action":"sync","id":"ok-deep-sync","x":${nestedObjects(MAX_DEPTH - 1)}}`, 64), { reply: 'sync', count: SYNC_SETUP_BODIES.length, more: false }, 'sync');
  refused('nesting', 'an unknown action nested to total depth 65', ofDepth(`{"action":"nope","id":"deep-nope","x":${nestedArrays(MAX_DEPTH)}}`, 65), 'bad_request', { message: nestMsg });
  refused('nesting', 'an unknown action nested to total depth 64 is refused for the action, echoing its id', ofDepth(`{"action":"nope","id":"ok-deep-nope","x":${nestedArrays(MAX_DEPTH - 1)}}`, 64), 'bad_request', { message: /unknown action/ });
  const r = fresh('r');
  refused('nesting', 'a deep value hidden under a duplicated key still counts', `{"action":"send","id":"dup-deep","to":{"user":"${r}"},"body":${nestedArrays(70)},"body":1}`, 'bad_request', {
    message: nestMsg,
    quiet: [r],
  });
  const r5 = fresh('r');
  accepted('nesting', 'brackets inside a string do not count as nesting', send({ id: nextId('str'), to: { user: r5 }, body: '['.repeat(2000) + '{'.repeat(2000) }));
  const r6 = fresh('r');
  accepted('nesting', 'escaped quotes before brackets inside strings do not count', send({ id: nextId('str'), to: { user: r6 }, body: { '[[[': '\\"[[[[' + '"['.repeat(500), q: '\\' } }));
}

// ---- 8. unicode edges in bodies --------------------------------------------------------------------

const unicodeBodies: Array<[string, string]> = [
  ['an emoji (U+1F600) as UTF-8', '"😀"'],
  ['an emoji as an escaped surrogate pair', '"\\ud83d\\ude00"'],
  ['an emoji as upper-case escapes', '"\\uD83D\\uDE00"'],
  ['CJK, Japanese and Korean', '"中文字符 日本語 한국어"'],
  ['U+FFFE', '"\\ufffe"'],
  ['U+FFFF', '"\\uffff"'],
  ['U+FFFD', '"\\ufffd"'],
  ['a lone high surrogate', '"\\ud800"'],
  ['a lone low surrogate', '"\\udfff"'],
  ['a reversed surrogate pair', '"\\udc00\\ud800"'],
  ['lone surrogates between letters', '"a\\ud800b\\udfffc"'],
  ['NUL', '"\\u0000"'],
  ['every C0 control character', JSON.stringify(Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(''))],
  ['DEL and C1 controls', '"\\u007f\\u0080\\u0085\\u009f"'],
  ['RTL and bidi marks', '"\\u200f\\u200e\\u202e\\u2066abc\\u2069"'],
  ['combining characters', '"e\\u0301 a\\u0308\\u0323 Z\\u0364\\u0311\\u0313"'],
  ['a ZWJ family emoji', '"👨‍👩‍👧‍👦"'],
  ['a BOM inside the body', '"\\ufeff"'],
  ['line and paragraph separators', '"\\u2028\\u2029"'],
  ['U+10FFFF', '"\\udbff\\udfff"'],
  ['the noncharacter U+1FFFE', '"\\ud83f\\udffe"'],
  ['a tag character (U+E0001)', '"\\udb40\\udc01"'],
  ['invisible format characters', '"\\u00ad\\u180e\\u2060\\u200b"'],
  ['NFC and NFD forms side by side', '["\\u00c5","A\\u030a"]'],
  ['a literal backslash-u sequence', '"\\\\u0000"'],
  ['every simple escape', '"\\"\\\\\\/\\b\\f\\n\\r\\t"'],
  ['keys in Cyrillic, CJK and emoji', '{"ключ":"значение","键":"值","😀":"🎉"}'],
  ['a NUL key and an empty key', '{"\\u0000":"nul key","":"empty key"}'],
  ['a lone surrogate as a key', '{"\\ud800":"lone surrogate key","\\udfff":1}'],
  ['a 1,000-character unicode key', `{"${'ключ'.repeat(250)}":true}`],
  ['unicode nested in arrays', '["\\ud800",{"\\udfff":["\\u0000","😀"]}]'],
  ['math symbols', '"Ω≈ç√∫˜µ≤≥÷"'],
  ['a 4-byte char at the 32 KiB edge written as escapes', `"${'x'.repeat(32_762)}\\ud83d\\ude00"`],
];
for (const [name, bodyText] of unicodeBodies) {
  const r = fresh('r');
  accepted('unicode', `a body with ${name} is acked and round-trips exactly`, sendWithBodyText(r, bodyText, nextId('uni')));
}

// ---- 9. prototype-pollution keys ------------------------------------------------------------------

const protoBodies: Array<[string, string]> = [
  ['{"__proto__":{"x":1}}', '{"__proto__":{"x":1}}'],
  ['{"constructor":{"prototype":{"x":1}}}', '{"constructor":{"prototype":{"x":1}}}'],
  ['__proto__ next to another key', '{"__proto__":{"polluted":true},"a":1}'],
  ['__proto__ nested one level down', '{"a":{"__proto__":{"x":1}}}'],
  ['__proto__ inside an array', '[{"__proto__":{"x":1}}]'],
  ['__proto__: null', '{"__proto__":null}'],
  ['__proto__: an array', '{"__proto__":[1,2]}'],
  ['__proto__: a string', '{"__proto__":"str"}'],
  ['__proto__ inside __proto__', '{"__proto__":{"__proto__":{"x":1}}}'],
  ['prototype', '{"prototype":{"x":1}}'],
  ['Object.prototype method names', '{"constructor":"x","hasOwnProperty":1,"toString":2,"valueOf":3,"__defineGetter__":4}'],
];
for (const [name, bodyText] of protoBodies) {
  const r = fresh('r');
  accepted('prototype keys', `body ${name} is acked and round-trips with __proto__ as an own key`, sendWithBodyText(r, bodyText, nextId('proto')));
}
{
  const r1 = fresh('r');
  accepted('prototype keys', 'a frame with a top-level "__proto__" before action is acked', `{"__proto__":{"x":1},"action":"send","id":"${nextId('proto')}","to":{"user":"${r1}"},"body":{"ok":1}}`);
  const r2 = fresh('r');
  accepted('prototype keys', 'a top-level "__proto__" carrying a fake body does not replace the real body', `{"action":"send","__proto__":{"body":"fake","to":{"user":"hx-evil"}},"id":"${nextId('proto')}","to":{"user":"${r2}"},"body":"real"}`);
  const r3 = fresh('r');
  accepted('prototype keys', 'a top-level "constructor.prototype" is acked', `{"action":"send","id":"${nextId('proto')}","to":{"user":"${r3}"},"body":1,"constructor":{"prototype":{"x":1}}}`);
  refused('prototype keys', 'an action only inside "__proto__" is no action', '{"__proto__":{"action":"ping"},"id":"proto-action"}', 'bad_request');
  const r4 = fresh('r');
  refused('prototype keys', 'to.user only inside "__proto__" is no recipient', `{"action":"send","id":"proto-to","to":{"__proto__":{"user":"${r4}"}},"body":1}`, 'bad_request', { quiet: [r4] });
  const r5 = fresh('r');
  refused('prototype keys', 'a "__proto__" key next to to.user is an unknown key', `{"action":"send","id":"proto-to2","to":{"user":"${r5}","__proto__":{"x":1}},"body":1}`, 'bad_request', { quiet: [r5] });
  answered('prototype keys', 'a sync whose "__proto__" carries limit 0 is a plain sync', '{"action":"sync","id":"proto-sync","__proto__":{"limit":0,"after":"garbage"}}', { reply: 'sync', count: SYNC_SETUP_BODIES.length, more: false }, 'sync');
  answered('prototype keys', 'a ping whose "__proto__" carries a numeric id answers pong without id', '{"action":"ping","__proto__":{"id":5}}', { reply: 'pong' });
}

// ---- 10. long ids and groups ---------------------------------------------------------------------

{
  const longUser = fresh('r').padEnd(128, 'x');
  accepted('long ids', 'to.user of 128 characters is acked and stored in that inbox', send({ id: nextId('long'), to: { user: longUser }, body: { long: true } }));
  const tooLong = fresh('r').padEnd(129, 'x');
  refused('long ids', 'to.user of 129 characters is refused', send({ id: nextId('long'), to: { user: tooLong }, body: 1 }), 'bad_request', { quiet: [tooLong.slice(0, 128)] });
  accepted('long ids', 'to.user using every allowed punctuation is acked', send({ id: nextId('long'), to: { user: `${fresh('p')}_.:@-Z9` }, body: 'punct' }));
  accepted('long ids', 'to.user ".." is a valid id and acked', send({ id: nextId('long'), to: { user: '..' }, body: 'dots' }));

  const member = fresh('gm');
  const group = fresh('ga');
  groupsToCreate.push([group, [...acceptUsers, member]]);
  accepted('groups', 'a member sending to its group is acked; the other member gets one row', send({ id: nextId('grp'), to: { group }, body: { g: 1 } }), { audience: [member] });
  const member128 = fresh('gm');
  const group128 = fresh('ga').padEnd(128, 'g');
  groupsToCreate.push([group128, [...acceptUsers, member128]]);
  accepted('groups', 'a group id of 128 characters is acked', send({ id: nextId('grp'), to: { group: group128 }, body: { g: 128 } }), { audience: [member128] });
  refused('groups', 'a group id of 129 characters is refused', send({ id: nextId('grp'), to: { group: group128 + 'g' }, body: 1 }), 'bad_request');
  const outsiders = [fresh('gm'), fresh('gm')];
  const closed = fresh('gc');
  groupsToCreate.push([closed, outsiders]);
  refused('groups', 'a non-member sending to a group is forbidden; members get nothing', send({ id: nextId('grp'), to: { group: closed }, body: { let: 'me in' } }), 'forbidden', { quiet: outsiders });
  refused('groups', 'a non-member sending to a group without an id is forbidden', send({ to: { group: closed }, body: 2 }), 'forbidden', { quiet: outsiders });
  refused('groups', 'sending to a group that does not exist is forbidden', send({ id: nextId('grp'), to: { group: fresh('nogroup') }, body: 1 }), 'forbidden');
}

// ---- 11. sync: after, limit ------------------------------------------------------------------------

/** Values from the setup sync (hx-sync has 3 messages): a cursor, a next, a msgId. */
const syncSetup = { cursor: '', next: '', msgId: '' };
{
  const u = '01J8ZQK3N4X6Y7Z8A9B0C1D2E3'; // a valid ULID (2024)
  const badAfters: Array<[string, unknown]> = [
    ['"garbage"', 'garbage'],
    ['empty', ''],
    ['65 characters', 'a'.repeat(65)],
    ['a valid cursor padded to 65 characters', `r.${u}`.padEnd(65, '0')],
    ['a number', 5],
    ['null', null],
    ['true', true],
    ['an object', { after: `r.${u}` }],
    ['an array', [`r.${u}`]],
    ['"r."', 'r.'],
    ['"n."', 'n.'],
    ['"r.ZZZZZZZZZZZZZZZZZZZZZZZZZZ" (time out of range)', `r.${'Z'.repeat(26)}`],
    ['"ZZZZZZZZZZZZZZZZZZZZZZZZZZ" (valid alphabet, time out of range)', 'Z'.repeat(26)],
    ['"8ZZZZZZZZZZZZZZZZZZZZZZZZZ" (one past the largest time)', '8' + 'Z'.repeat(25)],
    ['"n.<ulid>" (missing floor)', `n.${u}`],
    ['"n.<ulid>." (empty floor)', `n.${u}.`],
    ['"n.<ulid>.<ulid>X"', `n.${u}.${u}X`],
    ['"n..<ulid>"', `n..${u}`],
    ['"n.<ulid>.<out-of-range floor>"', `n.${u}.${'Z'.repeat(26)}`],
    ['"c.<ulid>" (old format)', `c.${u}`],
    ['"r.<ulid>." (trailing dot)', `r.${u}.`],
    ['"R.<ulid>" (upper-case prefix)', `R.${u}`],
    ['" r.<ulid>" (leading space)', ` r.${u}`],
    ['"r.<ulid> " (trailing space)', `r.${u} `],
    ['a msgId with a 27th character', `${u}0`],
    ['a msgId of 25 characters', u.slice(0, 25)],
    ['a msgId with the excluded letter I', u.slice(0, 25) + 'I'],
    ['a msgId with the excluded letter U', 'U' + u.slice(1)],
    ['"r.<ulid with L>"', `r.${u.slice(0, 25)}L`],
    ['a NUL', '\u0000'],
    ['an emoji', '😀'],
    ['a lower-case prefix and lone surrogate', 'r.\ud800'],
  ];
  for (const [name, after] of badAfters) refused('sync.after', `after ${name} is refused`, JSON.stringify({ action: 'sync', id: nextId('sa'), after }), 'bad_request', { pool: 'sync' });

  const badLimits: Array<[string, string]> = [
    ['0', '0'],
    ['-1', '-1'],
    ['501', '501'],
    ['1.5', '1.5'],
    ['"10"', '"10"'],
    ['null', 'null'],
    ['true', 'true'],
    ['[]', '[]'],
    ['{}', '{}'],
    ['1e3', '1e3'],
    ['1e999 (Infinity)', '1e999'],
    ['-0', '-0'],
    ['500.5', '500.5'],
    ['0.999', '0.999'],
    ['2^53', '9007199254740992'],
  ];
  for (const [name, text] of badLimits) refused('sync.limit', `limit ${name} is refused`, `{"action":"sync","id":"${nextId('sl')}","limit":${text}}`, 'bad_request', { pool: 'sync' });

  const n = SYNC_SETUP_BODIES.length;
  const validSyncs: Array<[string, string | (() => string), Expect]> = [
    ['limit 500 returns the whole inbox', JSON.stringify({ action: 'sync', id: nextId('sv'), limit: 500 }), { reply: 'sync', count: n, more: false }],
    ['limit 1 returns one message and a next cursor', JSON.stringify({ action: 'sync', id: nextId('sv'), limit: 1 }), { reply: 'sync', count: 1, more: true }],
    ['limit 499', JSON.stringify({ action: 'sync', id: nextId('sv'), limit: 499 }), { reply: 'sync', count: n, more: false }],
    ['limit written 1.0 is the integer 1', `{"action":"sync","id":"${nextId('sv')}","limit":1.0}`, { reply: 'sync', count: 1, more: true }],
    ['limit written 1e2 is 100', `{"action":"sync","id":"${nextId('sv')}","limit":1e2}`, { reply: 'sync', count: n, more: false }],
    ['no after, no limit', JSON.stringify({ action: 'sync', id: nextId('sv') }), { reply: 'sync', count: n, more: false }],
    ['no id at all', JSON.stringify({ action: 'sync' }), { reply: 'sync', count: n, more: false }],
    ['extra unknown keys are ignored', JSON.stringify({ action: 'sync', id: nextId('sv'), foo: 1, cursor: 'x' }), { reply: 'sync', count: n, more: false }],
    ['after the cursor of a previous reply', () => JSON.stringify({ action: 'sync', id: nextId('sv'), after: syncSetup.cursor }), { reply: 'sync' }],
    ['after the next of a previous reply', () => JSON.stringify({ action: 'sync', id: nextId('sv'), after: syncSetup.next }), { reply: 'sync', count: n - 1, more: false }],
    ['after the next of a previous reply, limit 1', () => JSON.stringify({ action: 'sync', id: nextId('sv'), after: syncSetup.next, limit: 1 }), { reply: 'sync', count: 1, more: true }],
    ['after a msgId the client holds', () => JSON.stringify({ action: 'sync', id: nextId('sv'), after: syncSetup.msgId }), { reply: 'sync' }],
    ['after the smallest msgId', JSON.stringify({ action: 'sync', id: nextId('sv'), after: '0'.repeat(26) }), { reply: 'sync', count: n, more: false }],
    ['after the largest msgId (7ZZ…)', JSON.stringify({ action: 'sync', id: nextId('sv'), after: '7' + 'Z'.repeat(25) }), { reply: 'sync', count: 0, more: false }],
    ['after "r." and the smallest position', JSON.stringify({ action: 'sync', id: nextId('sv'), after: `r.${'0'.repeat(26)}` }), { reply: 'sync', count: n, more: false }],
  ];
  for (const [name, frame, expect] of validSyncs) answered('sync.valid', name, frame, expect, 'sync');
}

// ---- 12. binary frames ------------------------------------------------------------------------------

{
  const r = fresh('r');
  const binaries: Array<[string, Buffer, string[]]> = [
    ['the bytes of a valid ping', Buffer.from(JSON.stringify({ action: 'ping', id: 'bin-ping' })), []],
    ['the bytes of a valid send', Buffer.from(send({ id: 'bin-send', to: { user: r }, body: { binary: true } })), [r]],
    ['invalid UTF-8 (ff fe fd)', Buffer.from([0xff, 0xfe, 0xfd]), []],
    ['a truncated 2-byte sequence', Buffer.from([0xc3, 0x28]), []],
    ['a UTF-8-encoded surrogate (ed a0 80)', Buffer.from([0xed, 0xa0, 0x80]), []],
    ['a code point above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80]), []],
    ['an overlong "/"', Buffer.from([0xc0, 0xaf]), []],
    ['an empty binary frame', Buffer.alloc(0), []],
    ['a single NUL byte', Buffer.alloc(1), []],
    ['1 KiB of pseudo-random bytes', prng('binary', 1024), []],
    ['a UTF-16LE encoded ping', Buffer.from(JSON.stringify({ action: 'ping', id: 'utf16' }), 'utf16le'), []],
    ['a gzip header and junk', Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), prng('gzip', 60)]), []],
    ['a send prefixed with a UTF-8 BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(send({ id: 'bin-bom', to: { user: r }, body: 1 }))]), [r]],
  ];
  for (const [name, buffer, quiet] of binaries) {
    frameCases.push({ category: 'binary frames', name, frame: buffer, expect: BINARY_FRAME_ANSWER, pool: 'own', quiet, audience: [], exclusive: [] });
  }
}

// ---- 13. frame size at the transport ---------------------------------------------------------------

/** A text frame of exactly `size` bytes: `head` + padding (pad chars, then ASCII) + `tail`. */
function frameOfBytes(size: number, head: string, tail: string, padChar = 'x'): string {
  const room = size - bytes(head) - bytes(tail);
  const wide = Math.floor(room / bytes(padChar));
  const text = head + padChar.repeat(wide) + 'x'.repeat(room - wide * bytes(padChar)) + tail;
  if (bytes(text) !== size) throw new Error(`table arithmetic: ${bytes(text)} != ${size}`);
  return text;
}
{
  // One frame each. Local mode accepts a single frame up to the 128 KiB message limit; API Gateway
  // would already close a frame over 32 KB with 1009 (docs/protocol-notes.md, "Size").
  for (const [label, size, expectFor] of [
    ['one frame of exactly 128 KiB', MAX_MESSAGE_BYTES, 'route'],
    ['one frame of 128 KiB + 1 byte', MAX_MESSAGE_BYTES + 1, 'close'],
  ] as const) {
    const r = fresh('r');
    const variants: Array<[string, string, Expect, string[]]> = [
      ['a send with a big body', frameOfBytes(size, `{"action":"send","id":"${nextId('sz')}","to":{"user":"${r}"},"body":"`, '"}'), { reply: 'error', code: 'too_large' }, [r]],
      ['a ping with a big pad', frameOfBytes(size, `{"action":"ping","id":"${nextId('sz')}","pad":"`, '"}'), { reply: 'pong' }, []],
      ['a ping padded with 3-byte chars', frameOfBytes(size, `{"action":"ping","id":"${nextId('sz')}","pad":"`, '"}', '中'), { reply: 'pong' }, []],
      ['nothing but "["', frameOfBytes(size, '', '', '['), { reply: 'error', code: 'bad_request', message: /nests deeper than 64/ }, []],
      ['not JSON', frameOfBytes(size, '', '', 'x'), { reply: 'error', code: 'bad_request' }, []],
    ];
    for (const [name, frame, routeExpect, quiet] of variants) {
      const expect: Expect = expectFor === 'close' ? { reply: 'close', code: 1009 } : routeExpect;
      const verdict = expectFor === 'close' ? 'closes with 1009 and no error frame' : `reaches the route (${routeExpect.reply === 'error' ? routeExpect.code : routeExpect.reply})`;
      frameCases.push({ category: 'frame size', name: `${label}: ${name} ${verdict}`, frame, expect, pool: 'own', quiet, audience: [], exclusive: [] });
    }
  }
  frameCases.push({
    category: 'frame size',
    name: '128 KiB - 1 byte: a ping with a big pad answers pong',
    frame: frameOfBytes(MAX_MESSAGE_BYTES - 1, `{"action":"ping","id":"${nextId('sz')}","pad":"`, '"}'),
    expect: { reply: 'pong' },
    pool: 'own',
    quiet: [],
    audience: [],
    exclusive: [],
  });
  // The same messages as fragments of 32 KiB frames, as a client must send them to API Gateway.
  const rf = fresh('r');
  const fragmented: Array<[string, Wire, Expect, string[]]> = [
    ['a 128 KiB ping in four 32 KiB frames answers pong', fragmentsOf(frameOfBytes(MAX_MESSAGE_BYTES, `{"action":"ping","id":"${nextId('fr')}","pad":"`, '"}')), { reply: 'pong' }, []],
    ['a 128 KiB ping of 3-byte chars split mid-character answers pong', fragmentsOf(frameOfBytes(MAX_MESSAGE_BYTES, `{"action":"ping","id":"${nextId('fr')}","pad":"`, '"}', '中')), { reply: 'pong' }, []],
    ['a 128 KiB send in four frames is too_large', fragmentsOf(frameOfBytes(MAX_MESSAGE_BYTES, `{"action":"send","id":"${nextId('fr')}","to":{"user":"${rf}"},"body":"`, '"}')), { reply: 'error', code: 'too_large' }, [rf]],
    ['a 32 KiB-body send in 1 KiB frames is acked', fragmentsOf(send({ id: nextId('fr'), to: { user: fresh('r') }, body: 'f'.repeat(MAX_BODY_BYTES - 2) }), KiB), { reply: 'ack' }, []],
    ['128 KiB + 1 byte in five frames closes with 1009 and no error frame', fragmentsOf(frameOfBytes(MAX_MESSAGE_BYTES + 1, `{"action":"ping","id":"${nextId('fr')}","pad":"`, '"}')), { reply: 'close', code: 1009 }, []],
  ];
  for (const [name, frame, expect, quiet] of fragmented) {
    if (expect.reply === 'ack') frameCases.push({ category: 'frame size', name, frame, expect, pool: 'accept', quiet, audience: literalRecipients(frame), exclusive: literalRecipients(frame) });
    else frameCases.push({ category: 'frame size', name, frame, expect, pool: 'own', quiet, audience: [], exclusive: [] });
  }
  frameCases.push({ category: 'frame size', name: '1 MiB of JSON closes with 1009 and no error frame', frame: frameOfBytes(1024 * KiB, '{"action":"ping","pad":"', '"}'), expect: { reply: 'close', code: 1009 }, pool: 'own', quiet: [], audience: [], exclusive: [] });
}

// Accepted cases may share a socket (and so a sender): their client ids must differ.
{
  const ids = frameCases.filter((c) => c.pool === 'accept').map((c) => parsedOrUndefined(c.frame as Wire)?.id).filter((id) => id !== undefined);
  if (new Set(ids).size !== ids.length) throw new Error('two accepted cases share a client id');
}

// ---- 14. client ids that must stay distinct (own sender each) --------------------------------------

interface IdPairCase {
  name: string;
  ids: [string, string];
  same: boolean;
}
const idPairs: IdPairCase[] = [
  { name: 'ids "\\ufffd" and "?" are different messages', ids: ['\ufffd', '?'], same: false },
  { name: 'ids "\\ud83d\\ude00" (emoji) and "\\ud83d\\ude01" are different messages', ids: ['\ud83d\ude00', '\ud83d\ude01'], same: false },
  { name: 'ids "a" and "A" are different messages', ids: ['a', 'A'], same: false },
  { name: 'ids "é" (NFC) and "e\\u0301" (NFD) are different messages', ids: ['\u00e9', 'e\u0301'], same: false },
  { name: 'ids "x" and "x " are different messages', ids: ['x', 'x '], same: false },
  { name: 'ids "\\u0000" and "\\u0000\\u0000" are different messages', ids: ['\u0000', '\u0000\u0000'], same: false },
  { name: 'the same id twice is one message (first body wins)', ids: ['same-id', 'same-id'], same: true },
];

// ---- 15. upgrades -------------------------------------------------------------------------------------

/** 'refused': 401 or 403, where the documents do not decide between them. */
type UpgradeExpect = 401 | 403 | 'refused' | 'open';
interface UpgradeCase {
  name: string;
  /** Path and query after the ws URL, built in beforeAll (tokens are time-bound). */
  query: () => Promise<string>;
  expect: UpgradeExpect;
  /** The user id the token carries, whose connection row must not exist when refused. */
  sub?: string;
}

const enc = new TextEncoder();
const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));
const nowS = () => Math.floor(Date.now() / 1000);
/** jose-signed HMAC token with arbitrary claims. */
const joseToken = (alg: 'HS256' | 'HS384' | 'HS512', claims: Record<string, unknown>, secret = JWT_SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(enc.encode(secret));
/** A hand-built HS256 token: header and payload exactly as given, correctly signed. */
function rawHs256(header: unknown, payload: unknown, secret = JWT_SECRET): string {
  const signingInput = `${b64json(header)}.${b64json(payload)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}
const q = (token: string) => `/?token=${encodeURIComponent(token)}`;

const upgradeCases: UpgradeCase[] = [];
function upgrade(name: string, expect: UpgradeExpect, query: (sub: string) => Promise<string>, withSub = true) {
  // Ends with '.', so no other case's sub starts with it.
  const sub = withSub ? `${fresh('tk')}.` : undefined;
  upgradeCases.push({ name, expect, sub, query: () => query(sub ?? '') });
}
{
  const claims = (sub: string, extra: Record<string, unknown> = {}) => ({ sub, did: 'dev', iat: nowS(), exp: nowS() + 3600, ...extra });
  upgrade('no token parameter → 401', 401, async () => '/', false);
  upgrade('no query string and no slash → 401', 401, async () => '', false);
  upgrade('an empty token → 401', 401, async () => '/?token=', false);
  upgrade('"token" without "=" → 401', 401, async () => '/?token', false);
  upgrade('a valid token under "Token" (names are case-sensitive) → 401', 401, async (sub) => `/?Token=${await tokenFor(sub, 'dev')}`);
  upgrade('a valid token under "tok" → 401', 401, async (sub) => `/?tok=${await tokenFor(sub, 'dev')}`);
  upgrade('"garbage" → 401', 401, async () => q('garbage'), false);
  upgrade('"a.b.c" → 401', 401, async () => q('a.b.c'), false);
  upgrade('random base64 → 401', 401, async () => q(prng('token', 48).toString('base64')), false);
  upgrade('random base64url in three parts → 401', 401, async () => q([prng('t1', 20), prng('t2', 30), prng('t3', 32)].map((b) => b.toString('base64url')).join('.')), false);
  upgrade('two parts → 401', 401, async () => q(`${b64json({ alg: 'HS256' })}.${b64json({ sub: 'x' })}`), false);
  upgrade('four parts → 401', 401, async (sub) => q(`${await tokenFor(sub, 'dev')}.extra`));
  upgrade('five parts (JWE-shaped) → 401', 401, async () => q('a.b.c.d.e'), false);
  upgrade('a URL-encoded NUL → 401', 401, async () => '/?token=%00', false);
  upgrade('4,000 characters of junk → 401', 401, async () => q('j'.repeat(4000)), false);
  upgrade('a valid token with a space prepended → refused (401 or 403)', 'refused', async (sub) => q(` ${await tokenFor(sub, 'dev')}`));

  upgrade('alg "none", unsigned → 403', 403, async (sub) => q(`${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(claims(sub))}.`));
  upgrade('alg "none" with a junk signature → 403', 403, async (sub) => q(`${b64json({ alg: 'none' })}.${b64json(claims(sub))}.${base64url.encode('sig')}`));
  upgrade('alg "hs256" in lower case → 403', 403, async (sub) => {
    const input = `${b64json({ alg: 'hs256' })}.${b64json(claims(sub))}`;
    return q(`${input}.${createHmac('sha256', JWT_SECRET).update(input).digest('base64url')}`);
  });
  upgrade('HS384 signed with the right secret → 403', 403, async (sub) => q(await joseToken('HS384', claims(sub))));
  upgrade('HS512 signed with the right secret → 403', 403, async (sub) => q(await joseToken('HS512', claims(sub))));
  upgrade('an RS256 header and a junk signature → 403', 403, async (sub) => q(`${b64json({ alg: 'RS256', typ: 'JWT' })}.${b64json(claims(sub))}.${prng('rs', 256).toString('base64url')}`));
  upgrade('an ES256 header and a junk signature → 403', 403, async (sub) => q(`${b64json({ alg: 'ES256', typ: 'JWT' })}.${b64json(claims(sub))}.${prng('es', 64).toString('base64url')}`));
  upgrade('a PS256 header and a junk signature → 403', 403, async (sub) => q(`${b64json({ alg: 'PS256' })}.${b64json(claims(sub))}.${prng('ps', 256).toString('base64url')}`));
  upgrade('expired a minute ago → 403', 403, async (sub) => q(await joseToken('HS256', claims(sub, { iat: nowS() - 3600, exp: nowS() - 60 }))));
  upgrade('expired a second ago → 403', 403, async (sub) => q(await joseToken('HS256', claims(sub, { iat: nowS() - 60, exp: nowS() - 1 }))));
  upgrade('signed with another secret → 403', 403, async (sub) => q(await tokenFor(sub, 'dev', 3600, 'another-secret')));
  upgrade('a flipped signature byte → 403', 403, async (sub) => {
    const [h, p, s] = (await tokenFor(sub, 'dev')).split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[5] = sig[5]! ^ 0xff;
    return q(`${h}.${p}.${sig.toString('base64url')}`);
  });
  upgrade('a payload swapped under a valid signature → 403', 403, async (sub) => {
    const [h, , s] = (await tokenFor('hx-someone-else', 'dev')).split('.') as [string, string, string];
    return q(`${h}.${b64json(claims(sub))}.${s}`);
  });
  upgrade('missing sub → 403', 403, async () => q(await joseToken('HS256', { did: 'dev', iat: nowS(), exp: nowS() + 3600 })), false);
  upgrade('missing exp → 403', 403, async (sub) => q(await joseToken('HS256', { sub, did: 'dev', iat: nowS() })));
  upgrade('exp as a string → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub, { exp: String(nowS() + 3600) }))));
  upgrade('nbf an hour ahead → 403', 403, async (sub) => q(await joseToken('HS256', claims(sub, { nbf: nowS() + 3600 }))));
  upgrade('sub with a space → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(`${sub} x`))));
  upgrade('sub with a slash → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(`${sub}/x`))));
  upgrade('sub with a hash → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(`${sub}#x`))));
  upgrade('sub of 129 characters → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub.padEnd(129, 's')))));
  upgrade('an empty sub → 403', 403, async () => q(rawHs256({ alg: 'HS256' }, claims(''))), false);
  upgrade('a numeric sub → 403', 403, async () => q(rawHs256({ alg: 'HS256' }, claims('x', { sub: 12345 }))), false);
  upgrade('a unicode sub → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(`${sub}ü`))));
  upgrade('did with a space → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub, { did: 'a b' }))));
  upgrade('did of 129 characters → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub, { did: 'd'.repeat(129) }))));
  upgrade('a numeric did → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub, { did: 7 }))));
  upgrade('an empty did → 403', 403, async (sub) => q(rawHs256({ alg: 'HS256' }, claims(sub, { did: '' }))));

  upgrade('a valid token connects', 'open', async (sub) => q(await tokenFor(sub, 'dev')));
  upgrade('a valid token without did connects (device "default")', 'open', async (sub) => q(await tokenFor(sub)));
  upgrade('a sub of 128 characters connects', 'open', async (sub) => q(await tokenFor(sub.padEnd(128, 'l'), 'dev')));
  upgrade('a did of 128 characters connects', 'open', async (sub) => q(await tokenFor(sub, 'd'.repeat(128))));
  upgrade('a sub with every allowed punctuation connects', 'open', async (sub) => q(await tokenFor(`${sub}_.:@-Z9`, 'dev')));
  upgrade('a valid token after an unrelated parameter connects', 'open', async (sub) => `/?foo=bar&token=${await tokenFor(sub, 'dev')}`);
  // A repeated parameter: the authorizer receives queryStringParameters.token, the LAST value
  // (API Gateway; local/websocket-server.ts); the 401-without-authorizer check reads the same value.
  upgrade('token twice, garbage then valid: the last (valid) one counts → connects', 'open', async (sub) => `/?token=garbage&token=${await tokenFor(sub, 'dev')}`);
  upgrade('token twice, valid then garbage: the last (garbage) one counts → 401', 401, async (sub) => `/?token=${await tokenFor(sub, 'dev')}&token=garbage`);
  upgrade('token twice, valid then expired: the last one counts → 403', 403, async (sub) => `/?token=${await tokenFor(sub, 'dev')}&token=${await joseToken('HS256', claims(sub, { exp: nowS() - 60 }))}`);
  upgrade('token twice, expired then valid: the last one counts → connects', 'open', async (sub) => `/?token=${await joseToken('HS256', claims(sub, { exp: nowS() - 60 }))}&token=${await tokenFor(sub, 'dev')}`);
  upgrade('token twice, empty then valid → connects', 'open', async (sub) => `/?token=&token=${await tokenFor(sub, 'dev')}`);
  upgrade('token twice, valid then empty → 401', 401, async (sub) => `/?token=${await tokenFor(sub, 'dev')}&token=`);
}

// ---- 16. early closes -----------------------------------------------------------------------------

const EARLY = 20;
const earlyOpenClose = Array.from({ length: EARLY }, () => fresh('eo'));
const earlyDestroy = Array.from({ length: EARLY }, () => fresh('ed'));

// ---- 17. concurrent duplicates ---------------------------------------------------------------------

const DUP_SOCKETS = 10;

// ---- observation ------------------------------------------------------------------------------------

interface Entry {
  raw: string;
  json?: any;
  binary: boolean;
}

/** A raw client socket that records every frame (JSON or not) and its close. */
class Probe {
  readonly entries: Entry[] = [];
  closed?: { code: number; reason: string };
  private readonly listeners = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buffer = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const raw = buffer.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        json = undefined;
      }
      this.entries.push({ raw, json, binary: isBinary });
      this.notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.notify();
    });
    ws.on('error', () => undefined);
  }

  static open(url: string): Promise<Probe> {
    const probe = new Probe(new WebSocket(url));
    return new Promise((resolve, reject) => {
      probe.ws.once('open', () => resolve(probe));
      probe.ws.once('unexpected-response', (_req, res) => {
        res.resume();
        reject(new Error(`upgrade refused: ${res.statusCode}`));
      });
      probe.ws.once('error', reject);
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolves true once `cond` holds, false after `ms`. */
  until(cond: () => boolean, ms: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(value);
      };
      const listener = () => {
        if (cond()) done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      this.listeners.add(listener);
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: Wire): void {
    if (typeof frame === 'string') this.ws.send(frame, () => undefined);
    else if (!Buffer.isBuffer(frame)) frame.fragments.forEach((part, i) => this.ws.send(part, { binary: false, fin: i === frame.fragments.length - 1 }, () => undefined));
    else this.ws.send(frame, { binary: true }, () => undefined);
  }

  /** Frames since `mark` that are replies (not message pushes). */
  repliesSince(mark: number): Entry[] {
    return this.entries.slice(mark).filter((e) => e.json?.type !== 'message');
  }

  messages(): any[] {
    return this.entries.filter((e) => e.json?.type === 'message').map((e) => e.json);
  }

  /** Sends a ping with `id` and waits for its pong. */
  async ping(id: string, ms = 10_000): Promise<boolean> {
    if (!this.isOpen) return false;
    const mark = this.entries.length;
    this.send(JSON.stringify({ action: 'ping', id }));
    return this.until(() => this.entries.slice(mark).some((e) => e.json?.type === 'pong' && e.json.id === id), ms);
  }

  async request(frame: Record<string, unknown> & { id: string }, ms = 10_000): Promise<any> {
    const mark = this.entries.length;
    this.send(JSON.stringify(frame));
    const ok = await this.until(() => this.entries.slice(mark).some((e) => e.json?.id === frame.id && e.json.type !== 'message'), ms);
    if (!ok) throw new Error(`no reply to ${frame.id}`);
    return this.entries.slice(mark).find((e) => e.json?.id === frame.id && e.json.type !== 'message')!.json;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.isOpen || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.until(() => this.closed !== undefined, 5000).then(() => undefined);
  }
}

interface FrameObservation {
  sent: Wire;
  replies: Entry[];
  closeCode?: number;
  /** Whether a ping sent after the reply got its pong (only tried when the socket was open). */
  pongAfter: boolean;
  openAfter: boolean;
  harnessError?: string;
  /** Inbox row counts after the drain. */
  quietRows: Record<string, number>;
  /** Rows in refuse-pool senders' inboxes addressed like this case's `to`. */
  senderRows: number;
  audienceRows: Record<string, { withMsgId: number; total: number }>;
  /** The message as `sync` returned it to the sender (acks). */
  synced?: any;
  pollutedAfter: boolean;
}

interface UpgradeObservation {
  outcome: number | 'open' | 'timeout';
  error?: string;
  rowWhileOpen?: boolean;
  pongAfter?: boolean;
}

let t: TestGateway;
let wsUrl: string;
const frameObs = new Map<FrameCase, FrameObservation>();
const upgradeObs = new Map<UpgradeCase, UpgradeObservation>();
const earlyObs = new Map<string, { opened?: boolean; rowAfterSettle: boolean }>();
const pairObs = new Map<IdPairCase, { acks: any[]; synced: any[]; error?: string }>();
const dupObs: Record<string, { replies: any[]; recipientFrames: any[]; recipientRows: any[]; senderRows: any[]; bodies: unknown[]; error?: string }> = {};
const openProbes: Probe[] = [];
let deadLetters = -1;
let startedAt = 0;
let runMs = 0;

async function connect(userId: string, deviceId: string): Promise<Probe> {
  const probe = await Probe.open(`${wsUrl}/?token=${encodeURIComponent(await tokenFor(userId, deviceId))}`);
  openProbes.push(probe);
  if (!(await probe.ping(`hello-${userId}-${deviceId}`))) throw new Error(`no pong for ${userId}/${deviceId}`);
  return probe;
}

const isPolluted = () => ({} as Record<string, unknown>).x !== undefined || ({} as Record<string, unknown>).polluted !== undefined;

let pingSeq = 0;
async function runFrameCase(probe: Probe, c: FrameCase): Promise<void> {
  const frame = typeof c.frame === 'function' ? c.frame() : c.frame;
  const obs: FrameObservation = { sent: frame, replies: [], pongAfter: false, openAfter: false, quietRows: {}, senderRows: 0, audienceRows: {}, pollutedAfter: false };
  frameObs.set(c, obs);
  try {
    const mark = probe.entries.length;
    probe.send(frame);
    if (c.expect.reply === 'close') {
      await probe.until(() => probe.closed !== undefined, 5000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    } else {
      await probe.until(() => probe.closed !== undefined || probe.repliesSince(mark).length > 0, 15_000);
    }
    const pingId = `hp-${++pingSeq}`;
    if (probe.isOpen) obs.pongAfter = await probe.ping(pingId);
    obs.replies = probe.repliesSince(mark).filter((e) => !(e.json?.type === 'pong' && e.json.id === pingId));
    obs.openAfter = probe.isOpen;
    obs.closeCode = probe.closed?.code;
    obs.pollutedAfter = isPolluted();
  } catch (err) {
    obs.harnessError = (err as Error).stack ?? String(err);
  }
}

/** Runs cases over a pool of sockets: each socket runs its share one after another; a socket that closed is replaced. */
async function runPool(users: string[], devicePrefix: string, cases: FrameCase[]): Promise<Probe[]> {
  const lanes = users.map((user, i) => ({ user, device: `${devicePrefix}${i + 1}-`, cases: [] as FrameCase[], probe: undefined as Probe | undefined, n: 0 }));
  cases.forEach((c, i) => lanes[i % lanes.length]!.cases.push(c));
  await Promise.all(
    lanes.map(async (lane) => {
      for (const c of lane.cases) {
        if (!lane.probe || !lane.probe.isOpen) lane.probe = await connect(lane.user, `${lane.device}${++lane.n}`);
        await runFrameCase(lane.probe, c);
      }
    }),
  );
  return lanes.map((lane) => lane.probe).filter((p): p is Probe => p !== undefined && p.isOpen);
}

async function runOwn(cases: FrameCase[], concurrency = 6): Promise<void> {
  await inBatches(cases, concurrency, async (c) => {
    const user = fresh('own');
    let probe: Probe;
    try {
      probe = await connect(user, 'd1');
    } catch (err) {
      frameObs.set(c, { sent: '', replies: [], pongAfter: false, openAfter: false, quietRows: {}, senderRows: 0, audienceRows: {}, pollutedAfter: false, harnessError: String(err) });
      return;
    }
    await runFrameCase(probe, c);
    await probe.close();
  });
}

async function inBatches<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** Every message of a user's inbox, through sync pages on one of its sockets. */
async function syncAll(probe: Probe): Promise<Map<string, any>> {
  const byMsgId = new Map<string, any>();
  let after: string | undefined;
  for (let page = 0; page < 200; page++) {
    const reply = await probe.request({ action: 'sync', id: `all-${++pingSeq}`, limit: 500, ...(after ? { after } : {}) }, 20_000);
    if (reply.type !== 'sync') throw new Error(`sync failed: ${JSON.stringify(reply)}`);
    for (const m of reply.messages) byMsgId.set(m.msgId, m);
    if (!reply.next) break;
    after = reply.next;
  }
  return byMsgId;
}

async function scanConnectionUsers(): Promise<Set<string>> {
  const users = new Set<string>();
  let start: Record<string, any> | undefined;
  do {
    const page = await t.ddb.send(new ScanCommand({ TableName: t.gateway.tableNames.connections, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) users.add(item.userId);
    start = page.LastEvaluatedKey;
  } while (start);
  return users;
}

async function runUpgrades(): Promise<void> {
  await inBatches(upgradeCases, 8, async (c) => {
    let url: string;
    try {
      url = wsUrl + (await c.query());
    } catch (err) {
      upgradeObs.set(c, { outcome: 'timeout', error: String(err) });
      return;
    }
    const withTimeout = <T>(p: Promise<T>, fallback: T) => Promise.race([p, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), 15_000))]);
    if (c.expect !== 'open') {
      const outcome = await withTimeout<UpgradeObservation['outcome']>(
        refusedUpgradeStatus(url).catch(() => 'open' as const),
        'timeout',
      );
      upgradeObs.set(c, { outcome });
      return;
    }
    try {
      const probe = await withTimeout(Probe.open(url), undefined);
      if (!probe) {
        upgradeObs.set(c, { outcome: 'timeout' });
        return;
      }
      const subOf = (query: string) => {
        const token = new URL(query, 'http://x').searchParams.getAll('token').at(-1) ?? '';
        return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')).sub as string;
      };
      const sub = subOf(url.slice(wsUrl.length));
      const rows = await t.registry.listByUser(sub, Date.now());
      const pongAfter = await probe.ping('up-ping');
      await probe.close();
      upgradeObs.set(c, { outcome: 'open', rowWhileOpen: rows.length === 1, pongAfter });
    } catch (err) {
      const status = /upgrade refused: (\d+)/.exec(String(err))?.[1];
      upgradeObs.set(c, { outcome: status ? Number(status) : 'timeout' });
    }
  });
}

async function runEarlyCloses(): Promise<void> {
  const openClose = earlyOpenClose.map(async (user) => {
    const ws = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(await tokenFor(user, 'early'))}`);
    ws.on('error', () => undefined);
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => {
        ws.close();
        resolve(true);
      });
      ws.once('unexpected-response', () => resolve(false));
      ws.once('error', () => resolve(false));
    });
    earlyObs.set(user, { opened, rowAfterSettle: true });
    await new Promise((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve(undefined) : ws.once('close', resolve)));
  });
  const url = new URL(wsUrl);
  const destroyed = earlyDestroy.map(async (user) => {
    const token = await tokenFor(user, 'early');
    await new Promise<void>((resolve) => {
      const socket = netConnect({ host: url.hostname, port: Number(url.port) }, () => {
        const key = prng(`key-${user}`, 16).toString('base64');
        socket.write(
          `GET /?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          () => {
            socket.destroy();
            resolve();
          },
        );
      });
      socket.on('error', () => resolve());
    });
    earlyObs.set(user, { rowAfterSettle: true });
  });
  await Promise.all([...openClose, ...destroyed]);
  const all = [...earlyOpenClose, ...earlyDestroy];
  const present = await eventually(scanConnectionUsers, (users) => all.every((u) => !users.has(u)), 15_000, 'early-closed connections gone').catch(() => scanConnectionUsers());
  for (const user of all) earlyObs.get(user)!.rowAfterSettle = present.has(user);
}

async function runIdPairs(): Promise<void> {
  await inBatches(idPairs, 4, async (c) => {
    const result = { acks: [] as any[], synced: [] as any[], error: undefined as string | undefined };
    pairObs.set(c, result);
    try {
      const probe = await connect(fresh('pair'), 'd1');
      const recipient = fresh('r');
      for (const [i, id] of c.ids.entries()) result.acks.push(await probe.request({ action: 'send', id, to: { user: recipient }, body: { pair: i } }));
      await t.gateway.drainQueues(60_000);
      result.synced = [...(await syncAll(probe)).values()];
    } catch (err) {
      result.error = String(err);
    }
  });
}

async function runDuplicates(): Promise<void> {
  const sender = 'hx-dup-sender';
  const recipient = 'hx-dup-recipient';
  const senders = await Promise.all(Array.from({ length: DUP_SOCKETS }, (_, i) => connect(sender, `d${i}`)));
  const receiver = await connect(recipient, 'only');
  for (const [key, bodyOf] of [
    ['same frame', () => ({ text: 'once' })],
    ['different bodies', (i: number) => ({ attempt: i })],
  ] as Array<[string, (i: number) => unknown]>) {
    const id = key === 'same frame' ? 'dup-1' : 'dup-2';
    const bodies = senders.map((_, i) => bodyOf(i));
    const obs = { replies: [] as any[], recipientFrames: [] as any[], recipientRows: [] as any[], senderRows: [] as any[], bodies, error: undefined as string | undefined };
    dupObs[key] = obs;
    try {
      const marks = senders.map((p) => p.entries.length);
      senders.forEach((p, i) => p.send(JSON.stringify({ action: 'send', id, to: { user: recipient }, body: bodies[i] })));
      await Promise.all(senders.map((p, i) => p.until(() => p.repliesSince(marks[i]!).length > 0, 20_000)));
      obs.replies = senders.map((p, i) => p.repliesSince(marks[i]!)[0]?.json);
      await t.gateway.drainQueues(60_000);
      await receiver.ping(`dup-settle-${key}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const msgIds = new Set(obs.replies.map((r) => r?.msgId));
      obs.recipientFrames = receiver.messages().filter((m) => msgIds.has(m.msgId));
      obs.recipientRows = (await t.inboxRows(recipient)).filter((r) => msgIds.has(r.msgId));
      obs.senderRows = (await t.inboxRows(sender)).filter((r) => msgIds.has(r.msgId));
    } catch (err) {
      obs.error = String(err);
    }
  }
}

// ---- the run ------------------------------------------------------------------------------------------

beforeAll(async () => {
  startedAt = Date.now();
  t = await startTestGateway();
  wsUrl = t.gateway.wsUrl;
  for (const [group, members] of groupsToCreate) await t.groups.addMembers(group, members);

  // hx-sync gets three messages; a first page of one gives a cursor, a next and a msgId.
  const source = await connect('hx-sync-source', 'd1');
  for (const body of SYNC_SETUP_BODIES) await source.request({ action: 'send', id: `setup-${body.n}`, to: { user: SYNC_USER }, body });
  await t.gateway.drainQueues(60_000);
  const syncProbe = await connect(SYNC_USER, 'setup');
  const first = await syncProbe.request({ action: 'sync', id: 'setup-sync', limit: 1 });
  if (first.type !== 'sync' || first.messages.length !== 1 || !first.next) throw new Error(`setup sync failed: ${JSON.stringify(first)}`);
  Object.assign(syncSetup, { cursor: first.cursor, next: first.next, msgId: first.messages[0].msgId });

  const byPool = (pool: Pool) => frameCases.filter((c) => c.pool === pool);
  const [, acceptProbes] = await Promise.all([
    runPool(refuseUsers, 'r', byPool('refuse')),
    runPool(acceptUsers, 'a', byPool('accept')),
    runPool(Array.from({ length: POOL_SIZE.sync }, () => SYNC_USER), 's', byPool('sync')),
    runOwn(byPool('own')),
    runUpgrades(),
    runEarlyCloses(),
  ]);
  await runIdPairs();
  await t.gateway.drainQueues(60_000);

  // What was stored: quiet inboxes, audience inboxes, the senders' own copies through sync.
  const refuseSenderFrames = (await Promise.all(refuseUsers.map((u) => t.inboxRows(u)))).flat().map((row) => JSON.parse(row.frame));
  const synced = new Map<string, any>();
  for (const probe of acceptProbes) for (const [msgId, m] of await syncAll(probe)) synced.set(msgId, m);
  await inBatches([...frameObs.entries()], 8, async ([c, obs]) => {
    for (const user of c.quiet) obs.quietRows[user] = (await t.inboxRows(user)).length;
    const to = parsedOrUndefined(obs.sent)?.to;
    if (to !== undefined) obs.senderRows = refuseSenderFrames.filter((f) => JSON.stringify(f.to) === JSON.stringify(to)).length;
    const ack = obs.replies[0]?.json;
    if (c.expect.reply === 'ack' && ack?.type === 'ack') {
      obs.synced = synced.get(ack.msgId);
      for (const user of c.audience) {
        const rows = await t.inboxRows(user);
        obs.audienceRows[user] = { withMsgId: rows.filter((r) => r.msgId === ack.msgId).length, total: rows.length };
      }
    }
  });

  await runDuplicates();

  const sqs = new SQSClient({ endpoint: t.gateway.sqsEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  deadLetters = 0;
  for (const url of Object.values(t.gateway.deadLetterQueueUrls)) {
    const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes;
    deadLetters += Number(attrs?.ApproximateNumberOfMessages ?? 0) + Number(attrs?.ApproximateNumberOfMessagesNotVisible ?? 0);
  }
  sqs.destroy();
  runMs = Date.now() - startedAt;
}, 240_000);

afterAll(async () => {
  await Promise.all(openProbes.map((p) => p.close()));
  await t?.stop();
  const errors: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  const closes: Record<string, number> = {};
  let roundTripped = 0;
  for (const [c, obs] of frameObs) {
    for (const e of obs.replies) if (e.json?.type === 'error') errors[e.json.code] = (errors[e.json.code] ?? 0) + 1;
    if (obs.closeCode !== undefined) closes[obs.closeCode] = (closes[obs.closeCode] ?? 0) + 1;
    if (c.expect.reply === 'ack' && obs.synced !== undefined && JSON.stringify(obs.synced.body) === JSON.stringify(expectedBodyOf(c))) roundTripped++;
  }
  for (const obs of upgradeObs.values()) if (typeof obs.outcome === 'number') statuses[obs.outcome] = (statuses[obs.outcome] ?? 0) + 1;
  console.log(
    `hostile inputs: ${caseCount} cases: ${Object.values(errors).reduce((a, b) => a + b, 0)} error frames by code ${JSON.stringify(errors)}, ` +
      `${Object.values(statuses).reduce((a, b) => a + b, 0)} refused upgrades by status ${JSON.stringify(statuses)}, ` +
      `${Object.values(closes).reduce((a, b) => a + b, 0)} closes by code ${JSON.stringify(closes)}, ` +
      `${roundTripped} accepted and round-tripped; cases ran in ${(runMs / 1000).toFixed(1)} s`,
  );
});

// ---- assertions ---------------------------------------------------------------------------------------

/** The body as JSON carries it: parsed from the frame text as sent (so -0 is 0, like JSON.stringify). */
const expectedBodyOf = (c: FrameCase) => {
  const body = JSON.parse(textOf(typeof c.frame === 'function' ? c.frame() : c.frame)!).body;
  return JSON.parse(JSON.stringify(body));
};
const ERROR_KEYS = ['code', 'id', 'message', 'type'];

function checkFrameCase(c: FrameCase): void {
  const obs = frameObs.get(c);
  expect(obs).toBeDefined();
  expect(obs!.harnessError).toBeUndefined();
  const { replies } = obs!;
  const shown = replies.map((e) => e.json ?? e.raw.slice(0, 200));
  const e = c.expect;
  if (e.reply === 'close') {
    expect({ replies: shown, closeCode: obs!.closeCode }).toEqual({ replies: [], closeCode: e.code });
  } else {
    // (1) exactly one reply, of the documented kind (shown with the socket's fate when not).
    if (shown.length !== 1) expect({ replies: shown, closeCode: obs!.closeCode }).toEqual({ replies: [expect.anything()], closeCode: undefined });
    const reply = replies[0]!.json;
    const echo = expectedEcho(obs!.sent);
    const idPart = echo === undefined ? {} : { id: echo };
    switch (e.reply) {
      case 'error':
        expect(reply).toEqual({ type: 'error', code: e.code, message: expect.any(String), ...idPart });
        expect(Object.keys(reply).every((k) => ERROR_KEYS.includes(k))).toBe(true);
        if (echo === undefined) expect(reply).not.toHaveProperty('id');
        expect(reply.message.length).toBeGreaterThan(5);
        expect(reply.message).not.toMatch(/\n\s+at /);
        if (e.message !== undefined) expect(reply.message).toMatch(e.message);
        break;
      case 'ack':
        expect(reply).toEqual({ type: 'ack', msgId: expect.stringMatching(ULID), ts: expect.any(Number), ...idPart });
        break;
      case 'pong':
        expect(reply).toEqual({ type: 'pong', ts: expect.any(Number), ...idPart });
        break;
      case 'sync':
        expect(reply).toEqual({
          type: 'sync',
          messages: expect.any(Array),
          next: e.more === true || (e.more === undefined && reply.next !== null) ? expect.stringMatching(NEXT_CURSOR) : null,
          cursor: expect.stringMatching(RESUME_CURSOR),
          ...idPart,
        });
        if (reply.next !== null) expect(reply.next).toMatch(NEXT_CURSOR);
        if (e.count !== undefined) expect(reply.messages).toHaveLength(e.count);
        for (const m of reply.messages) expect(SYNC_SETUP_BODIES).toContainEqual(m.body);
        break;
    }
    // (2) + (4): the socket stays open and still answers a ping.
    expect({ open: obs!.openAfter, closeCode: obs!.closeCode, pong: obs!.pongAfter }).toEqual({ open: true, closeCode: undefined, pong: true });
  }
  // (3) nothing stored where it should not be.
  if (e.reply !== 'ack') {
    for (const user of c.quiet) expect({ user, rows: obs!.quietRows[user] }).toEqual({ user, rows: 0 });
    expect(obs!.senderRows).toBe(0);
  } else {
    const ack = replies[0]!.json;
    const body = expectedBodyOf(c);
    expect(obs!.synced).toBeDefined();
    expect(obs!.synced).toEqual({ type: 'message', msgId: ack.msgId, from: expect.any(String), to: parsedOrUndefined(obs!.sent)!.to, body, ts: ack.ts });
    expect(JSON.stringify(obs!.synced.body)).toBe(JSON.stringify(body));
    for (const user of c.audience) {
      expect({ user, ...obs!.audienceRows[user] }).toEqual({ user, withMsgId: 1, total: c.exclusive.includes(user) ? 1 : expect.any(Number) });
    }
  }
  expect(obs!.pollutedAfter).toBe(false);
}

/** Every generated test is a case; counted for the summary line. */
let caseCount = 0;
const hostile = (title: string, fn: () => unknown) => {
  caseCount++;
  test(title, async () => {
    await fn();
  });
};

const categories = [...new Set(frameCases.map((c) => c.category))];
const describeExpect = (e: Expect) =>
  e.reply === 'error' ? `${e.code}, socket open` : e.reply === 'close' ? `closed ${e.code}, no reply` : e.reply === 'ack' ? 'ack and exact round trip' : e.reply;
for (const category of categories) {
  describe(category, () => {
    for (const c of frameCases.filter((x) => x.category === category)) {
      hostile(`${c.name} → ${describeExpect(c.expect)}`, () => checkFrameCase(c));
    }
  });
}

describe('client ids that must stay distinct', () => {
  for (const c of idPairs) {
    hostile(c.name, () => {
      const obs = pairObs.get(c)!;
      expect(obs.error).toBeUndefined();
      expect(obs.acks.map((a) => a.type)).toEqual(['ack', 'ack']);
      expect(obs.acks.map((a) => a.id)).toEqual(c.ids);
      const msgIds = new Set(obs.acks.map((a) => a.msgId));
      expect(msgIds.size).toBe(c.same ? 1 : 2);
      // Each message is stored once and round-trips; with the same id the first body wins.
      expect(obs.synced.map((m) => [m.msgId, m.body]).sort()).toEqual(
        c.same ? [[obs.acks[0].msgId, { pair: 0 }]] : [[obs.acks[0].msgId, { pair: 0 }], [obs.acks[1].msgId, { pair: 1 }]].sort(),
      );
    });
  }
});

describe('tokens at the upgrade', () => {
  for (const c of upgradeCases) {
    hostile(c.name, () => {
      const obs = upgradeObs.get(c);
      expect(obs).toBeDefined();
      expect(obs!.error).toBeUndefined();
      if (c.expect === 'refused') expect([401, 403]).toContain(obs!.outcome);
      else expect(obs!.outcome).toBe(c.expect);
      if (c.expect === 'open') expect({ row: obs!.rowWhileOpen, pong: obs!.pongAfter }).toEqual({ row: true, pong: true });
    });
  }
  hostile('no connection row exists for any refused token', async () => {
    const refusedSubs = upgradeCases.filter((c) => c.expect !== 'open' && c.sub).map((c) => c.sub!);
    const rows = await connectionUsersAtEnd;
    expect(refusedSubs.filter((sub) => [...rows].some((u) => u.startsWith(sub)))).toEqual([]);
  });
});

/** Filled once, after the run, before the gateway stops (afterAll). */
let connectionUsersAtEnd: Promise<Set<string>>;
beforeAll(() => {
  connectionUsersAtEnd = scanConnectionUsers();
});

describe('early closes', () => {
  for (const [i, user] of earlyOpenClose.entries()) {
    hostile(`client ${i + 1} closing right after open leaves no connection row`, () => {
      expect(earlyObs.get(user)).toEqual({ opened: true, rowAfterSettle: false });
    });
  }
  for (const [i, user] of earlyDestroy.entries()) {
    hostile(`client ${i + 1} destroying its TCP socket right after the upgrade request leaves no connection row`, () => {
      expect(earlyObs.get(user)).toEqual({ rowAfterSettle: false });
    });
  }
});

describe('concurrent duplicate ids from 10 sockets of one user', () => {
  for (const key of ['same frame', 'different bodies']) {
    const id = key === 'same frame' ? 'dup-1' : 'dup-2';
    hostile(`${key}: 10 acks echoing "${id}", all with one msgId`, () => {
      const obs = dupObs[key]!;
      expect(obs.error).toBeUndefined();
      expect(obs.replies.map((r) => r?.type)).toEqual(Array(DUP_SOCKETS).fill('ack'));
      expect(obs.replies.map((r) => r.id)).toEqual(Array(DUP_SOCKETS).fill(id));
      expect(new Set(obs.replies.map((r) => r.msgId)).size).toBe(1);
    });
    hostile(`${key}: the recipient's one device gets exactly one message frame`, () => {
      const obs = dupObs[key]!;
      expect(obs.recipientFrames).toHaveLength(1);
      expect(obs.recipientFrames[0].msgId).toBe(obs.replies[0].msgId);
      expect(obs.bodies).toContainEqual(obs.recipientFrames[0].body);
    });
    hostile(`${key}: exactly one inbox row for the recipient and one for the sender, with the delivered body`, () => {
      const obs = dupObs[key]!;
      expect(obs.recipientRows).toHaveLength(1);
      expect(obs.senderRows).toHaveLength(1);
      expect(JSON.parse(obs.recipientRows[0].frame).body).toEqual(obs.recipientFrames[0]?.body);
    });
  }
});

describe('global', () => {
  hostile('nothing polluted Object.prototype in this process (the handlers run in it)', () => {
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).filter((k) => ['x', 'polluted', 'body', 'user', 'limit', 'id'].includes(k))).toEqual([]);
  });
  hostile("the refusing senders' inboxes are empty: no refused frame was stored", async () => {
    expect(refusedInboxesAtEnd).toEqual(refuseUsers.map((user) => ({ user, rows: 0 })));
  });
  hostile('the dead-letter queue is empty: nothing was queued that could not be stored', () => {
    expect(deadLetters).toBe(0);
  });
});

let refusedInboxesAtEnd: Array<{ user: string; rows: number }> = [];
beforeAll(async () => {
  refusedInboxesAtEnd = await Promise.all(refuseUsers.map(async (user) => ({ user, rows: (await t.inboxRows(user)).length })));
});

