import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import {
  aesKeyOf,
  decryptMessage,
  encryptedReply,
  encryptMessage,
  signaturesEqual,
  wechatSignature,
  WechatCryptoError,
  type WechatCryptoFailure,
} from '../../../lambdas/domain/wechat-crypto';
import { wechatVectors } from '../../support/wechat-vectors';

// See test/fixtures/README.md for where each vector comes from.
const vectors = wechatVectors;
const official = vectors.find((v) => v.id === 'wecom-official-post')!;
const easywechat = vectors.find((v) => v.id === 'oa-easywechat')!;

const KEY = official.aesKey;
const RECEIVE_ID = official.receiveId;

/** AES-256-CBC with WeChat's key/IV and no padding: to build ciphertexts that encryptMessage never would. */
function rawEncrypt(plain: Buffer, encodingAESKey = KEY): string {
  const key = aesKeyOf(encodingAESKey);
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
}

function rawDecrypt(base64: string, encodingAESKey = KEY): Buffer {
  const key = aesKeyOf(encodingAESKey);
  const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
  decipher.setAutoPadding(false);
  return Buffer.concat([decipher.update(Buffer.from(base64, 'base64')), decipher.final()]);
}

/** random(16) | length(4) | xml | receiveId, unpadded, with an optional lie in the length field. */
function body(xml: string, receiveId = RECEIVE_ID, lengthField?: number): Buffer {
  const xmlBytes = Buffer.from(xml, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(lengthField ?? xmlBytes.length);
  return Buffer.concat([randomBytes(16), length, xmlBytes, Buffer.from(receiveId, 'utf8')]);
}

function pkcs7(data: Buffer, block = 32): Buffer {
  const pad = block - (data.length % block);
  return Buffer.concat([data, Buffer.alloc(pad, pad)]);
}

function failure(run: () => unknown): WechatCryptoError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(WechatCryptoError);
    return err as WechatCryptoError;
  }
  throw new Error('expected a WechatCryptoError, nothing was thrown');
}

function expectFailure(run: () => unknown, reason: WechatCryptoFailure): WechatCryptoError {
  const err = failure(run);
  expect(err.reason).toBe(reason);
  return err;
}

describe('published vectors', () => {
  it.each(vectors.map((v) => [v.id, v] as const))('%s: msg_signature reproduced, decrypts to exactly the plaintext and the receive id', (_id, v) => {
    expect(wechatSignature([v.token, v.timestamp, v.nonce, v.encrypt])).toBe(v.msgSignature);
    expect(signaturesEqual(wechatSignature([v.token, v.timestamp, v.nonce, v.encrypt]), v.msgSignature)).toBe(true);
    expect(decryptMessage(v.aesKey, v.encrypt, v.receiveId)).toEqual({ xml: v.plain, receiveId: v.receiveId });
  });

  it.each(vectors.map((v) => [v.id, v] as const))('%s: refused for another receive id, including near misses', (_id, v) => {
    for (const other of ['wx0000000000000000', v.receiveId.toUpperCase(), `${v.receiveId} `, v.receiveId.slice(0, -1), `${v.receiveId}x`, '']) {
      expectFailure(() => decryptMessage(v.aesKey, v.encrypt, other), 'receive_id_mismatch');
    }
  });

  it.each(vectors.map((v) => [v.id, v] as const))('%s: encryptMessage with the same random bytes gives the same ciphertext', (_id, v) => {
    const random16 = rawDecrypt(v.encrypt, v.aesKey).subarray(0, 16);
    expect(encryptMessage(v.aesKey, v.plain, v.receiveId, random16)).toBe(v.encrypt);
  });

  it('every vector is padded to a multiple of 32 bytes, as WeChat does', () => {
    for (const v of vectors) expect(Buffer.from(v.encrypt, 'base64').length % 32).toBe(0);
  });
});

