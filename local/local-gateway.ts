import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { tables, type TableDeclaration } from '../lib/gateway-declaration';
import { queues, type QueueDeclaration, type QueueId, type TableId } from '../lib/gateway-declaration';
import { startDynamoEngine, type DynamoEngine } from './dynamodb-engine';
import type { StageThrottleLimits } from './stage-throttle';
import { applyHandlerEnvironment, handlerEnvironment } from './handler-environment';
import { LocalHttpServer } from './http-server';
import { checkJava } from './java-check';
import { LambdaInvoker, type FunctionOverrides } from './lambda-invoker';
import type { ManagementFaults, ManagementStats } from './management-api';
import { ensurePortFree, listen } from './ports';
import { QueuePoller } from './queue-poller';
import { sleep } from './sleep';
import { queueName, startSqsEngine, type SqsEngine } from './sqs-engine';
import type { RateLimit } from './token-bucket';
import { TtlSweeper } from './ttl-sweeper';
import { StreamPoller } from './stream-poller';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './local-names';
import { LocalWebSocketServer } from './websocket-server';
import { CostMeter, startDynamoMeterProxy, startSqsMeterProxy } from './cost-meter';
import { consoleHandler } from '../console/server';
import { parseAdminKeyList } from '../lambdas/domain/admin-keys';
import { SQSClient } from '@aws-sdk/client-sqs';

/**
 * Local mode (docs/protocol.md): DynamoDB Local and an SQS emulator with the declared tables and
 * queues, the declared handlers run in this process behind an API Gateway WebSocket API
 * emulation (with the Management API on the same port), an HTTP API emulation, one poller per
 * consumed queue (the event source mappings) and a TTL sweeper.
 *
 * Handlers read their configuration from process.env, which is process-wide: run one gateway
 * per process (jest runs each test file in its own module registry, but env is shared).
 */
export interface LocalGatewayOptions {
  /** Default 3000 (WXGATE_HTTP_PORT); 0 = ephemeral. */
  httpPort?: number;
  /** Default 3001 (WXGATE_WS_PORT); 0 = ephemeral. */
  wsPort?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 'local-dev-jwt-secret' (WXGATE_JWT_SECRET). */
  jwtSecret?: string;
  /** Admin API keys, `keyId:secret,...`; default 'local:local-dev-admin-secret' (WXGATE_ADMIN_KEYS). */
  adminKeys?: string;
  /** Extra env for the handlers (tests use it for fault injection switches). */
  handlerEnv?: Record<string, string>;
  /** Overrides every declared visibility timeout locally (tests use ~2 s); default: the declaration's. */
  queueVisibilityTimeoutSeconds?: number;
  /** Idle wait between empty receives, default 200 ms. */
  pollWaitMs?: number;
  /** TTL sweeper period, default 30 s. */
  sweepIntervalMs?: number;
  /** API Gateway's idle timeout, default 10 min. */
  idleTimeoutMs?: number;
  /** API Gateway's maximum connection duration, default 2 h. */
  maxConnectionMs?: number;
  /** Default console.log. */
  logger?: (line: string) => void;
  /**
   * Makes a share of PostToConnection calls fail as AWS fails them (429 LimitExceededException,
   * 500 InternalServerErrorException), delivering nothing; default off. Change it at runtime
   * with `setManagementFaults`.
   */
  managementFaults?: ManagementFaults;
  /**
   * API Gateway's account-wide throttle on the Management API: a token bucket (steady
   * `ratePerSecond`, `burst`) shared by every POST, GET and DELETE on `@connections`; a call that
   * finds it empty answers 429 LimitExceededException and delivers nothing. Default off (AWS:
   * 10,000/s, burst 5,000, shared with every other API of the account; see docs/protocol-notes.md).
   * Change it at runtime with `setManagementRateLimit`; count the 429s with `managementStats()`.
   */
  managementRateLimit?: RateLimit;
  /**
   * API Gateway's WebSocket stage and route throttles: a frame or connect over them is refused
   * (`{"message":"Too Many Requests",…}`; a connect gets 429) without invoking anything. Default:
   * the declared throttles (lib/gateway-declaration.ts), as deployed; `null` turns them off.
   * Change them at runtime with `setStageThrottle`.
   */
  stageThrottle?: StageThrottleLimits | null;
  /**
   * Test seam: run other modules (path relative to the repo root, or absolute) instead of some
   * declared functions' entries. Integration tests use it for fixture consumers; `npm start` never does.
   */
  functionOverrides?: FunctionOverrides;
  /**
   * Starts the cost meter (local/cost-meter.ts, docs/cost.md): the handlers then reach DynamoDB
   * and SQS through loopback proxies that read the consumed units, and every invocation, frame
   * and HTTP request is counted. Default off. Read it through `gateway.costMeter`.
   */
  costMeter?: boolean;
  /** Serves the web console at {httpUrl}/console (docs/console.md), signing with the first admin key; default on. */
  console?: boolean;
}

