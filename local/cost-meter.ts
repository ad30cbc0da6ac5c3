import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { functions, queues, type FunctionId, type QueueId, type TableId } from '../lib/gateway-declaration';
import type { ManagementStats } from './management-api';

/**
 * The cost meter of local mode (docs/cost.md): counts, per measurement window, the billable
 * units every AWS service of the stack would charge for what the local runtime just did.
 * Measured, not estimated:
 *
 * - **DynamoDB**: read and write units per table and per index, from DynamoDB's own
 *   `ConsumedCapacity`. A loopback proxy sits in front of DynamoDB Local (the handlers'
 *   AWS_ENDPOINT_URL_DYNAMODB points at it), adds `"ReturnConsumedCapacity":"INDEXES"` to every
 *   data-plane request, reads `ConsumedCapacity` from the answer and strips it again when the
 *   caller did not ask for it (recomputing `x-amz-crc32`). What DynamoDB Local does not report,
 *   the meter computes by DynamoDB's published rules and counts apart (`computed`):
 *   a Query or Scan page that reads nothing (Local: 0; AWS: 0.5 eventually consistent, 1 strongly
 *   consistent), a BatchGetItem key that finds no item (Local: 0; AWS: as a GetItem of a missing
 *   item, which Local does charge), a conditional write whose condition failed (Local: no
 *   ConsumedCapacity; AWS: the larger of the existing and the new item, at least 1 write unit),
 *   and every TransactWriteItems: Local answers 2 units for one to three small items alike, so
 *   the meter charges 2 write units per action per KB of the larger of the item before and after
 *   (sizes from uncounted reads around the call), for a cancelled transaction too.
 * - **SQS**: requests by queue and action, billed per 64 KiB chunk of payload, through a
 *   pass-through proxy in front of the emulator (handlers and queue pollers both go through it;
 *   the pollers stand in for Lambda's event source mappings, whose receives and deletes AWS
 *   bills too). Receives that return nothing are the mappings' idle polling, a fixed cost per
 *   queue and not per operation: counted apart (`emptyReceives`), never in `requests`.
 * - **Lambda**: invocations and local wall-clock duration per function (handler only: the
 *   module import, i.e. the cold start, is not included), GB-seconds at the declared memory.
 * - **API Gateway**: WebSocket frames in (each client data frame) and out (route replies and
 *   @connections posts that reached a socket) with their 32 KiB billing increments, connects,
 *   disconnects and connection-milliseconds; HTTP API requests (512 KiB increments);
 *   Management API calls (POST/GET/DELETE, from the server's own counters).
 *
 * Off by default: `startLocalGateway({ costMeter: true })` starts it and exposes it as
 * `gateway.costMeter`. Use `reset()` / `snapshot()` or `measure(fn)` to measure one operation.
 */

export const SQS_CHUNK_BYTES = 64 * 1024;
export const WEBSOCKET_MESSAGE_INCREMENT_BYTES = 32 * 1024;
export const HTTP_API_REQUEST_INCREMENT_BYTES = 512 * 1024;

export interface DynamoUnits {
  readUnits: number;
  writeUnits: number;
}

export interface DynamoTableUsage extends DynamoUnits {
  /** Data-plane API calls on this table (a batch or transaction touching two tables counts for both). */
  requests: number;
  /** The table's own units (indexes excluded). */
  table: DynamoUnits;
  /** Units per global secondary index. */
  indexes: Record<string, DynamoUnits>;
  /** Calls and units by API operation (PutItem, Query, ...), indexes included. */
  byOperation: Record<string, { requests: number } & DynamoUnits>;
  /** Units the meter added because DynamoDB Local reports none (included in the totals above). */
  computed: { emptyReads: number; missingBatchReads: number; failedConditionalWrites: number; cancelledTransactions: number; transactionActions: number } & DynamoUnits;
}

