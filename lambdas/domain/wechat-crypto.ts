import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { GatewayError } from './errors';

/**
 * WeChat / WeCom message crypto ("safe mode" of official accounts, every WeCom callback).
 *
 *   msg_signature = sha1(sort([token, timestamp, nonce, Encrypt]).join(''))
 *   Encrypt       = base64(AES-256-CBC(key, iv = key[0..16], pkcs7_32(random(16) | len(4, BE) | xml | receiveId)))
 *   key           = base64decode(EncodingAESKey + '=')   (43 characters -> 32 bytes)
 *
 * The receive id is the official account's appId, or in WeCom the corpId / suiteId (the empty
 * string for some third-party apps). It is the only thing that binds a decrypted message to *our*
 * account, so it is always compared; several popular SDKs skip that check.
 *
 * Nothing here verifies `msg_signature`: the caller does that first (wechatSignature +
 * signaturesEqual), so decryption only ever runs on ciphertext WeChat signed. The checks below are
 * defence in depth and give a precise reason when a configuration is wrong (wrong key, wrong id).
 *
 * Error messages never contain key material, ciphertext or anything decrypted (not even a pad byte
 * or the length field: that would be a decryption oracle): they reach logs and, as GatewayErrors,
 * possibly clients.
 */

export type WechatCryptoFailure =
  /** EncodingAESKey is not 43 base64 characters (a configuration error, not a bad message). */
  | 'bad_key'
  /** The ciphertext is not strict standard base64. */
  | 'bad_base64'
  /** The ciphertext is empty or not a whole number of 32-byte blocks (WeChat's padding unit). */
  | 'bad_length'
  /** The PKCS#7 padding is invalid (pad byte outside 1..32, or pad bytes unequal). */
  | 'bad_padding'
  /** The plaintext is shorter than its 20-byte header, or its length field points beyond the data. */
  | 'bad_length_field'
  /** The message is not valid UTF-8. */
  | 'bad_utf8'
  /** The message was encrypted for another account (or with another account's key). */
  | 'receive_id_mismatch';

export class WechatCryptoError extends GatewayError {
  constructor(
    readonly reason: WechatCryptoFailure,
    message: string,
  ) {
    // A wrong key is our configuration, not the caller's fault.
    super(reason === 'bad_key' ? 'internal' : 'bad_request', message);
    this.name = 'WechatCryptoError';
  }
}

/** WeChat pads to 32-byte blocks (its PKCS7Encoder's block_size), not to AES's 16. */
export const WECHAT_PAD_BLOCK = 32;
const AES_BLOCK = 16;
const RANDOM_BYTES = 16;
const HEADER_BYTES = RANDOM_BYTES + 4;
const ENCODING_AES_KEY = /^[A-Za-z0-9+/]{43}$/;
// Strict standard base64 with padding, as WeChat and WeCom send it (no whitespace, no URL alphabet).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * SHA-1 hex of the parts sorted as plain strings and concatenated.
 * URL verification (`signature`): [token, timestamp, nonce]; safe mode and WeCom
 * (`msg_signature`): [token, timestamp, nonce, Encrypt].
 * The sort is by UTF-16 code units like PHP's sort(..., SORT_STRING) and Java's compareTo in the
 * official samples; a numeric-aware sort puts timestamp "1458300676" after nonce "260774613" and
 * breaks them.
 */