export interface LocalGateway {
  /** The cost meter, when started with `costMeter: true`. */
  costMeter?: CostMeter;
  httpUrl: string;
  /** The web console (docs/console.md): `${httpUrl}/console`, unless started with `console: false`. */
  consoleUrl?: string;
  wsUrl: string;
  managementEndpoint: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  tableNames: Record<TableId, string>;
  queueUrls: Record<QueueId, string>;
  deadLetterQueueUrls: Record<QueueId, string>;
  /** One TTL sweep now; resolves with the number of items deleted. */
  sweepExpired(): Promise<number>;
  /**
   * Resolves when every consumed queue is empty (visible + in flight), no handler invocation runs,
   * and every table stream poller has read its stream to the end (nothing unread, no batch in hand).
   */
  drainQueues(timeoutMs?: number): Promise<void>;
  /** Turns the Management API fault switch on, changes it, or turns it off (undefined). Throws on bad ratios. */
  setManagementFaults(faults: ManagementFaults | undefined): void;
  /** Sets, changes or (undefined) removes the Management API rate limit; a new limit starts with a full bucket. Throws on a bad one. */
  setManagementRateLimit(limit: RateLimit | undefined): void;
  /** Management API calls since start: by method, allowed, throttled (429), errors, delivered, gone. */
  managementStats(): ManagementStats;
  /** Replaces the WebSocket stage and route throttles (full buckets), or removes them (undefined). */
  setStageThrottle(limits: StageThrottleLimits | undefined): void;
  /** Client frames and connects admitted and throttled by the stage throttles since start. */
  stageThrottleStats(): { admitted: number; throttled: number };
  /** Closes sockets and servers, stops pollers and sweeper, kills Java; idempotent. */
  stop(): Promise<void>;
}

export const DEFAULT_HTTP_PORT = 3000;
export const DEFAULT_WS_PORT = 3001;
export const DEFAULT_JWT_SECRET = 'local-dev-jwt-secret';
export const DEFAULT_ADMIN_KEYS = 'local:local-dev-admin-secret';