export interface SqsQueueUsage {
  fifo: boolean;
  /** Billable requests: each call's payload in 64 KiB chunks (at least 1), empty receives excluded. */
  requests: number;
  /** API calls by action (billable ones), e.g. SendMessage, ReceiveMessage, DeleteMessageBatch. */
  byAction: Record<string, { calls: number; billed: number }>;
  /** Messages sent / received (a batch counts its entries). */
  messagesSent: number;
  messagesReceived: number;
  /** ReceiveMessage calls that returned nothing: the event source mapping's idle polling. */
  emptyReceives: number;
}

export interface LambdaUsage {
  memoryMb: number;
  invocations: number;
  errors: number;
  /** Local wall-clock milliseconds, handler only (cold-start import excluded). */
  totalMs: number;
  durationsMs: number[];
  /** GB-seconds at the declared memory over `totalMs` (local durations, not AWS's). */
  gbSeconds: number;
}

export interface WebSocketUsage {
  connects: number;
  disconnects: number;
  framesIn: number;
  bytesIn: number;
  /** Billed messages in: each frame in 32 KiB increments. */
  messagesIn: number;
  framesOut: number;
  bytesOut: number;
  messagesOut: number;
  /** Milliseconds connections were open during the window. */
  connectionMs: number;
}

export interface HttpUsage {
  requests: number;
  /** Billed requests: 512 KiB increments of request + response. */
  billed: number;
  byRoute: Record<string, number>;
}

export interface CostSnapshot {
  /** Window length in ms. */
  windowMs: number;
  dynamodb: Partial<Record<TableId, DynamoTableUsage>>;
  sqs: Partial<Record<QueueId, SqsQueueUsage>>;
  lambda: Partial<Record<FunctionId, LambdaUsage>>;
  websocket: WebSocketUsage;
  http: HttpUsage;
  management: { posts: number; gets: number; deletes: number; delivered: number; gone: number; throttled: number };
  totals: {
    dynamoReadUnits: number;
    dynamoWriteUnits: number;
    sqsRequests: number;
    sqsFifoRequests: number;
    sqsStandardRequests: number;
    lambdaInvocations: number;
    lambdaGbSeconds: number;
    websocketMessages: number;
    httpRequests: number;
    managementCalls: number;
  };
}

type ComputedEvent = 'emptyReads' | 'missingBatchReads' | 'failedConditionalWrites' | 'cancelledTransactions' | 'transactionActions';

const emptyUnits = (): DynamoUnits => ({ readUnits: 0, writeUnits: 0 });
const emptyTable = (): DynamoTableUsage => ({
  ...emptyUnits(),
  requests: 0,
  table: emptyUnits(),
  indexes: {},
  byOperation: {},
  computed: { ...emptyUnits(), emptyReads: 0, missingBatchReads: 0, failedConditionalWrites: 0, cancelledTransactions: 0, transactionActions: 0 },
});
const emptyWebSocket = (): WebSocketUsage => ({ connects: 0, disconnects: 0, framesIn: 0, bytesIn: 0, messagesIn: 0, framesOut: 0, bytesOut: 0, messagesOut: 0, connectionMs: 0 });
/** Rounds away float noise from half units (0.5 + 0.5 + ...). */
const tidy = (n: number) => Math.round(n * 1e6) / 1e6;

export interface CostMeterOptions {
  /** Physical table name -> declared id. */
  tableIds: Record<string, TableId>;
  /** Queue name (last path segment of its URL) -> declared id. */
  queueIds: Record<string, QueueId>;
  /** The Management API's own counters (cumulative). */
  managementStats?: () => ManagementStats;
  now?: () => number;
}

