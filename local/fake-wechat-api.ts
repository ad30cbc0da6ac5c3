import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { WechatAccounts } from '../lambdas/domain/wechat-accounts';
import { listen } from './ports';
import { sleep } from './sleep';

/**
 * A fake of the parts of WeChat's APIs that wxgate calls, for local mode and tests: official
 * accounts and mini-programs (api.weixin.qq.com) and WeCom (qyapi.weixin.qq.com) on one loopback
 * HTTP server, since their paths do not collide.
 *
 * It is as strict as the real service, because a kinder fake hides the bugs it exists to find:
 * wrong secrets, unknown, superseded or expired tokens, reused or expired login codes and the
 * force-refresh quotas all fail with WeChat's error codes, as JSON with HTTP 200 like WeChat.
 * Error messages carry a request id as WeChat's do, so callers must branch on `errcode`, never on
 * `errmsg` (which WeChat's docs say may change).
 *
 * Switches (failNext, delayNext, hangNext, resetNext) inject what a busy WeChat and a bad network
 * do. They queue per endpoint in the order they were set; each call of the endpoint takes the next.
 */

export type FakeEndpoint =
  | 'stable_token'
  | 'gettoken'
  | 'custom/send'
  | 'template/send'
  | 'subscribe/send'
  | 'wecom/message/send'
  | 'jscode2session'
  | 'oauth2/access_token';

export interface FakeWechatApiOptions {
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Lifetime of the access tokens the fake issues. Default 7200, as WeChat's. */
  tokenTtlSeconds?: number;
  /** Milliseconds; every expiry, quota and de-duplication window reads it. Default Date.now; lets tests move time. */
  now?: () => number;
  /**
   * Who may be sent to. `enforced` (default), as WeChat: `custom/send` only within 48 hours of the
   * user's last message (`userMessaged`), else 45015; WeCom `message/send` only to users of the
   * corp (`addWecomUser`), else 81013. `open`: anyone (local mode's `npm start`, where the users'
   * messages reach wxgate, not this fake).
   */
  recipients?: 'enforced' | 'open';
}

export interface SentMessage {
  endpoint: Extract<FakeEndpoint, 'custom/send' | 'template/send' | 'subscribe/send' | 'wecom/message/send'>;
  appIdOrCorpId: string;
  /** The request body, parsed. */
  body: Record<string, unknown>;
  /** When WeChat accepted it (options.now()). */
  at: number;
}

export interface FakeWechatApi {
  /** http://127.0.0.1:<port>: use it for both WXGATE_WECHAT_API_BASE and WXGATE_WECOM_API_BASE. */
  readonly url: string;
  /** An official account or a mini-program. Adding an appId again changes its secret. */
  addOfficialAccount(appId: string, appSecret: string): void;
  /** A WeCom application; a corp may have several. Adding an agentId again changes its secret. */
  addWecomApp(corpId: string, corpSecret: string, agentId: number): void;
  /** The user sent the account a message now: customer-service messages may go to them for 48 hours. */
  userMessaged(appId: string, openId: string): void;
  /** A member of the corp: WeCom application messages may go to them. */
  addWecomUser(corpId: string, userId: string): void;
  /** Register a login code: single use, expires after 5 minutes. Returns the code. */
  issueLoginCode(appId: string, user: { openId: string; unionId?: string }, kind: 'miniprogram' | 'oauth'): string;
  /** The next `times` (default 1) calls of `endpoint` answer this errcode (the call is not performed). -1 is "system busy". */
  failNext(endpoint: FakeEndpoint, errcode: number, times?: number): void;
  /** The next `times` calls of `endpoint` are performed at once and answered after `ms`. */
  delayNext(endpoint: FakeEndpoint, ms: number, times?: number): void;
  /** The next `times` calls of `endpoint` never get an answer (the socket stays open until the client gives up or the server stops); nothing is performed. */
  hangNext(endpoint: FakeEndpoint, times?: number): void;
  /** The next `times` calls have their socket destroyed without an answer (a network error); nothing is performed. */
  resetNext(endpoint: FakeEndpoint, times?: number): void;
  /** Invalidate every token of an account now (as if someone else force-refreshed it). */
  invalidateTokens(appIdOrCorpId: string): void;
  /** Messages WeChat accepted, in order (a copy). */
  readonly sent: ReadonlyArray<SentMessage>;
  /** How many requests each endpoint received (including failed and injected ones). */
  calls(endpoint: FakeEndpoint): number;
  /** Tokens issued so far per account (new tokens only, not repeats of a still valid one). */
  tokensIssued(appIdOrCorpId: string): number;
  /**
   * Clears sent, calls and switches. Accounts and WeChat's own state (tokens, force-refresh
   * quotas, login codes, template de-duplication) stay, as they would at WeChat.
   */
  reset(): void;
  /** Stops the server, ending hung and delayed requests too (so jest exits cleanly). */
  close(): Promise<void>;
}

