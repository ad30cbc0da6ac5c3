import { randomBytes, randomInt } from 'node:crypto';
import type { WechatAccount } from '../lambdas/domain/wechat-accounts';
import { encryptMessage, wechatSignature } from '../lambdas/domain/wechat-crypto';

/** Builds a callback request the way WeChat signs it (used by `npm run wechat:sample` and the tests). */
export interface CallbackOptions {
  /** `safe` (default), `compat` or `plain`; WeCom is always `safe`. */
  mode?: 'safe' | 'compat' | 'plain';
  /** The message XML; default a text message from `from` with `text`. */
  xml?: string;
  text?: string;
  from?: string;
  msgId?: string;
  timestamp?: string;
  nonce?: string;
}

export interface CallbackRequest {
  method: 'GET' | 'POST';
  /** Path and query, to append to the HTTP API's base URL. */
  pathAndQuery: string;
  body?: string;
}

export const cdata = (v: string) => `<![CDATA[${v.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;

export function textMessageXml(account: WechatAccount, options: CallbackOptions = {}): string {
  return (
    `<xml><ToUserName>${cdata(account.receiveId)}</ToUserName><FromUserName>${cdata(options.from ?? 'oLocalUser')}</FromUserName>` +
    `<CreateTime>${options.timestamp ?? Math.floor(Date.now() / 1000)}</CreateTime><MsgType>${cdata('text')}</MsgType>` +
    `<Content>${cdata(options.text ?? 'hello from WeChat')}</Content><MsgId>${options.msgId ?? String(randomInt(1e12))}</MsgId></xml>`
  );
}

export function buildCallback(account: WechatAccount, options: CallbackOptions = {}): CallbackRequest {
  const timestamp = options.timestamp ?? String(Math.floor(Date.now() / 1000));
  const nonce = options.nonce ?? String(randomInt(1e9));
  const query = new URLSearchParams({ timestamp, nonce, signature: wechatSignature([account.token, timestamp, nonce]) });
  const xml = options.xml ?? textMessageXml(account, { ...options, timestamp });
  const mode = account.kind === 'wecom' ? 'safe' : (options.mode ?? 'safe');
  if (mode === 'plain') return { method: 'POST', pathAndQuery: `/wechat/${encodeURIComponent(account.accountId)}?${query}`, body: xml };
  const encrypt = encryptMessage(account.encodingAESKey!, xml, account.receiveId, randomBytes(16));
  query.set('encrypt_type', 'aes');
  query.set('msg_signature', wechatSignature([account.token, timestamp, nonce, encrypt]));
  // Compatible mode carries the plaintext fields beside Encrypt; safe mode only Encrypt.
  const body =
    mode === 'compat'
      ? xml.replace('</xml>', `<Encrypt>${cdata(encrypt)}</Encrypt></xml>`)
      : `<xml><ToUserName>${cdata(account.receiveId)}</ToUserName><Encrypt>${cdata(encrypt)}</Encrypt></xml>`;
  return { method: 'POST', pathAndQuery: `/wechat/${encodeURIComponent(account.accountId)}?${query}`, body };
}

/** The GET URL verification WeChat sends when an operator saves the callback URL. */
export function buildVerification(account: WechatAccount, echo = `echo-${randomInt(1e9)}`): CallbackRequest & { expected: string } {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(randomInt(1e9));
  const query = new URLSearchParams({ timestamp, nonce });
  if (account.kind === 'wecom') {
    const echostr = encryptMessage(account.encodingAESKey!, echo, account.receiveId);
    query.set('echostr', echostr);
    query.set('msg_signature', wechatSignature([account.token, timestamp, nonce, echostr]));
  } else {
    query.set('echostr', echo);
    query.set('signature', wechatSignature([account.token, timestamp, nonce]));
  }
  return { method: 'GET', pathAndQuery: `/wechat/${encodeURIComponent(account.accountId)}?${query}`, expected: echo };
}