export class CostMeter {
  /** The loopback proxies the handlers use (set by the local runtime), e.g. for tests of the meter itself. */
  endpoints: { dynamodb?: string; sqs?: string } = {};
  private dynamo: Partial<Record<TableId, DynamoTableUsage>> = {};
  private sqsUsage: Partial<Record<QueueId, SqsQueueUsage>> = {};
  private lambdaUsage: Partial<Record<FunctionId, LambdaUsage>> = {};
  private ws = emptyWebSocket();
  private http: HttpUsage = { requests: 0, billed: 0, byRoute: {} };
  private managementBase?: ManagementStats;
  private windowStart: number;
  private readonly openConnections = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: CostMeterOptions) {
    this.now = options.now ?? Date.now;
    this.windowStart = this.now();
    this.managementBase = options.managementStats?.();
  }

  /** Starts a new window: every counter back to 0. */
  reset(): void {
    this.dynamo = {};
    this.sqsUsage = {};
    this.lambdaUsage = {};
    this.ws = emptyWebSocket();
    this.http = { requests: 0, billed: 0, byRoute: {} };
    this.managementBase = this.options.managementStats?.();
    this.windowStart = this.now();
  }

  /** Resets, runs `operation` (await everything it causes inside it, e.g. `drainQueues()`), returns the window. */
  async measure<T>(operation: () => Promise<T>): Promise<{ result: T; usage: CostSnapshot }> {
    this.reset();
    const result = await operation();
    return { result, usage: this.snapshot() };
  }

  /** What the current window counted so far (a deep copy). */
  snapshot(): CostSnapshot {
    const now = this.now();
    const ws = { ...this.ws };
    for (const openedAt of this.openConnections.values()) ws.connectionMs += now - Math.max(openedAt, this.windowStart);
    const m = this.options.managementStats?.();
    const b = this.managementBase;
    const diff = (k: keyof ManagementStats) => (m && b ? m[k] - b[k] : 0);
    const management = { posts: diff('posts'), gets: diff('gets'), deletes: diff('deletes'), delivered: diff('delivered'), gone: diff('gone'), throttled: diff('throttled') };
    const dynamodb = structuredClone(this.dynamo);
    const sqs = structuredClone(this.sqsUsage);
    const lambda = structuredClone(this.lambdaUsage);
    const tableValues = Object.values(dynamodb) as DynamoTableUsage[];
    const queueValues = Object.values(sqs) as SqsQueueUsage[];
    const lambdaValues = Object.values(lambda) as LambdaUsage[];
    return {
      windowMs: now - this.windowStart,
      dynamodb,
      sqs,
      lambda,
      websocket: ws,
      http: structuredClone(this.http),
      management,
      totals: {
        dynamoReadUnits: tidy(tableValues.reduce((s, t) => s + t.readUnits, 0)),
        dynamoWriteUnits: tidy(tableValues.reduce((s, t) => s + t.writeUnits, 0)),
        sqsRequests: queueValues.reduce((s, q) => s + q.requests, 0),
        sqsFifoRequests: queueValues.filter((q) => q.fifo).reduce((s, q) => s + q.requests, 0),
        sqsStandardRequests: queueValues.filter((q) => !q.fifo).reduce((s, q) => s + q.requests, 0),
        lambdaInvocations: lambdaValues.reduce((s, l) => s + l.invocations, 0),
        lambdaGbSeconds: lambdaValues.reduce((s, l) => s + l.gbSeconds, 0),
        websocketMessages: ws.messagesIn + ws.messagesOut,
        httpRequests: this.http.billed,
        managementCalls: management.posts + management.gets + management.deletes,
      },
    };
  }

  // ---- DynamoDB ----

  private tableUsage(tableName: string): DynamoTableUsage | undefined {
    const id = this.options.tableIds[tableName];
    if (!id) return undefined;
    return (this.dynamo[id] ??= emptyTable());
  }

  /** One data-plane call touched these tables (each counted once). */
  recordDynamoRequest(operation: string, tableNames: Iterable<string>): void {
    for (const name of new Set(tableNames)) {
      const usage = this.tableUsage(name);
      if (!usage) continue;
      usage.requests++;
      (usage.byOperation[operation] ??= { requests: 0, ...emptyUnits() }).requests++;
    }
  }

  /** Units consumed on a table (index undefined) or one of its indexes. */
  recordDynamoUnits(operation: string, tableName: string, index: string | undefined, kind: 'read' | 'write', units: number, computed?: ComputedEvent): void {
    const usage = this.tableUsage(tableName);
    if (!usage || units === 0) return;
    const key = kind === 'read' ? 'readUnits' : 'writeUnits';
    usage[key] = tidy(usage[key] + units);
    const target = index === undefined ? usage.table : (usage.indexes[index] ??= emptyUnits());
    target[key] = tidy(target[key] + units);
    const op = (usage.byOperation[operation] ??= { requests: 0, ...emptyUnits() });
    op[key] = tidy(op[key] + units);
    if (computed) usage.computed[key] = tidy(usage.computed[key] + units);
  }

  recordDynamoComputedEvent(tableName: string, event: ComputedEvent): void {
    const usage = this.tableUsage(tableName);
    if (usage) usage.computed[event]++;
  }

  // ---- SQS ----

  recordSqs(queueName: string, action: string, billed: number, messages: { sent?: number; received?: number } = {}): void {
    const id = this.options.queueIds[queueName];
    if (!id) return;
    const usage = (this.sqsUsage[id] ??= { fifo: queues[id].fifo, requests: 0, byAction: {}, messagesSent: 0, messagesReceived: 0, emptyReceives: 0 });
    if (action === 'ReceiveMessage' && (messages.received ?? 0) === 0) {
      usage.emptyReceives++;
      return;
    }
    usage.requests += billed;
    const a = (usage.byAction[action] ??= { calls: 0, billed: 0 });
    a.calls++;
    a.billed += billed;
    usage.messagesSent += messages.sent ?? 0;
    usage.messagesReceived += messages.received ?? 0;
  }

  // ---- Lambda ----

  recordInvocation(id: FunctionId, durationMs: number, failed: boolean): void {
    const memoryMb = functions[id].memoryMb;
    const usage = (this.lambdaUsage[id] ??= { memoryMb, invocations: 0, errors: 0, totalMs: 0, durationsMs: [], gbSeconds: 0 });
    usage.invocations++;
    if (failed) usage.errors++;
    usage.totalMs += durationMs;
    usage.durationsMs.push(Math.round(durationMs * 100) / 100);
    usage.gbSeconds += (memoryMb / 1024) * (durationMs / 1000);
  }

  // ---- API Gateway ----

  webSocketFrameIn(bytes: number): void {
    this.ws.framesIn++;
    this.ws.bytesIn += bytes;
    this.ws.messagesIn += Math.max(1, Math.ceil(bytes / WEBSOCKET_MESSAGE_INCREMENT_BYTES));
  }

  webSocketFrameOut(bytes: number): void {
    this.ws.framesOut++;
    this.ws.bytesOut += bytes;
    this.ws.messagesOut += Math.max(1, Math.ceil(bytes / WEBSOCKET_MESSAGE_INCREMENT_BYTES));
  }

  webSocketOpened(connectionId: string): void {
    this.ws.connects++;
    this.openConnections.set(connectionId, this.now());
  }

  webSocketClosed(connectionId: string): void {
    const openedAt = this.openConnections.get(connectionId);
    if (openedAt === undefined) return;
    this.openConnections.delete(connectionId);
    this.ws.disconnects++;
    this.ws.connectionMs += this.now() - Math.max(openedAt, this.windowStart);
  }

  httpRequest(routeKey: string, bytesIn: number, bytesOut: number): void {
    this.http.requests++;
    this.http.billed += Math.max(1, Math.ceil((bytesIn + bytesOut) / HTTP_API_REQUEST_INCREMENT_BYTES));
    this.http.byRoute[routeKey] = (this.http.byRoute[routeKey] ?? 0) + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Loopback proxies
// ---------------------------------------------------------------------------------------------

export interface MeterProxy {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

interface Forwarded {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'accept-encoding', 'expect']);

function forward(target: URL, agent: Agent, req: { method: string; url: string; headers: IncomingHttpHeaders }, body: Buffer): Promise<Forwarded> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  headers.host = target.host;
  headers['content-length'] = String(body.length);
  headers['accept-encoding'] = 'identity';
  return new Promise((resolve, reject) => {
    const out = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (res) => {
      readAll(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject);
    });
    out.on('error', reject);
    out.end(body);
  });
}