export function wechatSignature(parts: readonly string[]): string {
  const sorted = [...parts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha1').update(sorted.join(''), 'utf8').digest('hex');
}

/**
 * Constant-time string equality (for signatures). Strings of different byte lengths are simply
 * unequal: timingSafeEqual would throw on them, and the length of a SHA-1 hex is no secret.
 * Compares exactly; wechatSignature gives lower-case hex, as WeChat sends.
 */
export function signaturesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * The 32-byte AES key of a 43-character EncodingAESKey. The last character carries 2 bits that
 * are dropped: official keys often have them set (e.g. "...ABCDEFG"), so the key is not required
 * to be canonical base64.
 */
export function aesKeyOf(encodingAESKey: string): Buffer {
  if (!ENCODING_AES_KEY.test(encodingAESKey)) {
    throw new WechatCryptoError('bad_key', `EncodingAESKey must be 43 characters of [A-Za-z0-9+/] (got ${encodingAESKey.length} characters)`);
  }
  const key = Buffer.from(`${encodingAESKey}=`, 'base64');
  // Cannot differ given the pattern above; checked so that a future edit cannot weaken the key silently.
  if (key.length !== 32) throw new WechatCryptoError('bad_key', `EncodingAESKey must decode to 32 bytes (got ${key.length})`);
  return key;
}

export interface DecryptedMessage {
  /** The message XML as WeChat sent it (still to be parsed, e.g. with parseWechatXml). */
  xml: string;
  /** The receive id found in the message; always equal to the expected one. */
  receiveId: string;
}

/**
 * Decrypts an `Encrypt` field (or WeCom's `echostr`). Checks, in order: base64, length, padding,
 * length field, receive id, UTF-8.
 *
 * Length and padding are PKCS#7 to 32-byte blocks, strictly, as PROTOCOL §4 states: the ciphertext
 * is a positive multiple of 32 bytes (not merely of AES's 16), the last byte n is 1..32 and the last
 * n bytes all equal n. WeChat and WeCom pad to 32 (so do the official samples), so a 16-aligned ciphertext did not come from one; refusing it costs genuine
 * traffic nothing. (The official samples' decryptors are laxer: any whole number of AES blocks, a pad
 * byte outside 1..32 read as "no padding", the pad bytes never compared.) A wrong length
 * is `bad_length`, not `bad_padding`, so that if WeChat ever did send one, the logs would say so.
 */
export function decryptMessage(encodingAESKey: string, base64Ciphertext: string, expectedReceiveId: string): DecryptedMessage {
  const key = aesKeyOf(encodingAESKey);
  if (!BASE64.test(base64Ciphertext)) throw new WechatCryptoError('bad_base64', 'ciphertext is not standard base64');
  const ciphertext = Buffer.from(base64Ciphertext, 'base64');
  if (ciphertext.length === 0 || ciphertext.length % WECHAT_PAD_BLOCK !== 0) {
    throw new WechatCryptoError('bad_length', `ciphertext must be a positive multiple of ${WECHAT_PAD_BLOCK} bytes (got ${ciphertext.length})`);
  }

  const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, AES_BLOCK));
  // WeChat's padding is PKCS#7 to 32 bytes, which OpenSSL's 16-byte unpadding would refuse.
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(ciphertext), decipher.final()]);

  const pad = padded[padded.length - 1];
  if (pad < 1 || pad > WECHAT_PAD_BLOCK) {
    throw new WechatCryptoError('bad_padding', `padding byte is not 1..${WECHAT_PAD_BLOCK}`);
  }
  for (let i = padded.length - pad; i < padded.length; i++) {
    if (padded[i] !== pad) throw new WechatCryptoError('bad_padding', 'padding bytes are not all equal');
  }
  const plain = padded.subarray(0, padded.length - pad);

  if (plain.length < HEADER_BYTES) {
    throw new WechatCryptoError('bad_length_field', `plaintext is shorter than its ${HEADER_BYTES}-byte header`);
  }
  const xmlLength = plain.readUInt32BE(RANDOM_BYTES);
  const remaining = plain.length - HEADER_BYTES;
  if (xmlLength > remaining) {
    throw new WechatCryptoError('bad_length_field', 'length field is larger than the remaining plaintext');
  }
  const xmlBytes = plain.subarray(HEADER_BYTES, HEADER_BYTES + xmlLength);
  const receiveIdBytes = plain.subarray(HEADER_BYTES + xmlLength);

  // Byte-exact: no trimming, no case folding. Compared before decoding so that a message for
  // another account is reported as such even if its bytes are odd.
  if (!receiveIdBytes.equals(Buffer.from(expectedReceiveId, 'utf8'))) {
    throw new WechatCryptoError('receive_id_mismatch', 'the message was not encrypted for this receive id (appId / corpId)');
  }
  return { xml: utf8(xmlBytes), receiveId: expectedReceiveId };
}

function utf8(bytes: Uint8Array): string {
  try {
    // fatal: Buffer#toString would silently replace invalid sequences with U+FFFD.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new WechatCryptoError('bad_utf8', 'the decrypted message is not valid UTF-8');
  }
}

/**
 * The inverse of decryptMessage: for encrypted passive replies and WeCom's URL-verification answer.
 * Pads to 32 bytes like WeChat. `random16` is for tests only (16 bytes); by default it is fresh
 * random bytes, as the format requires.
 */
export function encryptMessage(encodingAESKey: string, xml: string, receiveId: string, random16?: Uint8Array): string {
  const key = aesKeyOf(encodingAESKey);
  const random = random16 ?? randomBytes(RANDOM_BYTES);
  // A wrong length here is a programming error, not bad input from WeChat.
  if (random.length !== RANDOM_BYTES) throw new RangeError(`random16 must be ${RANDOM_BYTES} bytes (got ${random.length})`);
  const xmlBytes = Buffer.from(xml, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(xmlBytes.length);
  const body = Buffer.concat([random, length, xmlBytes, Buffer.from(receiveId, 'utf8')]);
  const pad = WECHAT_PAD_BLOCK - (body.length % WECHAT_PAD_BLOCK);
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, AES_BLOCK));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.concat([body, Buffer.alloc(pad, pad)])), cipher.final()]).toString('base64');
}

export interface EncryptedReplyInput {
  token: string;
  encodingAESKey: string;
  receiveId: string;
  /** The plain reply XML (`<xml><ToUserName>...</xml>`). */
  xml: string;
  /** Unix seconds, as a string of digits or a number. */
  timestamp: string | number;
  /** Any string of [A-Za-z0-9]; WeChat's own nonces are digits. */
  nonce: string;
  /** For tests only; see encryptMessage. */
  random16?: Uint8Array;
}

const REPLY_TIMESTAMP = /^\d{1,12}$/;
// Restricted so that it can go into CDATA and the signature without escaping questions.
const REPLY_NONCE = /^[A-Za-z0-9]{1,64}$/;

/**
 * The safe-mode passive reply: the reply XML encrypted, wrapped with its msg_signature over
 * [token, timestamp, nonce, Encrypt]. Base64 and the checked nonce cannot contain "]]>", so the
 * CDATA sections need no splitting.
 */
export function encryptedReply(input: EncryptedReplyInput): string {
  const timestamp = String(input.timestamp);
  if (!REPLY_TIMESTAMP.test(timestamp)) throw new RangeError('timestamp must be unix seconds');
  if (!REPLY_NONCE.test(input.nonce)) throw new RangeError('nonce must be 1-64 characters of [A-Za-z0-9]');
  const encrypt = encryptMessage(input.encodingAESKey, input.xml, input.receiveId, input.random16);
  const msgSignature = wechatSignature([input.token, timestamp, input.nonce, encrypt]);
  return (
    `<xml><Encrypt><![CDATA[${encrypt}]]></Encrypt>` +
    `<MsgSignature><![CDATA[${msgSignature}]]></MsgSignature>` +
    `<TimeStamp>${timestamp}</TimeStamp>` +
    `<Nonce><![CDATA[${input.nonce}]]></Nonce></xml>`
  );
}