export async function startFakeWechatApi(options: FakeWechatApiOptions = {}): Promise<FakeWechatApi> {
  const api = new FakeWechatApiServer(options.tokenTtlSeconds ?? 7200, options.now ?? Date.now, options.recipients ?? 'enforced');
  await api.listen(options.port ?? 0);
  return api;
}

const LOGIN_CODE_TTL_MS = 5 * 60_000;
/** WeChat's customer-service window: 48 hours after the user's last message. */
const REPLY_WINDOW_MS = 48 * 3600_000;
/** WeChat de-duplicates template messages with the same client_msg_id for this long. */
const TEMPLATE_DEDUP_WINDOW_MS = 10 * 60_000;
const FORCE_REFRESHES_PER_DAY = 20;
const FORCE_REFRESH_MIN_INTERVAL_MS = 30_000;

type Service = 'wechat' | 'wecom';
type Reply = Record<string, unknown>;

interface Route {
  endpoint: FakeEndpoint;
  method: 'GET' | 'POST';
  service: Service;
}

const ROUTES = new Map<string, Route>([
  ['/cgi-bin/stable_token', { endpoint: 'stable_token', method: 'POST', service: 'wechat' }],
  ['/cgi-bin/gettoken', { endpoint: 'gettoken', method: 'GET', service: 'wecom' }],
  ['/cgi-bin/message/custom/send', { endpoint: 'custom/send', method: 'POST', service: 'wechat' }],
  ['/cgi-bin/message/template/send', { endpoint: 'template/send', method: 'POST', service: 'wechat' }],
  ['/cgi-bin/message/subscribe/send', { endpoint: 'subscribe/send', method: 'POST', service: 'wechat' }],
  ['/cgi-bin/message/send', { endpoint: 'wecom/message/send', method: 'POST', service: 'wecom' }],
  ['/sns/jscode2session', { endpoint: 'jscode2session', method: 'GET', service: 'wechat' }],
  ['/sns/oauth2/access_token', { endpoint: 'oauth2/access_token', method: 'GET', service: 'wechat' }],
]);

const ERRMSG: Record<number, string> = {
  [-1]: 'system error',
  40001: 'invalid credential, access_token is invalid or not latest',
  40002: 'invalid grant_type',
  40003: 'invalid openid',
  40008: 'invalid message type',
  40013: 'invalid appid',
  40014: 'invalid access_token',
  40029: 'invalid code',
  40037: 'invalid template_id',
  40056: 'invalid agentid',
  40125: 'invalid appsecret',
  40163: 'code been used',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  41008: 'missing code',
  42001: 'access_token expired',
  43001: 'require GET method',
  43002: 'require POST method',
  44004: 'empty content',
  45009: 'reach max api daily quota limit',
  45011: 'api minute-quota reach limit',
  45015: 'response out of time limit or subscription is canceled',
  81013: 'user & party & tag all invalid',
  47001: 'data format error',
  301002: 'not allow operate another agent with this accesstoken',
};