function startProxy(target: string, handle: (req: IncomingMessage, body: Buffer, send: (req: { method: string; url: string; headers: IncomingHttpHeaders }, body: Buffer) => Promise<Forwarded>) => Promise<Forwarded>): Promise<MeterProxy> {
  const targetUrl = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const send = (req: { method: string; url: string; headers: IncomingHttpHeaders }, body: Buffer) => forward(targetUrl, agent, req, body);
  const server: Server = createServer((req, res) => {
    readAll(req)
      .then((body) => handle(req, body, send))
      .then((answer) => {
        const headers: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
        headers['content-length'] = String(answer.body.length);
        res.writeHead(answer.status, headers).end(answer.body);
      })
      .catch((err: Error) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`cost meter proxy: ${err.message}`);
      });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        endpoint: `http://127.0.0.1:${port}`,
        port,
        stop: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
            agent.destroy();
          }),
      });
    });
  });
}

// ---- DynamoDB ----

const DYNAMO_READS = new Set(['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems']);
const DYNAMO_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);

type Json = Record<string, any>;

interface ConsumedCapacity {
  TableName?: string;
  CapacityUnits?: number;
  ReadCapacityUnits?: number;
  WriteCapacityUnits?: number;
  Table?: { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number };
  GlobalSecondaryIndexes?: Record<string, { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number }>;
  LocalSecondaryIndexes?: Record<string, { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number }>;
}