describe('wechatSignature', () => {
  it('sorts as plain strings: a numeric-aware sort breaks the easywechat vector', () => {
    const parts = [easywechat.token, easywechat.timestamp, easywechat.nonce, easywechat.encrypt];
    // As strings "1458300676" < "260774613"; as numbers the other way round.
    expect(easywechat.timestamp < easywechat.nonce).toBe(true);
    expect(Number(easywechat.timestamp) > Number(easywechat.nonce)).toBe(true);
    const numericAware = [...parts].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    expect(createHash('sha1').update(numericAware.join('')).digest('hex')).not.toBe(easywechat.msgSignature);
    expect(wechatSignature(parts)).toBe(easywechat.msgSignature);
  });

  it('does not depend on the order given and does not reorder the caller’s array', () => {
    const parts = ['token', '1700000000', '99', 'Zz'];
    const copy = [...parts];
    expect(wechatSignature(parts)).toBe(wechatSignature([...parts].reverse()));
    expect(parts).toEqual(copy);
  });

  it('URL verification signs [token, timestamp, nonce] (a known SHA-1)', () => {
    // sorted: "1409659589" "263014780" "QDG6eK" -> sha1("1409659589263014780QDG6eK")
    expect(wechatSignature(['QDG6eK', '1409659589', '263014780'])).toBe(createHash('sha1').update('1409659589263014780QDG6eK').digest('hex'));
  });

  it('is lower-case hex of 40 characters', () => {
    expect(wechatSignature(['a'])).toMatch(/^[0-9a-f]{40}$/);
    expect(wechatSignature([])).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709'); // sha1("")
  });
});

describe('signaturesEqual', () => {
  it('is true only for identical strings', () => {
    const s = official.msgSignature;
    expect(signaturesEqual(s, s)).toBe(true);
    expect(signaturesEqual(s, `${s.slice(0, -1)}0`)).toBe(false);
    expect(signaturesEqual(s, s.toUpperCase())).toBe(false);
    expect(signaturesEqual('', '')).toBe(true);
  });

  it('returns false without throwing for different lengths (bytes, not characters)', () => {
    expect(signaturesEqual(official.msgSignature, official.msgSignature.slice(1))).toBe(false);
    expect(signaturesEqual('', official.msgSignature)).toBe(false);
    expect(signaturesEqual('é', 'ee')).toBe(false); // same byte length 2, different content
    expect(signaturesEqual('é', 'e')).toBe(false); // same character length, different byte length
  });
});

describe('aesKeyOf', () => {
  it('decodes 43 characters to exactly 32 bytes, including keys with non-zero spare bits', () => {
    expect(aesKeyOf(official.aesKey)).toHaveLength(32);
    expect(aesKeyOf(easywechat.aesKey)).toHaveLength(32);
  });

  it.each([
    ['too short', official.aesKey.slice(0, 42)],
    ['too long', `${official.aesKey}A`],
    ['padded', `${official.aesKey}=`],
    ['URL alphabet', `${official.aesKey.slice(0, 42)}-`],
    ['whitespace', ` ${official.aesKey.slice(1)}`],
    ['empty', ''],
  ])('refuses a key that is %s, without echoing it', (_what, key) => {
    const err = expectFailure(() => aesKeyOf(key), 'bad_key');
    expect(err.code).toBe('internal');
    if (key.length > 4) expect(err.message).not.toContain(key.slice(4, 20));
  });

  it('decryptMessage and encryptMessage refuse a bad key the same way', () => {
    expectFailure(() => decryptMessage('short', official.encrypt, RECEIVE_ID), 'bad_key');
    expectFailure(() => encryptMessage('short', '<xml/>', RECEIVE_ID), 'bad_key');
  });
});