/** The msgtypes each send API knows; any other is 40008. */
const CUSTOM_MSGTYPES = new Set(['text', 'image', 'voice', 'video', 'music', 'news', 'mpnews', 'mpnewsarticle', 'msgmenu', 'wxcard', 'miniprogrampage']);
const WECOM_MSGTYPES = new Set(['text', 'image', 'voice', 'video', 'file', 'textcard', 'news', 'mpnews', 'markdown', 'miniprogram_notice', 'template_card']);

interface AccessToken {
  value: string;
  service: Service;
  /** appId or corpId. */
  accountId: string;
  /** WeCom: the application the token belongs to (a WeCom token works for its own application only). */
  agentId?: number;
  expiresAt: number;
  /** Superseded by a force refresh, or invalidated by the test. */
  invalidated: boolean;
}

interface OfficialAccount {
  appId: string;
  appSecret: string;
  current?: AccessToken;
  forceRefreshDay: number;
  forceRefreshesThatDay: number;
  lastForceRefreshAt?: number;
}

interface WecomApp {
  corpId: string;
  corpSecret: string;
  agentId: number;
  current?: AccessToken;
}

interface LoginCode {
  appId: string;
  user: { openId: string; unionId?: string };
  kind: 'miniprogram' | 'oauth';
  expiresAt: number;
  used: boolean;
}

type Injection = { kind: 'fail'; errcode: number } | { kind: 'delay'; ms: number } | { kind: 'hang' } | { kind: 'reset' };

/** WeChat's force-refresh quota is per day of Beijing time (UTC+8), whatever the caller's zone. */
const beijingDay = (ms: number) => Math.floor((ms + 8 * 3_600_000) / 86_400_000);

const randomToken = (bytes: number) => randomBytes(bytes).toString('base64url');

class FakeWechatApiServer implements FakeWechatApi {
  url = '';
  private readonly server: Server;
  /** Aborted by close(): ends the delays of delayed answers. */
  private readonly closing = new AbortController();
  private closed?: Promise<void>;

  private readonly officialAccounts = new Map<string, OfficialAccount>();
  private readonly wecomApps = new Map<string, WecomApp[]>();
  private readonly tokens = new Map<string, AccessToken>();
  private readonly issuedCounts = new Map<string, number>();
  private readonly loginCodes = new Map<string, LoginCode>();
  /** [appId, touser, client_msg_id] as JSON -> the msgid WeChat answered and when. */
  private readonly templateMsgIds = new Map<string, { msgid: number; at: number }>();
  /** [appId, openId] as JSON -> when the user last messaged the account. */
  private readonly lastUserMessage = new Map<string, number>();
  /** corpId -> its users. */
  private readonly wecomUsers = new Map<string, Set<string>>();
  private nextMsgId = 2_000_000_000 + Math.floor(Math.random() * 1_000_000_000);

  private readonly sentMessages: SentMessage[] = [];
  private readonly callCounts = new Map<FakeEndpoint, number>();
  private readonly injections = new Map<FakeEndpoint, Array<{ injection: Injection; remaining: number }>>();

