/**
 * WeChat accounts (docs/wechat.md): `{"<accountId>":{"kind":"oa"|"wecom","token","encodingAESKey",
 * "receiveId","appSecret","agentId"}}`, from a file in local mode and a Secrets Manager secret in AWS.
 * Errors name the account and the field, never a value.
 */
export interface WechatAccount {
  accountId: string;
  kind: 'oa' | 'wecom';
  token: string;
  /** 43 characters; absent for an official account in plaintext mode only. */
  encodingAESKey?: string;
  /** appId (official accounts) or corpId (WeCom); default: the account id. */
  receiveId: string;
  /** The app secret (official accounts, mini-programs) or the WeCom application's secret: needed for access tokens and login. */
  appSecret?: string;
  /** WeCom only: the application's AgentId, needed to send application messages. */
  agentId?: number;
}

export type WechatAccounts = ReadonlyMap<string, WechatAccount>;

export class WechatAccountsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WechatAccountsError';
  }
}

const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TOKEN = /^[A-Za-z0-9]{3,32}$/;
const AES_KEY = /^[A-Za-z0-9]{43}$/;

export function parseWechatAccounts(text: string, source: string): WechatAccounts {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new WechatAccountsError(`${source} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new WechatAccountsError(`${source} must be a JSON object of accounts`);
  const accounts = new Map<string, WechatAccount>();
  for (const [accountId, raw] of Object.entries(parsed)) {
    const where = `${source}: account "${accountId.slice(0, 64)}"`;
    if (!ACCOUNT_ID.test(accountId)) throw new WechatAccountsError(`${where}: the account id must be 1-64 characters of [A-Za-z0-9_-]`);
    if (typeof raw !== 'object' || raw === null) throw new WechatAccountsError(`${where}: must be an object`);
    const a = raw as Record<string, unknown>;
    const kind = a.kind ?? 'oa';
    if (kind !== 'oa' && kind !== 'wecom') throw new WechatAccountsError(`${where}: kind must be "oa" or "wecom"`);
    if (typeof a.token !== 'string' || !TOKEN.test(a.token)) throw new WechatAccountsError(`${where}: token must be 3-32 letters or digits`);
    if (a.encodingAESKey !== undefined && (typeof a.encodingAESKey !== 'string' || !AES_KEY.test(a.encodingAESKey))) {
      throw new WechatAccountsError(`${where}: encodingAESKey must be 43 letters or digits`);
    }
    if (kind === 'wecom' && a.encodingAESKey === undefined) throw new WechatAccountsError(`${where}: a WeCom account needs an encodingAESKey`);
    if (a.receiveId !== undefined && (typeof a.receiveId !== 'string' || a.receiveId.length === 0)) throw new WechatAccountsError(`${where}: receiveId must be a non-empty string`);
    if (a.appSecret !== undefined && typeof a.appSecret !== 'string') throw new WechatAccountsError(`${where}: appSecret must be a string`);
    if (a.agentId !== undefined && !(Number.isSafeInteger(Number(a.agentId)) && Number(a.agentId) > 0)) throw new WechatAccountsError(`${where}: agentId must be a positive integer`);
    if (a.agentId !== undefined && kind !== 'wecom') throw new WechatAccountsError(`${where}: agentId is for WeCom accounts only`);
    accounts.set(accountId, {
      accountId,
      kind,
      token: a.token,
      encodingAESKey: a.encodingAESKey as string | undefined,
      receiveId: (a.receiveId as string | undefined) ?? accountId,
      appSecret: a.appSecret as string | undefined,
      ...(a.agentId !== undefined ? { agentId: Number(a.agentId) } : {}),
    });
  }
  return accounts;
}
