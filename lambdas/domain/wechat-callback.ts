import type { WechatAccount } from './wechat-accounts';
import { decryptMessage, signaturesEqual, wechatSignature } from './wechat-crypto';
import { dedupKeyOf, parseWechatXml } from './wechat-xml';
import { badRequest, GatewayError, tooLarge, unauthorized } from './errors';

/**
 * WeChat callbacks (docs/wechat.md): URL verification (GET) and messages (POST) for official
 * accounts (plaintext, compatible and safe mode) and WeCom (always encrypted). Pure: the handler
 * finds the account, and queues what `openCallback` returns.
 */
export const MAX_CALLBACK_BYTES = 64 * 1024;
/**
 * A POST's timestamp must be this close to server time. WeChat retries within seconds with the
 * same timestamp; an old signed query (from an access log, say) cannot be replayed later.
 */
export const CALLBACK_TIMESTAMP_WINDOW_SECONDS = 300;

export type CallbackQuery = Readonly<Record<string, string | undefined>>;

function required(query: CallbackQuery, name: string): string {
  const value = query[name];
  if (!value) throw unauthorized(`${name} is required`);
  return value;
}

function checkSignature(expected: string, given: string): void {
  if (!signaturesEqual(expected, given.toLowerCase())) throw unauthorized('signature does not match');
}

/** GET: the text to answer (official account: echostr as sent; WeCom: echostr decrypted). */
export function verifyUrl(account: WechatAccount, query: CallbackQuery): string {
  const timestamp = required(query, 'timestamp');
  const nonce = required(query, 'nonce');
  const echostr = required(query, 'echostr');
  if (account.kind === 'wecom') {
    checkSignature(wechatSignature([account.token, timestamp, nonce, echostr]), required(query, 'msg_signature'));
    return decryptMessage(account.encodingAESKey!, echostr, account.receiveId).xml;
  }
  checkSignature(wechatSignature([account.token, timestamp, nonce]), required(query, 'signature'));
  return echostr;
}

export interface OpenedCallback {
  fields: Record<string, unknown>;
  /** WeChat's retry key: MsgId, or FromUserName + CreateTime + Event. */
  dedupKey: string;
}

/**
 * POST: checks the signature, decrypts a safe-mode body, parses the XML safely. An account with
 * an EncodingAESKey takes encrypted callbacks only: the plaintext `signature` covers the query,
 * not the body, so accepting plaintext there would let anyone who saw one signed query post
 * anything. (An account without a key is in plaintext mode, whose bodies WeChat does not sign.)
 */
export function openCallback(account: WechatAccount, query: CallbackQuery, body: string, nowMs: number = Date.now()): OpenedCallback {
  if (Buffer.byteLength(body, 'utf8') > MAX_CALLBACK_BYTES) throw tooLarge(`callback body over ${MAX_CALLBACK_BYTES} bytes`);
  const timestamp = required(query, 'timestamp');
  const nonce = required(query, 'nonce');
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(Math.floor(nowMs / 1000) - Number(timestamp)) > CALLBACK_TIMESTAMP_WINDOW_SECONDS) {
    throw unauthorized(`timestamp is more than ${CALLBACK_TIMESTAMP_WINDOW_SECONDS} s away from server time`);
  }
  const encrypted = account.kind === 'wecom' || query.encrypt_type === 'aes';
  if (!encrypted && account.encodingAESKey) throw unauthorized('this account takes encrypted callbacks only (encrypt_type=aes with msg_signature)');
  let fields: Record<string, unknown>;
  if (encrypted) {
    if (!account.encodingAESKey) throw new GatewayError('bad_request', 'this account has no encodingAESKey configured for encrypted callbacks');
    const msgSignature = required(query, 'msg_signature');
    const outer = parseWechatXml(body, MAX_CALLBACK_BYTES);
    const encrypt = outer.Encrypt;
    if (typeof encrypt !== 'string' || encrypt.length === 0) throw badRequest('encrypted callback without an Encrypt element');
    checkSignature(wechatSignature([account.token, timestamp, nonce, encrypt]), msgSignature);
    fields = parseWechatXml(decryptMessage(account.encodingAESKey, encrypt, account.receiveId).xml, MAX_CALLBACK_BYTES);
  } else {
    checkSignature(wechatSignature([account.token, timestamp, nonce]), required(query, 'signature'));
    fields = parseWechatXml(body, MAX_CALLBACK_BYTES);
  }
  if (typeof fields.FromUserName !== 'string' || fields.FromUserName.length === 0) throw badRequest('FromUserName must be text');
  return { fields, dedupKey: dedupKeyOf(fields) };
}

/** The agents' group of an account (docs/wechat.md: `wechat:{accountId}`). */
export const agentGroupOf = (accountId: string) => `wechat:${accountId}`;
/** Who a WeChat user's message is from, in message frames. */
export const wechatSenderOf = (accountId: string, openId: string) => `wechat:${accountId}:${openId}`;
