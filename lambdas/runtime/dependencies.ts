import { createHash, randomUUID } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { DynamoAdminStore } from '../adapters/dynamo-admin-store';
import { DynamoConnectionRegistry } from '../adapters/dynamo-connection-registry';
import { SqsFanoutQueue } from '../adapters/sqs-fanout-queue';
import { SqsWechatInbound } from '../adapters/sqs-wechat-inbound';
import { DynamoGroupDirectory } from '../adapters/dynamo-group-directory';
import { DynamoMessageStore } from '../adapters/dynamo-message-store';
import { ManagementApiSender } from '../adapters/management-api-sender';
import { SqsUplinkQueue } from '../adapters/sqs-uplink-queue';
import { DynamoPresenceStore } from '../adapters/dynamo-presence-store';
import { DynamoWechatTokenStore } from '../adapters/dynamo-wechat-token-store';
import { WechatHttpApi } from '../adapters/wechat-http-api';
import { createAccessTokens } from '../domain/wechat-access-token';
import type { AccessTokens } from '../domain/wechat-api';
import { defaultPresenceSettings, type PresenceDeps } from '../domain/presence';
import { systemClock } from '../domain/clock';
import type { LifecycleDeps } from '../domain/connection-lifecycle';
import { defaultDeliverySettings, type DeliveryDeps } from '../domain/delivery';
import { defaultSyncSettings, type SyncDeps } from '../domain/inbox-sync';
import type { QueuedMessage } from '../domain/messaging-ports';
import type { PersistDeps } from '../domain/persist-message';
import type { SendDeps } from '../domain/send-message';
import { dynamoDocumentClient, managementApi, sqs } from './aws-clients';
import { currentCorrelationId, logger } from './observability';
import { connectionRowLifetimeSeconds, fanoutPostsPerSecond, inboxTtlDays, managementEndpoint, queueUrl, sendInlineMaxMembers, tableName, testPersistFaultRatio, wechatApiBase, wecomApiBase } from './config';
import type { AdminPushDeps } from '../domain/admin-push';
import { createPacer, type FanoutDeps } from '../domain/fanout';
import { queues } from '../../lib/gateway-declaration';

/**
 * Wires adapters to their SDK clients, once per Lambda instance. Handlers call these at
 * invocation time (not import time), so configuration errors surface as failed invocations
 * with a clear message and tests can set the environment first. Each `once(...)` is marked
 * `@__PURE__`: a bundle keeps only the factories its handler reaches, not every adapter.
 */
const once = <T>(make: () => T): (() => T) => {
  let value: T | undefined;
  return () => (value ??= make());
};

/** docs/protocol.md: a client `id` is remembered for 5 minutes. */
const DEDUP_WINDOW_SECONDS = 300;

export const connectionRegistry = /* @__PURE__ */ once(() => new DynamoConnectionRegistry(dynamoDocumentClient(), tableName('connections')));
export const messageStore = /* @__PURE__ */ once(() => new DynamoMessageStore(dynamoDocumentClient(), tableName('messages')));
export const groupDirectory = /* @__PURE__ */ once(() => new DynamoGroupDirectory(dynamoDocumentClient(), tableName('groups')));
export const uplinkQueue = /* @__PURE__ */ once(() => new SqsUplinkQueue(sqs(), queueUrl('uplink'), currentCorrelationId));
export const connectionSender = /* @__PURE__ */ once(() => new ManagementApiSender(managementApi(managementEndpoint())));
export const adminStore = /* @__PURE__ */ once(() => new DynamoAdminStore(dynamoDocumentClient(), tableName('admin')));
export const fanoutQueue = /* @__PURE__ */ once(() => new SqsFanoutQueue(sqs(), queueUrl('fanout'), currentCorrelationId));
export const wechatInbound = /* @__PURE__ */ once(() => new SqsWechatInbound(sqs(), queueUrl('wechatInbound'), currentCorrelationId));
/** Monotonic within an instance: msgIds and inbox positions minted in one instance never tie. */
const nextUlid = /* @__PURE__ */ monotonicFactory();
export const newMessageId = (nowMs: number): string => nextUlid(nowMs);

