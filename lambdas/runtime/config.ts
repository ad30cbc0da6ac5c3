import { env, queues, tables, type QueueId, type TableId } from '../../lib/gateway-declaration';
import { DEFAULT_INLINE_MAX_MEMBERS } from '../domain/send-message';
import { API_GATEWAY_MAX_CONNECTION_SECONDS, ROW_LIFETIME_SECONDS } from '../domain/connection-lifecycle';

/**
 * Configuration from environment variables named in lib/gateway-declaration.ts. Read lazily,
 * at first use, so a missing variable fails the invocation that needs it with a clear message.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new ConfigError(`environment variable ${name} is not set`);
  return value;
}

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`environment variable ${name} must be a positive number, got "${raw}"`);
  return value;
}

export const tableName = (id: TableId): string => required(tables[id].envVar);
export const queueUrl = (id: QueueId): string => required(queues[id].envVar);
export const managementEndpoint = (): string => required(env.managementEndpoint);

/**
 * A connection row's TTL, counted from connectedAt: at least API Gateway's 2-hour connection
 * limit, because nothing refreshes a row (pings write nothing) and a row that expires before its
 * socket closes takes an online device out of live delivery.
 */
export function connectionRowLifetimeSeconds(): number {
  const seconds = positiveNumber(env.connectionRowLifetimeSeconds, ROW_LIFETIME_SECONDS);
  if (seconds < API_GATEWAY_MAX_CONNECTION_SECONDS) {
    throw new ConfigError(`environment variable ${env.connectionRowLifetimeSeconds} must be at least ${API_GATEWAY_MAX_CONNECTION_SECONDS} (API Gateway's connection limit), got "${seconds}"`);
  }
  return seconds;
}

/**
 * 10 connections per user: phones, tablets, desktops and browser tabs with room to spare; beyond
 * it `$connect` closes the user's oldest connection (docs/protocol-notes.md).
 */
export function maxConnectionsPerUser(): number {
  const value = positiveNumber(env.maxConnectionsPerUser, 10);
  if (!Number.isInteger(value)) throw new ConfigError(`environment variable ${env.maxConnectionsPerUser} must be a whole number, got "${value}"`);
  return value;
}
export const inboxTtlDays = (): number => positiveNumber(env.inboxTtlDays, 7);
/** 1,000 posts/s for all fan-out jobs together: a tenth of the account's 10,000 requests/s, leaving the rest to live traffic. */
export const fanoutPostsPerSecond = (): number => positiveNumber(env.fanoutPostsPerSecond, 1000);
/** Audiences larger than this are posted by a fan-out job, not inside the 29 s send route (domain/send-message.ts). */
export const sendInlineMaxMembers = (): number => positiveNumber(env.sendInlineMaxMembers, DEFAULT_INLINE_MAX_MEMBERS);

function nonNegativeNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`environment variable ${name} must be a number of at least 0, got "${raw}"`);
  return value;
}

/**
 * 10 sends/s per user (up to 100 in a 10 s window): far above a person typing or a device
 * reporting, far below what one client could otherwise take from the account's shared budgets.
 */
export const sendRatePerUser = (): number => nonNegativeNumber(env.sendRatePerUser, 10);
/**
 * A message's audience is frozen in its msg# row, and a DynamoDB item holds at most 400 KB: 2,500
 * user ids of the longest allowed (128 characters, ~131 bytes stored) take ~330 KB. Larger groups
 * would fail to store (and sit in the dead-letter queue), so the setting cannot go past it.
 */
export const MAX_STORABLE_GROUP_MEMBERS = 2_500;
/** 2,000 members by default (WeChat's own groups stop at 500); a group send stores one inbox row per member. */
export function maxGroupMembers(): number {
  const value = positiveNumber(env.maxGroupMembers, 2_000);
  if (value > MAX_STORABLE_GROUP_MEMBERS) {
    throw new ConfigError(`environment variable ${env.maxGroupMembers} must be at most ${MAX_STORABLE_GROUP_MEMBERS} (a message's audience must fit one DynamoDB item), got "${value}"`);
  }
  return value;
}

/**
 * A base URL from the environment, or the fallback: http(s) only, no query or fragment (paths are
 * appended to it), trailing slashes stripped. The value is not echoed: it might carry credentials.
 */
function baseUrl(name: string, fallback: string): string {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`environment variable ${name} must be an http(s) URL`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || /[?#]/.test(raw)) {
    throw new ConfigError(`environment variable ${name} must be an http(s) URL without query or fragment`);
  }
  return url.href.replace(/\/+$/, '');
}

/** WeChat's official-account and mini-program API; local mode and tests point it at the fake. */
export const wechatApiBase = (): string => baseUrl(env.wechatApiBase, 'https://api.weixin.qq.com');
/** The WeCom API. */
export const wecomApiBase = (): string => baseUrl(env.wecomApiBase, 'https://qyapi.weixin.qq.com');

/** Where the client-token secret comes from: the value itself (local mode) or Secrets Manager (AWS). */
export type JwtSecretSource = { kind: 'value'; value: string } | { kind: 'secretsManager'; arn: string };

export function jwtSecretSource(): JwtSecretSource {
  const value = process.env[env.jwtSecretValue];
  if (value) return { kind: 'value', value };
  const arn = process.env[env.jwtSecretArn];
  if (arn) return { kind: 'secretsManager', arn };
  throw new ConfigError(`neither ${env.jwtSecretValue} nor ${env.jwtSecretArn} is set`);
}

/**
 * Test-only switch (never set in AWS): the share, 0..1, of messages whose FIRST storing attempt
 * fails half-way, after its inbox rows are written. The fault-injection tests use it to prove
 * that redelivery stores every acked message exactly once.
 */
export const TEST_PERSIST_FAULT_RATIO_ENV = 'WXGATE_TEST_PERSIST_FAULT_RATIO';

export function testPersistFaultRatio(): number {
  const raw = process.env[TEST_PERSIST_FAULT_RATIO_ENV];
  if (!raw) return 0;
  const ratio = Number(raw);
  if (!(ratio >= 0 && ratio <= 1)) throw new ConfigError(`${TEST_PERSIST_FAULT_RATIO_ENV} must be between 0 and 1, got "${raw}"`);
  return ratio;
}
