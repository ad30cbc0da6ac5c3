import { isValidId } from './client-token';
import { badRequest, GatewayError, unauthorized } from './errors';
import * as z from './validation';
import type { WechatAccounts } from './wechat-accounts';
import { WechatApiError, WechatNetworkError, type WechatLoginApi } from './wechat-api';

/**
 * WeChat login (docs/wechat.md, "WeChat login"): an app exchanges a mini-program code
 * (`wx.login`) or a web OAuth2 code for a wxgate client token. WeChat's session key and OAuth
 * access token stay inside the adapter; the app gets a token, its expiry and its user id.
 *
 * The user id is stable: `wxu:{unionId}` when WeChat gives a unionId (the same person across
 * the accounts of one open-platform developer, so a user who signs in to a mini-program and a
 * web page is one wxgate user), else `wxo:{accountId}:{openId}` (openIds differ per account).
 */
export const LOGIN_TOKEN_TTL_SECONDS = 24 * 3600;

const loginRequest = /* @__PURE__ */ z.lazySchema(() =>
  z.strictObject({
    accountId: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a configured account id')),
    code: z.string().check(z.minLength(1), z.maxLength(256)),
    kind: z.enum(['miniprogram', 'oauth']),
    deviceId: z.optional(z.string().check(z.refine(isValidId, 'must be 1-128 characters of [A-Za-z0-9_.:@-]'))),
  }),
);
export type LoginRequest = z.infer<ReturnType<typeof loginRequest>>;

export function parseLoginRequest(value: unknown): LoginRequest {
  const result = z.safeParse(loginRequest(), value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw badRequest(`${issue?.path.length ? issue.path.join('.') : 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

export function userIdOf(accountId: string, identity: { openId: string; unionId?: string }): string {
  const userId = identity.unionId ? `wxu:${identity.unionId}` : `wxo:${accountId}:${identity.openId}`;
  // An empty openId would make `wxo:{accountId}:` the one user of every such answer.
  if (identity.openId.length === 0 || !isValidId(userId)) throw new GatewayError('internal', 'WeChat answered an openid/unionid wxgate cannot use as a user id');
  return userId;
}

/** WeChat's answers about the account's credentials, not the code: invalid appid, invalid appsecret, appid missing, appsecret missing. */
const ACCOUNT_CONFIG_ERRORS = new Set([40013, 40125, 41002, 41004]);

export interface LoginDeps {
  accounts: () => Promise<WechatAccounts>;
  api: WechatLoginApi;
  issueToken: (request: { userId: string; deviceId?: string; ttlSeconds: number }) => Promise<{ token: string; expiresAt: number }>;
}

export async function loginWithWechat(deps: LoginDeps, request: LoginRequest): Promise<{ token: string; expiresAt: number; userId: string }> {
  const account = (await deps.accounts()).get(request.accountId);
  if (!account) throw new GatewayError('not_found', `no WeChat account ${request.accountId} is configured`);
  if (account.kind !== 'oa') throw badRequest(`account ${request.accountId} is a WeCom account; login takes official-account and mini-program codes`);
  if (!account.appSecret) throw new GatewayError('internal', `account ${request.accountId} has no appSecret configured, which login needs`);
  let identity: { openId: string; unionId?: string };
  try {
    identity = await deps.api.exchangeCode(account, request.kind, request.code);
  } catch (err) {
    // The account's own appid or secret refused: every login fails until the operator fixes the
    // configuration. A 500 (logged as an error), not a 401 that sends users to sign in again.
    if (err instanceof WechatApiError && ACCOUNT_CONFIG_ERRORS.has(err.errcode)) {
      throw new GatewayError('internal', `account ${request.accountId}: WeChat refused its appid or appSecret (error ${err.errcode}); fix the account configuration`);
    }
    // A bad, expired or used code (40029, 40163, ...) is the caller's: 401 with WeChat's code.
    if (err instanceof WechatApiError) throw unauthorized(`WeChat refused the code: error ${err.errcode}${err.errmsg ? ` (${err.errmsg})` : ''}`);
    if (err instanceof WechatNetworkError) throw new GatewayError('internal', 'WeChat did not answer; try again with a new code');
    throw err;
  }
  const userId = userIdOf(request.accountId, identity);
  const issued = await deps.issueToken({ userId, deviceId: request.deviceId, ttlSeconds: LOGIN_TOKEN_TTL_SECONDS });
  return { ...issued, userId };
}