export const lifecycleDeps = (): LifecycleDeps => ({
  registry: connectionRegistry(),
  clock: systemClock,
  rowLifetimeSeconds: connectionRowLifetimeSeconds(),
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const deliveryDeps = (): DeliveryDeps => ({
  sender: connectionSender(),
  registry: connectionRegistry(),
  ...defaultDeliverySettings,
  sleep,
  random: Math.random,
});

export const sendDeps = (): SendDeps => ({
  messages: messageStore(),
  groups: groupDirectory(),
  uplink: uplinkQueue(),
  registry: connectionRegistry(),
  delivery: deliveryDeps(),
  clock: systemClock,
  newMsgId: (nowMs) => nextUlid(nowMs),
  newAttemptId: () => randomUUID(),
  sleep,
  dedupWindowSeconds: DEDUP_WINDOW_SECONDS,
  inlineMaxMembers: sendInlineMaxMembers(),
});

export const syncDeps = (): SyncDeps => ({ messages: messageStore(), groups: groupDirectory(), clock: systemClock, ...defaultSyncSettings, inboxTtlSeconds: inboxTtlDays() * 86_400 });

/** A stable pseudo-random share of msgIds, so the same messages fail on every run. */
const inShare = (msgId: string, ratio: number) => createHash('sha256').update(msgId).digest().readUInt32BE(0) / 0x1_0000_0000 < ratio;

export const persistDeps = (): PersistDeps => {
  const faultRatio = testPersistFaultRatio();
  return {
    messages: messageStore(),
    groups: groupDirectory(),
    registry: connectionRegistry(),
    delivery: deliveryDeps(),
    clock: systemClock,
    newPosition: (nowMs) => nextUlid(nowMs),
    inboxTtlSeconds: inboxTtlDays() * 86_400,
    injectFault: faultRatio > 0 ? (message: QueuedMessage, attempt: number) => attempt === 1 && inShare(message.msgId, faultRatio) : undefined,
  };
};

/** Presence counters (GET /v1/stats) in the admin table; the stream consumer moves them. */
export const presenceStore = /* @__PURE__ */ once(() => new DynamoPresenceStore(dynamoDocumentClient(), tableName('admin')));

export const presenceDeps = (): PresenceDeps => ({
  store: presenceStore(),
  ...defaultPresenceSettings,
  sleep,
  random: Math.random,
});

export const adminPushDeps = (): AdminPushDeps => ({
  uplink: uplinkQueue(),
  groups: groupDirectory(),
  registry: connectionRegistry(),
  delivery: deliveryDeps(),
  jobs: adminStore(),
  queue: fanoutQueue(),
  clock: systemClock,
  newMsgId: (nowMs) => nextUlid(nowMs),
  newJobId: () => nextUlid(),
});

/**
 * Fan-out workers share the post budget: each of the queue's at most `maxConcurrency`
 * concurrent instances paces itself at budget / maxConcurrency, and halves its pace on every
 * 429. Under the account throttle a post is retried longer than live delivery would (8 attempts
 * from 100 ms, each wait at most 2 s).
 */
const fanoutPace = /* @__PURE__ */ once(() => createPacer(fanoutPostsPerSecond() / queues.fanout.consumer.maxConcurrency, systemClock, sleep));

export const fanoutDeps = (): FanoutDeps => ({
  jobs: adminStore(),
  queue: fanoutQueue(),
  registry: connectionRegistry(),
  delivery: { ...deliveryDeps(), maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 2_000, pace: () => fanoutPace().take(), onRetryable: () => fanoutPace().slowDown() },
  clock: systemClock,
});

/** WeChat's token, messaging and login APIs (one adapter; base URLs from config). */
export const wechatApis = /* @__PURE__ */ once(() => new WechatHttpApi({ wechatApiBase: wechatApiBase(), wecomApiBase: wecomApiBase() }));

/** Access tokens cached in the wechat table, refreshed by one caller at a time across instances. */
export const accessTokens = /* @__PURE__ */ once(
  (): AccessTokens =>
    createAccessTokens({
      store: new DynamoWechatTokenStore(dynamoDocumentClient(), tableName('wechat')),
      api: wechatApis(),
      clock: systemClock,
      sleep,
      newLeaseOwner: () => randomUUID(),
      // The error's message names the call and WeChat's errcode, never a secret or token.
      onBackgroundFailure: ({ accountId, stage, error }) =>
        logger.warn('WeChat access token: a background step failed; the caller was served', { accountId, stage, error: error instanceof Error ? error.message : String(error) }),
    }),
);