/** DynamoDB's item size rules (attribute names + values; docs: "Item sizes and formats"). */
export function attributeValueSize(value: Json): number {
  const [type, v] = Object.entries(value)[0] ?? ['NULL', true];
  switch (type) {
    case 'S':
      return Buffer.byteLength(String(v), 'utf8');
    case 'N': {
      const digits = String(v).replace(/^[-+]/, '').replace(/[eE].*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
      return Math.ceil(Math.max(1, digits.length) / 2) + 1;
    }
    case 'B':
      return Buffer.from(String(v), 'base64').length;
    case 'BOOL':
    case 'NULL':
      return 1;
    case 'SS':
    case 'NS':
    case 'BS':
      return (v as string[]).reduce((s, e) => s + attributeValueSize({ [type.slice(0, 1)]: e }), 0);
    case 'L':
      return 3 + (v as Json[]).reduce((s, e) => s + 1 + attributeValueSize(e), 0);
    case 'M':
      return 3 + Object.entries(v as Record<string, Json>).reduce((s, [k, e]) => s + 1 + Buffer.byteLength(k, 'utf8') + attributeValueSize(e), 0);
    default:
      return 0;
  }
}

export function itemSize(item: Record<string, Json> | undefined): number {
  if (!item) return 0;
  return Object.entries(item).reduce((s, [name, value]) => s + Buffer.byteLength(name, 'utf8') + attributeValueSize(value), 0);
}

const writeUnitsOf = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));

/** Tables a request names (for request counting). */
function tablesOf(operation: string, body: Json): string[] {
  switch (operation) {
    case 'BatchGetItem':
    case 'BatchWriteItem':
      return Object.keys(body.RequestItems ?? {});
    case 'TransactWriteItems':
    case 'TransactGetItems':
      return (body.TransactItems ?? []).map((t: Json) => (Object.values(t)[0] as Json)?.TableName).filter(Boolean);
    default:
      return body.TableName ? [body.TableName] : [];
  }
}