  constructor(
    private readonly tokenTtlSeconds: number,
    private readonly now: () => number,
    private readonly recipients: 'enforced' | 'open',
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  async listen(port: number): Promise<void> {
    const boundPort = await listen(this.server, port, '127.0.0.1', 'WXGATE_FAKE_WECHAT_PORT');
    this.url = `http://127.0.0.1:${boundPort}`;
  }

  addOfficialAccount(appId: string, appSecret: string): void {
    const existing = this.officialAccounts.get(appId);
    if (existing) existing.appSecret = appSecret;
    else this.officialAccounts.set(appId, { appId, appSecret, forceRefreshDay: beijingDay(this.now()), forceRefreshesThatDay: 0 });
  }

  userMessaged(appId: string, openId: string): void {
    if (!this.officialAccounts.has(appId)) throw new Error(`userMessaged: no official account ${appId}`);
    this.lastUserMessage.set(JSON.stringify([appId, openId]), this.now());
  }

  addWecomUser(corpId: string, userId: string): void {
    if (!this.wecomApps.has(corpId)) throw new Error(`addWecomUser: no WeCom corp ${corpId}`);
    const users = this.wecomUsers.get(corpId) ?? new Set<string>();
    users.add(userId);
    this.wecomUsers.set(corpId, users);
  }

  addWecomApp(corpId: string, corpSecret: string, agentId: number): void {
    const apps = this.wecomApps.get(corpId) ?? [];
    const existing = apps.find((app) => app.agentId === agentId);
    if (existing) existing.corpSecret = corpSecret;
    else apps.push({ corpId, corpSecret, agentId });
    this.wecomApps.set(corpId, apps);
  }

  issueLoginCode(appId: string, user: { openId: string; unionId?: string }, kind: 'miniprogram' | 'oauth'): string {
    if (!this.officialAccounts.has(appId)) throw new Error(`issueLoginCode: no account ${appId}; add it with addOfficialAccount first`);
    const code = randomToken(24);
    this.loginCodes.set(code, { appId, user: { ...user }, kind, expiresAt: this.now() + LOGIN_CODE_TTL_MS, used: false });
    return code;
  }

  failNext(endpoint: FakeEndpoint, errcode: number, times = 1): void {
    this.inject(endpoint, { kind: 'fail', errcode }, times);
  }

  delayNext(endpoint: FakeEndpoint, ms: number, times = 1): void {
    this.inject(endpoint, { kind: 'delay', ms }, times);
  }

  hangNext(endpoint: FakeEndpoint, times = 1): void {
    this.inject(endpoint, { kind: 'hang' }, times);
  }

  resetNext(endpoint: FakeEndpoint, times = 1): void {
    this.inject(endpoint, { kind: 'reset' }, times);
  }

  invalidateTokens(appIdOrCorpId: string): void {
    if (!this.officialAccounts.has(appIdOrCorpId) && !this.wecomApps.has(appIdOrCorpId)) throw new Error(`invalidateTokens: no account ${appIdOrCorpId}`);
    for (const token of this.tokens.values()) if (token.accountId === appIdOrCorpId) token.invalidated = true;
  }

  get sent(): ReadonlyArray<SentMessage> {
    return [...this.sentMessages];
  }

  calls(endpoint: FakeEndpoint): number {
    return this.callCounts.get(endpoint) ?? 0;
  }

  tokensIssued(appIdOrCorpId: string): number {
    return this.issuedCounts.get(appIdOrCorpId) ?? 0;
  }

  reset(): void {
    this.sentMessages.length = 0;
    this.callCounts.clear();
    this.injections.clear();
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve, reject) => {
      this.closing.abort();
      this.server.close((err) => (err ? reject(err) : resolve()));
      this.server.closeAllConnections();
    });
    return this.closed;
  }

  private inject(endpoint: FakeEndpoint, injection: Injection, times: number): void {
    if (!Number.isSafeInteger(times) || times < 1) throw new RangeError(`times must be a positive integer, got ${times}`);
    const queue = this.injections.get(endpoint) ?? [];
    queue.push({ injection, remaining: times });
    this.injections.set(endpoint, queue);
  }

  private takeInjection(endpoint: FakeEndpoint): Injection | undefined {
    const head = this.injections.get(endpoint)?.[0];
    if (!head) return undefined;
    if (--head.remaining === 0) this.injections.get(endpoint)!.shift();
    return head.injection;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = ROUTES.get(url.pathname);
    if (!route) return respond(res, 404, { errcode: -1, errmsg: 'not found' });
    this.callCounts.set(route.endpoint, this.calls(route.endpoint) + 1);

    const injection = this.takeInjection(route.endpoint);
    if (injection?.kind === 'reset') return void req.socket.destroy();
    // Reading the body completes the request, so no server timeout answers it: it hangs until a side closes.
    if (injection?.kind === 'hang') return void req.resume();

    let reply: Reply;
    if (injection?.kind === 'fail') reply = this.error(route.service, injection.errcode);
    else if (req.method !== route.method) reply = this.error(route.service, route.method === 'POST' ? 43002 : 43001);
    else reply = this.perform(route.endpoint, url.searchParams, route.method === 'POST' ? await readBody(req) : '');
    if (injection?.kind === 'delay') await sleep(injection.ms, this.closing.signal);
    respond(res, 200, reply);
  }

  private perform(endpoint: FakeEndpoint, query: URLSearchParams, body: string): Reply {
    switch (endpoint) {
      case 'stable_token':
        return this.stableToken(body);
      case 'gettoken':
        return this.wecomToken(query);
      case 'custom/send':
      case 'template/send':
      case 'subscribe/send':
      case 'wecom/message/send':
        return this.sendMessage(endpoint, query.get('access_token'), body);
      case 'jscode2session':
      case 'oauth2/access_token':
        return this.exchangeLoginCode(endpoint, query);
    }
  }

  /** WeChat appends a request id to its errmsg (WeCom a hint and a help link). */
  private error(service: Service, errcode: number, errmsg = ERRMSG[errcode] ?? 'error'): Reply {
    const suffix =
      service === 'wechat'
        ? ` rid: ${randomBytes(12).toString('hex').replace(/(.{8})(.{8})/, '$1-$2-')}`
        : `, hint: [${Math.floor(this.now() / 1000)}_${randomBytes(4).toString('hex')}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=${errcode}`;
    return { errcode, errmsg: errmsg + suffix };
  }

  private stableToken(body: string): Reply {
    const request = parseJsonObject(body);
    if (!request) return this.error('wechat', 47001);
    if (request.grant_type !== 'client_credential') return this.error('wechat', 40002);
    if (typeof request.appid !== 'string' || request.appid === '') return this.error('wechat', 41002);
    if (typeof request.secret !== 'string' || request.secret === '') return this.error('wechat', 41004);
    const account = this.officialAccounts.get(request.appid);
    if (!account) return this.error('wechat', 40013);
    if (request.secret !== account.appSecret) return this.error('wechat', 40125);

    const now = this.now();
    if (request.force_refresh !== true) {
      account.current = this.validToken(account.current) ?? this.issueToken('wechat', account.appId);
      return { access_token: account.current.value, expires_in: this.remainingSeconds(account.current) };
    }
    if (beijingDay(now) !== account.forceRefreshDay) {
      account.forceRefreshDay = beijingDay(now);
      account.forceRefreshesThatDay = 0;
    }
    if (account.forceRefreshesThatDay >= FORCE_REFRESHES_PER_DAY) return this.error('wechat', 45009);
    if (account.lastForceRefreshAt !== undefined && now - account.lastForceRefreshAt < FORCE_REFRESH_MIN_INTERVAL_MS) return this.error('wechat', 45011);
    account.forceRefreshesThatDay++;
    account.lastForceRefreshAt = now;
    if (account.current) account.current.invalidated = true;
    account.current = this.issueToken('wechat', account.appId);
    return { access_token: account.current.value, expires_in: this.remainingSeconds(account.current) };
  }

  private wecomToken(query: URLSearchParams): Reply {
    const corpId = query.get('corpid');
    const corpSecret = query.get('corpsecret');
    if (!corpId) return this.error('wecom', 41002, 'corpid missing');
    if (!corpSecret) return this.error('wecom', 41004, 'corpsecret missing');
    const apps = this.wecomApps.get(corpId);
    if (!apps) return this.error('wecom', 40013, 'invalid corpid');
    const app = apps.find((candidate) => candidate.corpSecret === corpSecret);
    if (!app) return this.error('wecom', 40001, 'invalid credential');
    app.current = this.validToken(app.current) ?? this.issueToken('wecom', corpId, app.agentId);
    return { errcode: 0, errmsg: 'ok', access_token: app.current.value, expires_in: this.remainingSeconds(app.current) };
  }

  private validToken(token: AccessToken | undefined): AccessToken | undefined {
    return token && !token.invalidated && this.now() < token.expiresAt ? token : undefined;
  }

  private remainingSeconds(token: AccessToken): number {
    return Math.floor((token.expiresAt - this.now()) / 1000);
  }

  private issueToken(service: Service, accountId: string, agentId?: number): AccessToken {
    const token: AccessToken = { value: randomToken(96), service, accountId, agentId, expiresAt: this.now() + this.tokenTtlSeconds * 1000, invalidated: false };
    this.tokens.set(token.value, token);
    this.issuedCounts.set(accountId, this.tokensIssued(accountId) + 1);
    return token;
  }

  private sendMessage(endpoint: SentMessage['endpoint'], accessToken: string | null, body: string): Reply {
    const service: Service = endpoint === 'wecom/message/send' ? 'wecom' : 'wechat';
    if (!accessToken) return this.error(service, 41001);
    const token = this.tokens.get(accessToken);
    // Each service knows only its own tokens; an unknown or superseded token is 40001 at WeChat, 40014 at WeCom.
    if (!token || token.service !== service || token.invalidated) return this.error(service, service === 'wechat' ? 40001 : 40014);
    if (this.now() >= token.expiresAt) return this.error(service, 42001);
    const message = parseJsonObject(body);
    if (!message) return this.error(service, 47001);

    switch (endpoint) {
      case 'custom/send': {
        if (!nonEmptyString(message.touser)) return this.error(service, 40003);
        const badMsgtype = this.checkMsgtype(service, message, CUSTOM_MSGTYPES);
        if (badMsgtype) return badMsgtype;
        const lastMessage = this.lastUserMessage.get(JSON.stringify([token.accountId, message.touser]));
        if (this.recipients === 'enforced' && (lastMessage === undefined || this.now() - lastMessage > REPLY_WINDOW_MS)) return this.error(service, 45015);
        this.record(endpoint, token.accountId, message);
        return { errcode: 0, errmsg: 'ok' };
      }
      case 'template/send':
        return this.sendTemplate(token.accountId, message);
      case 'subscribe/send':
        if (!nonEmptyString(message.touser)) return this.error(service, 40003);
        if (!nonEmptyString(message.template_id)) return this.error(service, 40037);
        this.record(endpoint, token.accountId, message);
        return { errcode: 0, errmsg: 'ok', msgid: this.nextMsgId++ };
      case 'wecom/message/send': {
        const agentId = Number(message.agentid);
        if (agentId !== token.agentId) {
          const anotherAppOfTheCorp = this.wecomApps.get(token.accountId)!.some((app) => app.agentId === agentId);
          return this.error(service, anotherAppOfTheCorp ? 301002 : 40056);
        }
        if (![message.touser, message.toparty, message.totag].some(nonEmptyString)) return this.error(service, 40003);
        const badMsgtype = this.checkMsgtype(service, message, WECOM_MSGTYPES);
        if (badMsgtype) return badMsgtype;
        // Every listed user unknown to the corp (no party or tag given): WeCom's 81013.
        const corpUsers = this.wecomUsers.get(token.accountId) ?? new Set<string>();
        const users = nonEmptyString(message.touser) ? String(message.touser).split('|') : [];
        if (this.recipients === 'enforced' && !nonEmptyString(message.toparty) && !nonEmptyString(message.totag) && users.every((u) => !corpUsers.has(u))) {
          return this.error(service, 81013);
        }
        this.record(endpoint, token.accountId, message);
        return { errcode: 0, errmsg: 'ok', msgid: randomToken(48) };
      }
    }
  }

  private checkMsgtype(service: Service, message: Record<string, unknown>, known: Set<string>): Reply | undefined {
    if (typeof message.msgtype !== 'string' || !known.has(message.msgtype)) return this.error(service, 40008);
    if (message.msgtype === 'text' && !nonEmptyString((message.text as { content?: unknown } | undefined)?.content)) return this.error(service, 44004);
    return undefined;
  }

  /** WeChat's documented de-duplication: the same client_msg_id to the same user within 10 minutes is not sent again and answers the first msgid. */
  private sendTemplate(appId: string, message: Record<string, unknown>): Reply {
    if (!nonEmptyString(message.touser)) return this.error('wechat', 40003);
    if (!nonEmptyString(message.template_id)) return this.error('wechat', 40037);
    const now = this.now();
    const dedupKey = nonEmptyString(message.client_msg_id) ? JSON.stringify([appId, message.touser, message.client_msg_id]) : undefined;
    const earlier = dedupKey ? this.templateMsgIds.get(dedupKey) : undefined;
    if (earlier && now - earlier.at < TEMPLATE_DEDUP_WINDOW_MS) return { errcode: 0, errmsg: 'ok', msgid: earlier.msgid };
    const msgid = this.nextMsgId++;
    if (dedupKey) this.templateMsgIds.set(dedupKey, { msgid, at: now });
    this.record('template/send', appId, message);
    return { errcode: 0, errmsg: 'ok', msgid };
  }

  private record(endpoint: SentMessage['endpoint'], appIdOrCorpId: string, body: Record<string, unknown>): void {
    this.sentMessages.push({ endpoint, appIdOrCorpId, body, at: this.now() });
  }

  private exchangeLoginCode(endpoint: 'jscode2session' | 'oauth2/access_token', query: URLSearchParams): Reply {
    const appId = query.get('appid');
    const secret = query.get('secret');
    const code = endpoint === 'jscode2session' ? query.get('js_code') : query.get('code');
    if (!appId) return this.error('wechat', 41002);
    if (!secret) return this.error('wechat', 41004);
    if (!code) return this.error('wechat', 41008);
    if (query.get('grant_type') !== 'authorization_code') return this.error('wechat', 40002);
    const account = this.officialAccounts.get(appId);
    if (!account) return this.error('wechat', 40013);
    if (secret !== account.appSecret) return this.error('wechat', 40125);

    const login = this.loginCodes.get(code);
    const kind = endpoint === 'jscode2session' ? 'miniprogram' : 'oauth';
    // A code of another app or of the other login flow is as unknown to WeChat as a made-up one.
    if (!login || login.appId !== appId || login.kind !== kind) return this.error('wechat', 40029);
    if (login.used) return this.error('wechat', 40163);
    if (this.now() >= login.expiresAt) return this.error('wechat', 40029);
    login.used = true;

    const unionid = login.user.unionId !== undefined ? { unionid: login.user.unionId } : {};
    if (kind === 'miniprogram') return { openid: login.user.openId, session_key: randomBytes(16).toString('base64'), ...unionid };
    // The web user's access token is another namespace than the account's: message APIs reject it.
    return { access_token: randomToken(96), expires_in: 7200, refresh_token: randomToken(96), openid: login.user.openId, scope: 'snsapi_base', ...unionid };
  }
}