describe('decryptMessage refuses tampered or malformed ciphertext', () => {
  const ciphertext = () => Buffer.from(official.encrypt, 'base64');

  it('a flipped byte in the last block: bad padding', () => {
    // Flipping a byte of the last ciphertext block garbles the whole last plaintext block; flipping
    // byte i of the block before flips exactly byte i of the last plaintext block (here the pad byte).
    for (const offset of [1, 8, 16, 16 + 1]) {
      const bytes = ciphertext();
      bytes[bytes.length - offset] ^= 0x01;
      expectFailure(() => decryptMessage(KEY, bytes.toString('base64'), RECEIVE_ID), 'bad_padding');
    }
  });

  it('a truncated ciphertext: bad padding (by whole 32-byte blocks) or bad length (otherwise)', () => {
    const bytes = ciphertext();
    expectFailure(() => decryptMessage(KEY, bytes.subarray(0, bytes.length - 32).toString('base64'), RECEIVE_ID), 'bad_padding');
    expectFailure(() => decryptMessage(KEY, bytes.subarray(0, bytes.length - 16).toString('base64'), RECEIVE_ID), 'bad_length');
    expectFailure(() => decryptMessage(KEY, bytes.subarray(0, bytes.length - 1).toString('base64'), RECEIVE_ID), 'bad_length');
    expectFailure(() => decryptMessage(KEY, official.encrypt.slice(0, -4), RECEIVE_ID), 'bad_length');
  });

  it('not base64: other alphabets, whitespace, missing padding, stray characters', () => {
    for (const text of [
      official.encrypt.replace(/\+/g, '-').replace(/\//g, '_'),
      `${official.encrypt.slice(0, 40)}\n${official.encrypt.slice(40)}`,
      ` ${official.encrypt}`,
      official.encrypt.replace(/=+$/, ''),
      `${official.encrypt}=`,
      '%%%%',
      'abc',
      'ab=c',
    ]) {
      expectFailure(() => decryptMessage(KEY, text, RECEIVE_ID), 'bad_base64');
    }
  });

  it('a length that is not a positive multiple of 16 bytes (AES blocks), or of 32 (WeChat blocks)', () => {
    expectFailure(() => decryptMessage(KEY, '', RECEIVE_ID), 'bad_length');
    for (const n of [1, 15, 16, 17, 31, 33, 47, 48, 80]) {
      expectFailure(() => decryptMessage(KEY, randomBytes(n).toString('base64'), RECEIVE_ID), 'bad_length');
    }
  });

  it('pad byte 0, pad byte 33, and unequal pad bytes', () => {
    const data = body('<xml><A>1</A></xml>');
    const padLength = 32 - (data.length % 32);
    expect(padLength).toBeGreaterThan(2);
    /** data, then `count` bytes of `fill` whose last byte is `last`. */
    const padded = (count: number, fill: number, last = fill) => {
      const bytes = Buffer.concat([data, Buffer.alloc(count, fill)]);
      bytes[bytes.length - 1] = last;
      return rawEncrypt(bytes);
    };
    expect(decryptMessage(KEY, padded(padLength, padLength), RECEIVE_ID).xml).toBe('<xml><A>1</A></xml>');
    // The message does not say which byte value was found (no oracle).
    expect(expectFailure(() => decryptMessage(KEY, padded(padLength, 0), RECEIVE_ID), 'bad_padding').message).toBe('padding byte is not 1..32');
    // 33 bytes of value 33 would be consistent PKCS#7 - but not to 32-byte blocks.
    expectFailure(() => decryptMessage(KEY, padded(padLength + 32, 33), RECEIVE_ID), 'bad_padding');
    expectFailure(() => decryptMessage(KEY, padded(padLength, padLength - 1, padLength), RECEIVE_ID), 'bad_padding');
    // Only one byte off, right next to the pad byte.
    const oneOff = Buffer.concat([data, Buffer.alloc(padLength, padLength)]);
    oneOff[oneOff.length - 2] = padLength + 1;
    expectFailure(() => decryptMessage(KEY, rawEncrypt(oneOff), RECEIVE_ID), 'bad_padding');
  });

  it('nothing but padding', () => {
    expectFailure(() => decryptMessage(KEY, rawEncrypt(Buffer.alloc(32, 32)), RECEIVE_ID), 'bad_length_field');
  });

  it('refuses PKCS#7 to 16 when it is not also PKCS#7 to 32 (16-aligned ciphertext)', () => {
    const data = body('<xml><A>123456789</A></xml>'); // 20 + 27 + 18 = 65 bytes -> 80 when padded to 16
    const padded16 = pkcs7(data, 16);
    expect(padded16).toHaveLength(80);
    expectFailure(() => decryptMessage(KEY, rawEncrypt(padded16), RECEIVE_ID), 'bad_length');
    // The same body padded to 32 is fine.
    expect(decryptMessage(KEY, rawEncrypt(pkcs7(data)), RECEIVE_ID).xml).toBe('<xml><A>123456789</A></xml>');
  });

  it('a full block of padding (32 x 32) is valid', () => {
    const xml = 'x'.repeat(64 - 20 - RECEIVE_ID.length); // 20 + xml + id = 64 bytes
    const padded = pkcs7(body(xml));
    expect(padded).toHaveLength(96);
    expect(padded.subarray(-32).every((b) => b === 32)).toBe(true);
    expect(decryptMessage(KEY, rawEncrypt(padded), RECEIVE_ID).xml).toBe(xml);
  });

  it('a length field larger than the remaining plaintext', () => {
    const xml = '<xml><A>1</A></xml>';
    const remaining = Buffer.byteLength(xml) + Buffer.byteLength(RECEIVE_ID);
    for (const lie of [remaining + 1, 0x7fffffff, 0xffffffff]) {
      const err = expectFailure(() => decryptMessage(KEY, rawEncrypt(pkcs7(body(xml, RECEIVE_ID, lie))), RECEIVE_ID), 'bad_length_field');
      // Decrypted values stay out of messages (no oracle).
      expect(err.message).not.toContain(String(lie));
    }
  });

  it('a length field that cuts the xml short shows up as a receive id mismatch', () => {
    const xml = '<xml><A>1</A></xml>';
    expectFailure(() => decryptMessage(KEY, rawEncrypt(pkcs7(body(xml, RECEIVE_ID, Buffer.byteLength(xml) - 1))), RECEIVE_ID), 'receive_id_mismatch');
  });

  it('a length field exactly equal to the remaining bytes means an empty receive id', () => {
    const xml = '<xml><A>1</A></xml>';
    const plain = pkcs7(body(xml, '', undefined));
    expect(decryptMessage(KEY, rawEncrypt(plain), '')).toEqual({ xml, receiveId: '' });
    expectFailure(() => decryptMessage(KEY, rawEncrypt(plain), RECEIVE_ID), 'receive_id_mismatch');
  });

  it('a plaintext shorter than the 20-byte header', () => {
    // 16 bytes of data + 16 bytes of padding (value 16): 16 bytes left, no room for the length.
    expectFailure(() => decryptMessage(KEY, rawEncrypt(pkcs7(randomBytes(16))), RECEIVE_ID), 'bad_length_field');
    expectFailure(() => decryptMessage(KEY, rawEncrypt(pkcs7(randomBytes(19))), RECEIVE_ID), 'bad_length_field');
  });

  it('an xml that is not valid UTF-8', () => {
    const data = body('');
    const plain = Buffer.concat([data.subarray(0, 16), Buffer.from([0, 0, 0, 2, 0xc3, 0x28]), Buffer.from(RECEIVE_ID)]);
    expectFailure(() => decryptMessage(KEY, rawEncrypt(pkcs7(plain)), RECEIVE_ID), 'bad_utf8');
  });

  it('the wrong key: bad padding (or, rarely, another check) — never a result', () => {
    const other = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
    for (let i = 0; i < 20; i++) {
      const text = encryptMessage(KEY, `<xml><N>${i}</N></xml>`, RECEIVE_ID);
      failure(() => decryptMessage(other, text, RECEIVE_ID));
    }
  });

  it('error messages never carry key material, ciphertext or plaintext', () => {
    const secretXml = '<xml><Content><![CDATA[top secret content]]></Content></xml>';
    const cases: Array<() => unknown> = [
      () => decryptMessage(KEY, encryptMessage(KEY, secretXml, RECEIVE_ID), 'wrong-id'),
      () => decryptMessage(KEY, rawEncrypt(pkcs7(body(secretXml, RECEIVE_ID, 9999)).subarray(0, 64)), RECEIVE_ID),
      () => decryptMessage(KEY, rawEncrypt(pkcs7(body(secretXml, RECEIVE_ID, 9999))), RECEIVE_ID),
      () => decryptMessage(KEY, `${official.encrypt}!`, RECEIVE_ID),
      () => decryptMessage(KEY, official.encrypt.slice(0, -8), RECEIVE_ID),
      () => decryptMessage(`${KEY}x`, official.encrypt, RECEIVE_ID),
    ];
    for (const run of cases) {
      const err = failure(run);
      for (const secret of [KEY, KEY.slice(0, 12), aesKeyOf(KEY).toString('hex').slice(0, 12), 'top secret', official.encrypt.slice(0, 12), RECEIVE_ID]) {
        expect(err.message).not.toContain(secret);
        expect(err.stack ?? '').not.toContain(secret);
      }
      expect(err.code === 'bad_request' || err.code === 'internal').toBe(true);
    }
  });
});

describe('encryptMessage round trips', () => {
  const randomXml = (n: number) => `<xml><Content><![CDATA[${randomBytes(n).toString('base64').slice(0, n)}]]></Content></xml>`;

  it('random xml and receive ids', () => {
    for (let i = 0; i < 50; i++) {
      const xml = randomXml(i * 7);
      const receiveId = `wx${randomBytes(8).toString('hex')}`.slice(0, 2 + (i % 17));
      const text = encryptMessage(KEY, xml, receiveId);
      expect(Buffer.from(text, 'base64').length % 32).toBe(0);
      expect(decryptMessage(KEY, text, receiveId)).toEqual({ xml, receiveId });
    }
  });

  it('unicode content (CJK, emoji, combining marks) and unicode receive ids', () => {
    const xml = '<xml><Content><![CDATA[你好，世界 👋🏽 e\u0301 \u0000 \uFEFFbom]]></Content></xml>';
    for (const receiveId of ['wx5823bf96d3bd56c7', '企业微信', '']) {
      expect(decryptMessage(easywechat.aesKey, encryptMessage(easywechat.aesKey, xml, receiveId), receiveId)).toEqual({ xml, receiveId });
    }
  });

  it('empty xml (WeCom echostr answers are short; empty is the edge)', () => {
    const text = encryptMessage(KEY, '', RECEIVE_ID);
    expect(decryptMessage(KEY, text, RECEIVE_ID)).toEqual({ xml: '', receiveId: RECEIVE_ID });
  });

  it('sizes around the 16- and 32-byte block boundaries', () => {
    // The padded body is 20 + xml + id bytes; walk the xml length across several boundaries.
    for (let extra = 0; extra <= 70; extra++) {
      const xml = 'a'.repeat(extra);
      const text = encryptMessage(KEY, xml, RECEIVE_ID);
      const expectedLength = Math.floor((20 + extra + RECEIVE_ID.length) / 32) * 32 + 32;
      expect(Buffer.from(text, 'base64').length).toBe(expectedLength);
      expect(decryptMessage(KEY, text, RECEIVE_ID).xml).toBe(xml);
    }
  });

  it('uses fresh random bytes by default and the given ones when asked', () => {
    expect(encryptMessage(KEY, '<xml/>', RECEIVE_ID)).not.toBe(encryptMessage(KEY, '<xml/>', RECEIVE_ID));
    const random16 = Buffer.alloc(16, 7);
    const a = encryptMessage(KEY, '<xml/>', RECEIVE_ID, random16);
    expect(encryptMessage(KEY, '<xml/>', RECEIVE_ID, random16)).toBe(a);
    expect(rawDecrypt(a).subarray(0, 16)).toEqual(random16);
    expect(() => encryptMessage(KEY, '<xml/>', RECEIVE_ID, Buffer.alloc(15))).toThrow(RangeError);
  });
});

describe('encryptedReply', () => {
  const reply = '<xml><ToUserName><![CDATA[mycreate]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content></xml>';

  it('wraps the encrypted reply with a msg_signature that verifies, and decrypts back', () => {
    const xml = encryptedReply({ token: official.token, encodingAESKey: KEY, receiveId: RECEIVE_ID, xml: reply, timestamp: 1409659813, nonce: '1372623149' });
    const match = /^<xml><Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]><\/Encrypt><MsgSignature><!\[CDATA\[([0-9a-f]{40})\]\]><\/MsgSignature><TimeStamp>1409659813<\/TimeStamp><Nonce><!\[CDATA\[1372623149\]\]><\/Nonce><\/xml>$/.exec(xml);
    expect(match).not.toBeNull();
    const [, encrypt, msgSignature] = match!;
    expect(signaturesEqual(wechatSignature([official.token, '1409659813', '1372623149', encrypt!]), msgSignature!)).toBe(true);
    expect(decryptMessage(KEY, encrypt!, RECEIVE_ID).xml).toBe(reply);
  });

  it('is deterministic given the random bytes', () => {
    const input = { token: 't', encodingAESKey: KEY, receiveId: RECEIVE_ID, xml: reply, timestamp: '1700000000', nonce: 'abc123', random16: Buffer.alloc(16, 1) };
    expect(encryptedReply(input)).toBe(encryptedReply(input));
    expect(encryptedReply(input)).toContain(`<![CDATA[${encryptMessage(KEY, reply, RECEIVE_ID, Buffer.alloc(16, 1))}]]>`);
  });

  it('refuses a timestamp or nonce that could break the XML', () => {
    const base = { token: 't', encodingAESKey: KEY, receiveId: RECEIVE_ID, xml: reply, timestamp: '1700000000', nonce: 'abc' };
    expect(() => encryptedReply({ ...base, nonce: ']]><x>' })).toThrow(RangeError);
    expect(() => encryptedReply({ ...base, nonce: '' })).toThrow(RangeError);
    expect(() => encryptedReply({ ...base, timestamp: '17e8' })).toThrow(RangeError);
    expect(() => encryptedReply({ ...base, timestamp: -1 })).toThrow(RangeError);
  });
});
