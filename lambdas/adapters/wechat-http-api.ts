import type { WechatAccount } from '../domain/wechat-accounts';
import { appSecretOf } from '../domain/wechat-access-token';
import {
  WechatApiError,
  WechatNetworkError,
  type FetchedToken,
  type OutboundCall,
  type WechatApiReply,
  type WechatLoginApi,
  type WechatMessagingApi,
  type WechatTokenApi,
} from '../domain/wechat-api';

/**
 * WeChat's HTTP APIs with the global fetch: official accounts and mini-programs at
 * `wechatApiBase` (https://api.weixin.qq.com), WeCom at `wecomApiBase` (https://qyapi.weixin.qq.com);
 * both from configuration, so local mode and tests point them at local/fake-wechat-api.ts.
 *
 * Secrets, access tokens and login codes travel in query strings and bodies, so no error says
 * more than the method and the URL without its query, and WeChat's errmsg is scrubbed of every
 * value we sent before it goes into an error.
 */

/**
 * 5 s per call, body included. WeChat answers in well under a second; a call hanging longer is
 * retried later rather than holding a Lambda, and the access-token lease (LEASE_MS, 10 s in
 * domain/wechat-access-token.ts) is sized to outlast it.
 */
export const DEFAULT_TIMEOUT_MS = 5_000;

export interface WechatHttpApiOptions {
  /** Without a trailing slash (config.ts strips it). */
  wechatApiBase: string;
  wecomApiBase: string;
  timeoutMs?: number;
}

const OUTBOUND_PATHS: Record<OutboundCall, { api: 'wechat' | 'wecom'; path: string }> = {
  'custom/send': { api: 'wechat', path: '/cgi-bin/message/custom/send' },
  'template/send': { api: 'wechat', path: '/cgi-bin/message/template/send' },
  'subscribe/send': { api: 'wechat', path: '/cgi-bin/message/subscribe/send' },
  'wecom/message/send': { api: 'wecom', path: '/cgi-bin/message/send' },
};

/** Every occurrence of a sent value (secret, token, code) in WeChat's text, masked. */
function scrub(text: string, sent: readonly string[]): string {
  let out = text;
  for (const value of sent) if (value.length >= 4) out = out.split(value).join('***');
  return out;
}

/** A fetch failure's cause, by code or name only: undici's messages may carry the URL. */
function describeFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; name?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : typeof cause?.name === 'string' ? cause.name : undefined;
  return code ?? (error instanceof Error ? error.name : 'unknown error');
}

export class WechatHttpApi implements WechatTokenApi, WechatMessagingApi, WechatLoginApi {
  private readonly timeoutMs: number;