function respond(res: ServerResponse, status: number, body: Reply): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const nonEmptyString = (value: unknown): value is string => typeof value === 'string' && value !== '';

/** The openId of the login codes printed for local mode. */
export const LOCAL_OPEN_ID = 'o-local-user-1';

/**
 * Registers local mode's accounts with the fake (those with an appSecret; WeCom ones also need
 * their agentId) and, for each official account, issues one mini-program login code. Answers a
 * line per account for the console.
 */
export function registerAccounts(api: FakeWechatApi, accounts: WechatAccounts): string[] {
  const lines: string[] = [];
  for (const account of accounts.values()) {
    const name = `  ${account.accountId} (${account.kind}, ${account.receiveId})`;
    if (account.appSecret === undefined) {
      lines.push(`${name}: not registered, it has no appSecret`);
    } else if (account.kind === 'oa') {
      api.addOfficialAccount(account.receiveId, account.appSecret);
      const code = api.issueLoginCode(account.receiveId, { openId: LOCAL_OPEN_ID }, 'miniprogram');
      lines.push(`${name}: registered; mini-program login code for ${LOCAL_OPEN_ID} (single use, 5 minutes): ${code}`);
    } else if (account.agentId === undefined) {
      lines.push(`${name}: not registered, a WeCom account needs its agentId`);
    } else {
      api.addWecomApp(account.receiveId, account.appSecret, account.agentId);
      lines.push(`${name}: registered, agentId ${account.agentId}`);
    }
  }
  return lines;
}