export async function startLocalGateway(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
  const log = options.logger ?? ((line: string) => console.log(line));
  const host = options.host ?? '127.0.0.1';
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err: Error) => log(`stop: ${err.message}`));
  };

  try {
    await checkJava();
    const wantedWsPort = options.wsPort ?? DEFAULT_WS_PORT;
    const wantedHttpPort = options.httpPort ?? DEFAULT_HTTP_PORT;
    await ensurePortFree(wantedWsPort, host, 'WXGATE_WS_PORT');
    await ensurePortFree(wantedHttpPort, host, 'WXGATE_HTTP_PORT');
    const [dynamoResult, sqsResult] = await Promise.allSettled([
      startDynamoEngine({ logger: log }),
      startSqsEngine({ logger: log, visibilityTimeoutSeconds: options.queueVisibilityTimeoutSeconds }),
    ]);
    if (dynamoResult.status === 'fulfilled') cleanups.push(() => dynamoResult.value.stop());
    if (sqsResult.status === 'fulfilled') cleanups.push(() => sqsResult.value.stop());
    if (dynamoResult.status === 'rejected') throw dynamoResult.reason;
    if (sqsResult.status === 'rejected') throw sqsResult.reason;
    const dynamo: DynamoEngine = dynamoResult.value;
    const sqs: SqsEngine = sqsResult.value;

    const invoker = new LambdaInvoker(options.functionOverrides);
    let meter: CostMeter | undefined;
    // The meter's proxies stop after the servers (whose $disconnects still write through them).
    const meterCleanupAt = cleanups.length;
    const ws = new LocalWebSocketServer({
      ...(options.costMeter
        ? {
            meter: {
              frameIn: (bytes: number) => meter?.webSocketFrameIn(bytes),
              frameOut: (bytes: number) => meter?.webSocketFrameOut(bytes),
              opened: (id: string) => meter?.webSocketOpened(id),
              closed: (id: string) => meter?.webSocketClosed(id),
            },
          }
        : {}),
      invoker,
      logger: log,
      idleTimeoutMs: options.idleTimeoutMs,
      maxConnectionMs: options.maxConnectionMs,
      managementFaults: options.managementFaults,
      managementRateLimit: options.managementRateLimit,
      stageThrottle: options.stageThrottle,
    });
    const wsPort = await listen(ws.server, wantedWsPort, host, 'WXGATE_WS_PORT');
    cleanups.push(() => ws.stop());
    // The web console signs its admin calls with the first admin key and calls this very server.
    const consoleUrls = { api: '', ws: '' };
    const consoleKey = options.console === false ? undefined : [...parseAdminKeyList(options.adminKeys ?? DEFAULT_ADMIN_KEYS)][0]!;
    const http = new LocalHttpServer({
      invoker,
      logger: log,
      onRequest: (route, bytesIn, bytesOut) => meter?.httpRequest(route, bytesIn, bytesOut),
      ...(consoleKey
        ? {
            console: consoleHandler({
              apiUrl: () => consoleUrls.api,
              wsUrl: () => consoleUrls.ws,
              keyId: consoleKey[0],
              secret: consoleKey[1],
              mode: 'local',
              allowedHosts: [host],
            }),
          }
        : {}),
    });
    const httpPort = await listen(http.server, wantedHttpPort, host, 'WXGATE_HTTP_PORT');
    cleanups.push(() => http.stop());

    const urlHost = host.includes(':') ? `[${host}]` : host;
    const managementEndpoint = `http://${urlHost}:${wsPort}`;
    consoleUrls.api = `http://${urlHost}:${httpPort}`;
    consoleUrls.ws = `ws://${urlHost}:${wsPort}`;
    // The cost meter: handlers (and the queue pollers) reach DynamoDB and SQS through its proxies.
    let handlerDynamoEndpoint = dynamo.endpoint;
    let handlerSqsEndpoint = sqs.endpoint;
    let handlerQueueUrls = sqs.queueUrls;
    let pollerSqs = sqs.client;
    if (options.costMeter) {
      meter = new CostMeter({
        tableIds: Object.fromEntries(Object.entries(dynamo.tableNames).map(([id, name]) => [name, id as TableId])),
        queueIds: Object.fromEntries((Object.entries(queues) as [QueueId, QueueDeclaration][]).map(([id, q]) => [queueName(id, q.fifo), id])),
        managementStats: () => ws.managementStats(),
      });
      const dynamoProxy = await startDynamoMeterProxy(dynamo.endpoint, meter);
      cleanups.splice(meterCleanupAt, 0, () => dynamoProxy.stop());
      const sqsProxy = await startSqsMeterProxy(sqs.endpoint, meter);
      cleanups.splice(meterCleanupAt, 0, () => sqsProxy.stop());
      handlerDynamoEndpoint = dynamoProxy.endpoint;
      handlerSqsEndpoint = sqsProxy.endpoint;
      meter.endpoints = { dynamodb: dynamoProxy.endpoint, sqs: sqsProxy.endpoint };
      // The SDK sends SQS calls to the QueueUrl's host: the URLs the handlers get name the proxy.
      handlerQueueUrls = Object.fromEntries(
        Object.entries(sqs.queueUrls).map(([id, url]) => [id, `${sqsProxy.endpoint}${new URL(url).pathname}`]),
      ) as Record<QueueId, string>;
      const meteredSqs = new SQSClient({ endpoint: sqsProxy.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
      cleanups.splice(meterCleanupAt, 0, async () => meteredSqs.destroy());
      pollerSqs = meteredSqs;
      invoker.onInvocation = (id, durationMs, failed) => meter?.recordInvocation(id, durationMs, failed);
    }
    // Before any handler module is imported (the first invocation imports it).
    applyHandlerEnvironment(
      handlerEnvironment({
        dynamoEndpoint: handlerDynamoEndpoint,
        sqsEndpoint: handlerSqsEndpoint,
        managementEndpoint,
        jwtSecret: options.jwtSecret ?? DEFAULT_JWT_SECRET,
        adminKeys: options.adminKeys ?? DEFAULT_ADMIN_KEYS,
        tableNames: dynamo.tableNames,
        queueUrls: handlerQueueUrls,
        extra: options.handlerEnv,
      }),
    );

    const pollers: QueuePoller[] = [];
    for (const [id, queue] of Object.entries(queues) as [QueueId, QueueDeclaration][]) {
      const poller = new QueuePoller({
        sqs: pollerSqs,
        invoker,
        queueUrl: sqs.queueUrls[id],
        queueName: queueName(id, queue.fifo),
        consumer: queue.consumer,
        logger: log,
        pollWaitMs: options.pollWaitMs ?? 200,
      });
      poller.start();
      pollers.push(poller);
    }
    // Stopped before the WebSocket server: a consumer may still post to open sockets.
    cleanups.push(async () => {
      await Promise.all(pollers.map((p) => p.stop()));
    });

    const sweeper = new TtlSweeper(dynamo.client, dynamo.tableNames, log);
    sweeper.start(options.sweepIntervalMs ?? 30_000);
    cleanups.push(() => sweeper.stop());

    // One poller per declared table stream (the DynamoDB event source mappings); stopped first.
    const streams = new DynamoDBStreamsClient({ endpoint: dynamo.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    const streamPollers: StreamPoller[] = [];
    for (const [id, table] of Object.entries(tables) as [TableId, TableDeclaration][]) {
      if (!table.stream) continue;
      const poller = new StreamPoller({
        dynamodb: dynamo.client,
        streams,
        invoker,
        tableName: dynamo.tableNames[id],
        consumer: table.stream.consumer,
        logger: log,
        pollWaitMs: options.pollWaitMs ?? 200,
      });
      poller.start();
      streamPollers.push(poller);
    }
    cleanups.push(async () => {
      await Promise.all(streamPollers.map((p) => p.stop()));
      streams.destroy();
    });

    const drainQueues = async (timeoutMs = 30_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      let quietChecks = 0;
      let last = '';
      // Streams: once queues and invocations are quiet, wait for a stream pass that started after they were.
      let quietFrom = 0;
      for (;;) {
        const checkStartedAt = Date.now();
        let backlog = 0;
        const parts: string[] = [];
        for (const url of pollers.map((p) => p.queueUrl)) {
          const attrs = (
            await sqs.client.send(
              new GetQueueAttributesCommand({
                QueueUrl: url,
                AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
              }),
            )
          ).Attributes;
          const visible = Number(attrs?.ApproximateNumberOfMessages ?? 0);
          const inFlight = Number(attrs?.ApproximateNumberOfMessagesNotVisible ?? 0);
          const delayed = Number(attrs?.ApproximateNumberOfMessagesDelayed ?? 0);
          backlog += visible + inFlight + delayed;
          parts.push(`${url}: ${visible} visible, ${inFlight} in flight, ${delayed} delayed`);
        }
        const busy = invoker.inFlight + pollers.filter((p) => p.processing).length + streamPollers.filter((p) => p.processing).length;
        last = `${parts.join('; ')}; ${invoker.inFlight} invocation(s) running; ${streamPollers.map((p) => p.describe()).join('; ')}`;
        quietChecks = backlog === 0 && busy === 0 ? quietChecks + 1 : 0;
        if (quietChecks === 1) quietFrom = checkStartedAt;
        if (quietChecks >= 2 && streamPollers.every((p) => p.caughtUpSince(quietFrom))) return;
        if (Date.now() > deadline) throw new Error(`drainQueues: not drained after ${timeoutMs} ms (${last})`);
        await sleep(Math.max(50, Math.min(options.pollWaitMs ?? 200, 250)));
      }
    };

    let stopping: Promise<void> | undefined;
    const gateway: LocalGateway = {
      ...(meter ? { costMeter: meter } : {}),
      httpUrl: `http://${urlHost}:${httpPort}`,
      ...(consoleKey ? { consoleUrl: `http://${urlHost}:${httpPort}/console` } : {}),
      wsUrl: `ws://${urlHost}:${wsPort}`,
      managementEndpoint,
      dynamoEndpoint: dynamo.endpoint,
      sqsEndpoint: sqs.endpoint,
      tableNames: dynamo.tableNames,
      queueUrls: sqs.queueUrls,
      deadLetterQueueUrls: sqs.deadLetterQueueUrls,
      sweepExpired: () => sweeper.sweep(),
      drainQueues,
      setManagementFaults: (faults) => ws.setManagementFaults(faults),
      setManagementRateLimit: (limit) => ws.setManagementRateLimit(limit),
      managementStats: () => ws.managementStats(),
      setStageThrottle: (limits) => ws.setStageThrottle(limits),
      stageThrottleStats: () => ws.stageThrottleStats(),
      stop: () => (stopping ??= cleanup()),
    };
    return gateway;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