/**
 * Starts the DynamoDB proxy in front of `target` (DynamoDB Local). Every data-plane call gets
 * `ReturnConsumedCapacity: INDEXES`; the meter records the answer's units; the caller sees the
 * answer it asked for.
 */
export function startDynamoMeterProxy(target: string, meter: CostMeter): Promise<MeterProxy> {
  const keySchemas = new Map<string, string[]>();
  return startProxy(target, async (req, body, send) => {
    const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    const metered = DYNAMO_READS.has(operation) || DYNAMO_WRITES.has(operation);
    const request = { method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers };
    if (!metered) return send(request, body);
    let json: Json;
    try {
      json = JSON.parse(body.toString('utf8')) as Json;
    } catch {
      return send(request, body);
    }
    const asked = json.ReturnConsumedCapacity as string | undefined;
    json.ReturnConsumedCapacity = 'INDEXES';

    const rawCall = async (target: string, payload: Json): Promise<Json | undefined> => {
      const r = await send({ ...request, headers: { ...req.headers, 'x-amz-target': `DynamoDB_20120810.${target}` } }, Buffer.from(JSON.stringify(payload)));
      return r.status === 200 ? (JSON.parse(r.body.toString('utf8')) as Json) : undefined;
    };
    const keyOf = async (tableName: string, item: Json): Promise<Json> => {
      let schema = keySchemas.get(tableName);
      if (!schema) {
        const described = await rawCall('DescribeTable', { TableName: tableName });
        schema = ((described?.Table?.KeySchema ?? []) as Json[]).map((k) => k.AttributeName as string);
        keySchemas.set(tableName, schema);
      }
      return Object.fromEntries(schema.map((name) => [name, item[name]]));
    };
    /** Size of the item now stored under `key` (an uncounted side read). */
    const storedSize = async (tableName: string, key: Json): Promise<number> => itemSize((await rawCall('GetItem', { TableName: tableName, Key: key, ConsistentRead: true }))?.Item);
    // Transactions: DynamoDB Local's ConsumedCapacity for TransactWriteItems is wrong (2 for 1 to 3
    // small items alike), so the meter computes it by DynamoDB's rule: 2 write units per action per
    // KB of the larger of the item before and after (a ConditionCheck: the item checked). The sizes
    // come from uncounted reads around the call.
    const actions = operation === 'TransactWriteItems' ? ((json.TransactItems ?? []) as Json[]).map((a) => Object.entries(a)[0] as [string, Json]) : [];
    const before: number[] = [];
    for (const [kind, spec] of actions) {
      const key = kind === 'Put' ? await keyOf(spec.TableName as string, spec.Item ?? {}) : spec.Key;
      before.push(await storedSize(spec.TableName as string, key));
    }

    const answer = await send(request, Buffer.from(JSON.stringify(json)));
    meter.recordDynamoRequest(operation, tablesOf(operation, json));

    if (answer.status !== 200) {
      const text = answer.body.toString('utf8');
      const type = (() => {
        try {
          return String((JSON.parse(text) as Json).__type ?? '');
        } catch {
          return '';
        }
      })();
      if (type.endsWith('ConditionalCheckFailedException') && ['PutItem', 'UpdateItem', 'DeleteItem'].includes(operation)) {
        // AWS: a failed conditional write still consumes write units: the larger of the existing
        // and the new item, at least 1 (Local reports nothing).
        const tableName = json.TableName as string;
        const key = operation === 'PutItem' ? await keyOf(tableName, json.Item ?? {}) : json.Key;
        const size = Math.max(await storedSize(tableName, key), operation === 'PutItem' ? itemSize(json.Item) : 0);
        meter.recordDynamoComputedEvent(tableName, 'failedConditionalWrites');
        meter.recordDynamoUnits(operation, tableName, undefined, 'write', writeUnitsOf(size), 'failedConditionalWrites');
      } else if (type.endsWith('TransactionCanceledException') && operation === 'TransactWriteItems') {
        // Counted as if it had committed: 2 write units per action per KB (nothing was written).
        actions.forEach(([kind, spec], i) => {
          const size = Math.max(before[i] ?? 0, kind === 'Put' ? itemSize(spec.Item) : 0);
          meter.recordDynamoUnits(operation, spec.TableName as string, undefined, 'write', 2 * writeUnitsOf(size), 'cancelledTransactions');
        });
        for (const tableName of new Set(tablesOf(operation, json))) meter.recordDynamoComputedEvent(tableName, 'cancelledTransactions');
      }
      return answer;
    }

    let out: Json;
    try {
      out = JSON.parse(answer.body.toString('utf8')) as Json;
    } catch {
      return answer;
    }
    const consumed: ConsumedCapacity[] = Array.isArray(out.ConsumedCapacity) ? out.ConsumedCapacity : out.ConsumedCapacity ? [out.ConsumedCapacity] : [];
    const kind: 'read' | 'write' = DYNAMO_READS.has(operation) ? 'read' : 'write';
    if (operation === 'TransactWriteItems') {
      for (let i = 0; i < actions.length; i++) {
        const [action, spec] = actions[i]!;
        const tableName = spec.TableName as string;
        const after = action === 'Put' ? itemSize(spec.Item) : action === 'Update' ? await storedSize(tableName, spec.Key) : 0;
        meter.recordDynamoComputedEvent(tableName, 'transactionActions');
        meter.recordDynamoUnits(operation, tableName, undefined, 'write', 2 * writeUnitsOf(Math.max(before[i] ?? 0, after)), 'transactionActions');
      }
    }
    if (operation === 'BatchGetItem') {
      // Local charges nothing for a key that finds no item; DynamoDB charges it as a GetItem of a
      // missing item (1 read unit consistent, 0.5 eventually consistent), as Local's GetItem does.
      for (const [tableName, spec] of Object.entries((json.RequestItems ?? {}) as Record<string, Json>)) {
        const asked = ((spec.Keys ?? []) as Json[]).length;
        const found = ((out.Responses?.[tableName] ?? []) as Json[]).length;
        const unprocessed = ((out.UnprocessedKeys?.[tableName]?.Keys ?? []) as Json[]).length;
        for (let i = 0; i < asked - found - unprocessed; i++) {
          meter.recordDynamoComputedEvent(tableName, 'missingBatchReads');
          meter.recordDynamoUnits(operation, tableName, undefined, 'read', spec.ConsistentRead === true ? 1 : 0.5, 'missingBatchReads');
        }
      }
    }
    for (const c of consumed) {
      const tableName = c.TableName ?? '';
      const pick = (u: { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number } | undefined) =>
        u ? (kind === 'read' ? (u.ReadCapacityUnits ?? u.CapacityUnits ?? 0) : (u.WriteCapacityUnits ?? u.CapacityUnits ?? 0)) : 0;
      const indexEntries = Object.entries({ ...(c.GlobalSecondaryIndexes ?? {}), ...(c.LocalSecondaryIndexes ?? {}) });
      const tableUnits = c.Table ? pick(c.Table) : pick(c) - indexEntries.reduce((s, [, u]) => s + pick(u), 0);
      if (operation !== 'TransactWriteItems') meter.recordDynamoUnits(operation, tableName, undefined, kind, tableUnits);
      for (const [index, u] of indexEntries) meter.recordDynamoUnits(operation, tableName, index, kind, pick(u));
      // AWS: a Query or Scan page that reads nothing still costs the minimum read (Local reports 0).
      if ((operation === 'Query' || operation === 'Scan') && pick(c) === 0) {
        const units = json.ConsistentRead === true && !json.IndexName ? 1 : 0.5;
        meter.recordDynamoComputedEvent(tableName, 'emptyReads');
        meter.recordDynamoUnits(operation, tableName, json.IndexName as string | undefined, 'read', units, 'emptyReads');
      }
    }
    // Give the caller the answer it asked for.
    if (asked === undefined || asked === 'NONE') delete out.ConsumedCapacity;
    else if (asked === 'TOTAL') {
      const total = (c: ConsumedCapacity) => ({ TableName: c.TableName, CapacityUnits: c.CapacityUnits });
      out.ConsumedCapacity = Array.isArray(out.ConsumedCapacity) ? consumed.map(total) : total(consumed[0] ?? {});
    }
    const text = Buffer.from(JSON.stringify(out));
    const headers = { ...answer.headers };
    if (headers['x-amz-crc32'] !== undefined) headers['x-amz-crc32'] = String(crc32(text));
    return { status: answer.status, headers, body: text };
  });
}