  constructor(private readonly options: WechatHttpApiOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * One call; resolves with the JSON object WeChat answered and its errcode as a number (0 when
   * absent). WechatNetworkError when there is no usable answer.
   */
  private async request(
    call: string,
    api: 'wechat' | 'wecom',
    method: 'GET' | 'POST',
    path: string,
    query: Record<string, string>,
    body: unknown,
    sent: readonly string[],
  ): Promise<WechatApiReply> {
    const base = api === 'wecom' ? this.options.wecomApiBase : this.options.wechatApiBase;
    const where = `${method} ${base}${path}`;
    const url = new URL(`${base}${path}`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    let status: number;
    let text: string;
    try {
      const response = await fetch(url, {
        method,
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = response.status;
      // WeChat labels some JSON answers text/plain: the body is parsed whatever its type.
      text = await response.text();
    } catch (error) {
      const name = (error as { name?: unknown } | undefined)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') throw new WechatNetworkError(`no answer within ${this.timeoutMs} ms (${where})`, call);
      throw new WechatNetworkError(`request failed: ${describeFailure(error)} (${where})`, call);
    }
    if (status < 200 || status > 299) throw new WechatNetworkError(`HTTP ${status} (${where})`, call);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new WechatNetworkError(`the answer is not JSON (HTTP ${status}, ${where})`, call);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new WechatNetworkError(`the answer is not a JSON object (${where})`, call);
    const reply = parsed as Record<string, unknown>;
    const errcode = reply.errcode === undefined || reply.errcode === null ? 0 : Number(reply.errcode);
    if (!Number.isInteger(errcode)) throw new WechatNetworkError(`the answer has a malformed errcode (${where})`, call);
    const errmsg = typeof reply.errmsg === 'string' ? scrub(reply.errmsg, sent) : '';
    return { ...reply, errcode, errmsg };
  }

  async fetchToken(account: WechatAccount, options: { forceRefresh: boolean }): Promise<FetchedToken> {
    const secret = appSecretOf(account, 'access tokens');
    const call = account.kind === 'wecom' ? 'gettoken' : 'stable_token';
    const reply =
      account.kind === 'wecom'
        ? // WeCom has no force flag: gettoken answers the valid token, a new one once the old is gone.
          await this.request(call, 'wecom', 'GET', '/cgi-bin/gettoken', { corpid: account.receiveId, corpsecret: secret }, undefined, [secret])
        : await this.request(
            call,
            'wechat',
            'POST',
            '/cgi-bin/stable_token',
            {},
            { grant_type: 'client_credential', appid: account.receiveId, secret, force_refresh: options.forceRefresh },
            [secret],
          );
    if (reply.errcode !== 0) throw new WechatApiError(reply.errcode, reply.errmsg, call);
    const expiresInSeconds = Number(reply.expires_in);
    if (typeof reply.access_token !== 'string' || reply.access_token === '' || !(expiresInSeconds > 0)) {
      throw new WechatNetworkError('the answer has no access_token or expires_in', call);
    }
    return { accessToken: reply.access_token, expiresInSeconds };
  }

  async call(account: WechatAccount, call: OutboundCall, accessToken: string, payload: Record<string, unknown>): Promise<WechatApiReply> {
    const target = OUTBOUND_PATHS[call];
    // A WeCom token means nothing to api.weixin.qq.com and the reverse: a caller's bug, not WeChat's answer.
    if ((target.api === 'wecom') !== (account.kind === 'wecom')) {
      throw new Error(`${call} is not a call for ${account.kind === 'wecom' ? 'a WeCom' : 'an official'} account ("${account.accountId}")`);
    }
    return this.request(call, target.api, 'POST', target.path, { access_token: accessToken }, payload, [accessToken]);
  }

  async exchangeCode(account: WechatAccount, kind: 'miniprogram' | 'oauth', code: string): Promise<{ openId: string; unionId?: string }> {
    if (account.kind !== 'oa') throw new Error(`WeChat login is for official accounts and mini-programs, not the WeCom account "${account.accountId}"`);
    const secret = appSecretOf(account, 'WeChat login');
    const call = kind === 'miniprogram' ? 'jscode2session' : 'oauth2/access_token';
    const query: Record<string, string> =
      kind === 'miniprogram'
        ? { appid: account.receiveId, secret, js_code: code, grant_type: 'authorization_code' }
        : { appid: account.receiveId, secret, code, grant_type: 'authorization_code' };
    const reply = await this.request(call, 'wechat', 'GET', kind === 'miniprogram' ? '/sns/jscode2session' : '/sns/oauth2/access_token', query, undefined, [secret, code]);
    if (reply.errcode !== 0) throw new WechatApiError(reply.errcode, reply.errmsg, call);
    if (typeof reply.openid !== 'string' || reply.openid === '') throw new WechatNetworkError('the answer has no openid', call);
    // Only the identity leaves: session_key (mini-program) and the user's OAuth access_token and
    // refresh_token are dropped here, never returned or logged.
    return typeof reply.unionid === 'string' && reply.unionid !== '' ? { openId: reply.openid, unionId: reply.unionid } : { openId: reply.openid };
  }
}
