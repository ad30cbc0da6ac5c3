import type { WechatAccount } from './wechat-accounts';

/**
 * Ports to WeChat's HTTP APIs (official accounts at api.weixin.qq.com, WeCom at
 * qyapi.weixin.qq.com). The domain sees only these; `lambdas/adapters/wechat-http-api.ts`
 * implements them with fetch, and tests inject fakes or point the adapter at the fake WeChat
 * API server (`local/fake-wechat-api.ts`).
 */

/** WeChat's JSON answer: errcode 0 (or absent) is success; anything else is an error code. */
export interface WechatApiReply {
  errcode: number;
  errmsg: string;
  [field: string]: unknown;
}

/** WeChat answered with a non-zero errcode. */
export class WechatApiError extends Error {
  constructor(
    readonly errcode: number,
    readonly errmsg: string,
    readonly call: string,
  ) {
    super(`${call}: WeChat error ${errcode}${errmsg ? ` (${errmsg})` : ''}`);
    this.name = 'WechatApiError';
  }
}

/** No usable answer: connection refused or reset, timeout, a non-JSON or non-2xx body. Retryable. */
export class WechatNetworkError extends Error {
  constructor(
    message: string,
    readonly call: string,
  ) {
    super(`${call}: ${message}`);
    this.name = 'WechatNetworkError';
  }
}

export interface FetchedToken {
  accessToken: string;
  /** As WeChat says (7200 normally). */
  expiresInSeconds: number;
}

/** The token endpoints: stable_token (official accounts) and gettoken (WeCom). */
export interface WechatTokenApi {
  /** Throws WechatApiError or WechatNetworkError. `forceRefresh` only for official accounts. */
  fetchToken(account: WechatAccount, options: { forceRefresh: boolean }): Promise<FetchedToken>;
}

/** The cached access token of each account (lambdas/domain/wechat-access-token.ts). */
export interface AccessTokens {
  /** A valid token, from the cache or refreshed by exactly one caller at a time. */
  get(account: WechatAccount): Promise<string>;
  /**
   * WeChat said `staleToken` is invalid (40001, 40014, 42001): a fresh token. Refreshes (forced,
   * at most once a minute per account) unless another caller already replaced `staleToken`.
   */
  refreshAfterInvalid(account: WechatAccount, staleToken: string): Promise<string>;
}

/** Outbound message calls. Each resolves with WeChat's reply (errcode may be non-zero); network failures throw WechatNetworkError. */
export type OutboundCall = 'custom/send' | 'template/send' | 'subscribe/send' | 'wecom/message/send';

export interface WechatMessagingApi {
  call(account: WechatAccount, call: OutboundCall, accessToken: string, payload: Record<string, unknown>): Promise<WechatApiReply>;
}

/** Login calls: a mini-program code (jscode2session) or a web OAuth2 code (sns/oauth2/access_token). */
export interface WechatLoginApi {
  /** Resolves with openid, unionid?, session_key; throws WechatApiError (e.g. 40029 bad code, 40163 used code) or WechatNetworkError. */
  exchangeCode(account: WechatAccount, kind: 'miniprogram' | 'oauth', code: string): Promise<{ openId: string; unionId?: string }>;
}