// ---- SQS ----

function messageAttributesSize(attributes: Json | undefined): number {
  let size = 0;
  for (const [name, value] of Object.entries(attributes ?? {})) {
    size += Buffer.byteLength(name) + Buffer.byteLength(String(value?.DataType ?? ''));
    if (value?.StringValue !== undefined) size += Buffer.byteLength(String(value.StringValue));
    if (value?.BinaryValue !== undefined) size += Buffer.from(String(value.BinaryValue), 'base64').length;
  }
  return size;
}

const payloadOf = (m: Json) => Buffer.byteLength(String(m.MessageBody ?? m.Body ?? '')) + messageAttributesSize(m.MessageAttributes);
const chunks = (bytes: number) => Math.max(1, Math.ceil(bytes / SQS_CHUNK_BYTES));

/**
 * Starts the SQS pass-through proxy in front of `target` (the emulator, JSON protocol). Nothing
 * is changed; each call is recorded by queue (the last segment of its QueueUrl) and action.
 */
export function startSqsMeterProxy(target: string, meter: CostMeter): Promise<MeterProxy> {
  const targetOrigin = new URL(target).origin;
  return startProxy(target, async (req, body, send) => {
    const request = { method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers };
    const action = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    let json: Json | undefined;
    try {
      json = JSON.parse(body.toString('utf8')) as Json;
    } catch {
      json = undefined;
    }
    // The handlers' queue URLs name this proxy (the SDK sends to the QueueUrl's host); the
    // emulator knows its queues by their own URLs.
    if (json && typeof json.QueueUrl === 'string' && !json.QueueUrl.startsWith(targetOrigin)) {
      json.QueueUrl = targetOrigin + new URL(json.QueueUrl).pathname;
      body = Buffer.from(JSON.stringify(json));
    }
    const answer = await send(request, body);
    if (!action || !json || answer.status !== 200) return answer;
    let out: Json;
    try {
      out = answer.body.length ? (JSON.parse(answer.body.toString('utf8')) as Json) : {};
    } catch {
      return answer;
    }
    const queueName = String(json.QueueUrl ?? '').split('/').pop() ?? '';
    switch (action) {
      case 'SendMessage':
        meter.recordSqs(queueName, action, chunks(payloadOf(json)), { sent: 1 });
        break;
      case 'SendMessageBatch': {
        const entries = (json.Entries ?? []) as Json[];
        meter.recordSqs(queueName, action, chunks(entries.reduce((s, e) => s + payloadOf(e), 0)), { sent: entries.length });
        break;
      }
      case 'ReceiveMessage': {
        const messages = (out.Messages ?? []) as Json[];
        meter.recordSqs(queueName, action, chunks(messages.reduce((s, m) => s + payloadOf(m), 0)), { received: messages.length });
        break;
      }
      case 'DeleteMessage':
      case 'DeleteMessageBatch':
      case 'ChangeMessageVisibility':
      case 'ChangeMessageVisibilityBatch':
      case 'GetQueueAttributes':
      case 'GetQueueUrl':
        meter.recordSqs(queueName, action, 1);
        break;
      default:
        meter.recordSqs(queueName, action, 1);
    }
    return answer;
  });
}
