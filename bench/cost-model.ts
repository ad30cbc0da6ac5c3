/**
 * The price side of the cost model (docs/cost.md): unit prices, the three named workloads, and
 * their monthly bills computed from the measured units per operation (bench/cost-operations.ts),
 * beside the published prices of Pusher Channels, Ably and AWS AppSync Events for the same
 * traffic, and API Gateway's own fees alone (the floor).
 *
 * Everything here is arithmetic on two inputs: the measured units, and the prices and
 * assumptions written below (each with where it comes from). Free tiers are not deducted.
 */
import type { OperationUnits } from './cost-operations';

/** us-east-1 list prices in USD, as published (the month of the figure is in `asOf`). */
export const PRICES = {
  apiGateway: {
    /** WebSocket: per million messages (each message metered in 32 KB increments); first billion a month, then 0.80. */
    websocketMessagesPerMillion: 1.0,
    websocketMessagesPerMillionAfter1B: 0.8,
    /** WebSocket: per million connection-minutes. */
    connectionMinutesPerMillion: 0.25,
    /** HTTP API: per million requests (512 KB increments); first 300 million a month, then 0.90. */
    httpRequestsPerMillion: 1.0,
    asOf: 'API Gateway pricing as published, read June 2026',
  },
  lambda: {
    /** Requests, per million. */
    requestsPerMillion: 0.2,
    /** arm64 duration, per GB-second (first 7.5 billion GB-s a month; 0.0000120001 for the next 11.25 billion). */
    arm64GbSecond: 0.0000133334,
    arm64GbSecondTier2: 0.0000120001,
    asOf: 'AWS Lambda pricing as published (arm64, tiered), read 2024-2026',
  },
  dynamodb: {
    /** On-demand write request units, per million (after the November 2024 reduction). */
    writeRequestUnitsPerMillion: 0.625,
    /** On-demand read request units, per million. */
    readRequestUnitsPerMillion: 0.125,
    /** Standard table class storage, per GB-month. */
    storageGbMonth: 0.25,
    asOf: 'DynamoDB on-demand pricing as published since November 2024, read July 2025',
  },
  sqs: {
    /** Per million requests (each 64 KB chunk of payload is one request), first 100 billion a month. */
    standardPerMillion: 0.4,
    fifoPerMillion: 0.5,
    asOf: 'Amazon SQS pricing as published, read March and June 2026',
  },
  /** Data transfer out to the internet, per GB (first 10 TB a month), what API Gateway's frames out pay. */
  dataTransferOutPerGb: 0.09,
  secretsManager: { perSecretMonth: 0.4, per10kApiCalls: 0.05, asOf: 'AWS Secrets Manager pricing as published' },
  cloudWatchLogs: { ingestionPerGb: 0.5, asOf: 'CloudWatch Logs standard ingestion (first tier of Lambda logs since May 2025), read June 2026' },
  xray: { tracesRecordedPerMillion: 5.0, asOf: 'AWS X-Ray pricing as published' },
} as const;

/** The anchors' published prices (docs/cost.md cites them with their dates). */
export const ANCHORS = {
  pusher: {
    /** Channels plans: monthly price, concurrent connections, messages a day (publishes + deliveries). */
    plans: [
      { name: 'Sandbox', price: 0, connections: 100, messagesPerDay: 200_000 },
      { name: 'Startup', price: 49, connections: 500, messagesPerDay: 1_000_000 },
      { name: 'Pro', price: 99, connections: 2_000, messagesPerDay: 4_000_000 },
      { name: 'Business', price: 299, connections: 5_000, messagesPerDay: 10_000_000 },
      { name: 'Premium', price: 499, connections: 10_000, messagesPerDay: 20_000_000 },
      { name: 'Growth', price: 699, connections: 15_000, messagesPerDay: 40_000_000 },
      { name: 'Plus', price: 899, connections: 20_000, messagesPerDay: 60_000_000 },
      { name: 'Growth Plus', price: 1_199, connections: 30_000, messagesPerDay: 90_000_000 },
    ],
    asOf: 'pusher.com/channels/pricing as transcribed May 2026; message counting from Pusher support',
  },
  ably: {
    /** Per-minute (resource-based) list rates before volume discounts, and the package fees and limits. */
    messagesPerMillion: 2.5,
    connectionMinutesPerMillion: 1.0,
    channelMinutesPerMillion: 1.0,
    packages: [
      { name: 'Standard', price: 29, connections: 10_000, messagesPerSecond: 2_500 },
      { name: 'Pro', price: 399, connections: 50_000, messagesPerSecond: 10_000 },
    ],
    asOf: 'ably.com/docs/pricing (packages, limits) and pricing pages (rates), read 2025-2026',
  },
  appSyncEvents: {
    /** Per million Event API operations (a publish, each delivery, a connect); per million connection-minutes. */
    operationsPerMillion: 1.0,
    connectionMinutesPerMillion: 0.08,
    asOf: 'AWS price list, effective 2024-09-01',
  },
} as const;

export interface Workload {
  id: string;
  name: string;
  /** Concurrent connections, all month. */
  connections: number;
  /** Devices per user (users = connections / devicesPerUser; the anchors' channels are users). */
  devicesPerUser: number;
  /** Client sends per second, and how they split between the measured operations. */
  sendsPerSecond: number;
  sendMix: Partial<Record<'send.user' | 'send.group10' | 'send.group100', number>>;
  /** Broadcasts to every connection, per minute. */
  broadcastsPerMinute: number;
  /** Seconds between a connection's pings (docs: at least every 5 minutes). */
  pingIntervalSeconds: number;
  /** Hours between reconnects (API Gateway closes every connection after 2 hours). */
  reconnectIntervalHours: number;
  /** `sync` pages per reconnect (the measured 20-message page). */
  syncsPerReconnect: number;
  /** Hours each connection is online in the month (730 = always). */
  hoursOnline: number;
  /** Why these numbers. */
  notes: string;
}

const SECONDS_PER_MONTH = 730 * 3600;

export const WORKLOADS: Workload[] = [
  {
    id: 'a',
    name: '(a) 1,000 connections, 10 messages/s',
    connections: 1_000,
    devicesPerUser: 2,
    sendsPerSecond: 10,
    sendMix: { 'send.user': 0.8, 'send.group10': 0.2 },
    broadcastsPerMinute: 0,
    pingIntervalSeconds: 300,
    reconnectIntervalHours: 2,
    syncsPerReconnect: 1,
    hoursOnline: 730,
    notes: 'a chat app: 500 users with 2 devices online all month; 80 % of sends to one user (2 devices), 20 % to a group of 10',
  },
  {
    id: 'b',
    name: '(b) 100,000 connections, 1,000 messages/s',
    connections: 100_000,
    devicesPerUser: 2,
    sendsPerSecond: 1_000,
    sendMix: { 'send.user': 0.8, 'send.group10': 0.2 },
    broadcastsPerMinute: 0,
    pingIntervalSeconds: 300,
    reconnectIntervalHours: 2,
    syncsPerReconnect: 1,
    hoursOnline: 730,
    notes: 'the same mix at 100 times the size (the scale target of issue 12)',
  },
  {
    id: 'c',
    name: '(c) 1,000,000 connections, broadcast-heavy',
    connections: 1_000_000,
    devicesPerUser: 2,
    sendsPerSecond: 100,
    sendMix: { 'send.user': 1 },
    broadcastsPerMinute: 1,
    pingIntervalSeconds: 300,
    reconnectIntervalHours: 2,
    syncsPerReconnect: 1,
    hoursOnline: 730,
    notes: 'a live-event app: one broadcast a minute to every connection, plus light one-to-one traffic (100 sends/s)',
  },
];

export interface BroadcastPerConnection {
  /** Sizes the slope is taken between. */
  from: number;
  to: number;
  readUnits: number;
  writeUnits: number;
  sqsRequests: number;
  invocations: number;
  messagesOut: number;
  posts: number;
  bytesOut: number;
  localMs: number;
  localGbSeconds: number;
}

const r = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;

/**
 * Marginal units per connection of a broadcast: between the two largest measured sizes (with 10
 * connections a parallel-scan segment may be empty, which lowers the fixed part).
 */
export function perConnectionBroadcast(ops: readonly OperationUnits[]): BroadcastPerConnection | undefined {
  const sized = ops
    .filter((o) => o.operation.startsWith('broadcast.'))
    .map((o) => ({ size: Number(o.operation.split('.')[1]), o }))
    .sort((a, b) => a.size - b.size);
  if (sized.length < 2) return undefined;
  const a = sized[sized.length - 2]!;
  const b = sized[sized.length - 1]!;
  const n = b.size - a.size;
  return {
    from: a.size,
    to: b.size,
    readUnits: r((b.o.dynamo.readUnits - a.o.dynamo.readUnits) / n, 4),
    writeUnits: r((b.o.dynamo.writeUnits - a.o.dynamo.writeUnits) / n, 4),
    sqsRequests: r((b.o.sqs.fifoRequests + b.o.sqs.standardRequests - a.o.sqs.fifoRequests - a.o.sqs.standardRequests) / n, 4),
    invocations: r((b.o.lambda.invocations - a.o.lambda.invocations) / n, 4),
    messagesOut: r((b.o.apiGateway.messagesOut - a.o.apiGateway.messagesOut) / n, 4),
    posts: r((b.o.apiGateway.posts - a.o.apiGateway.posts) / n, 4),
    bytesOut: r((b.o.bytes.webSocketOut - a.o.bytes.webSocketOut) / n, 1),
    localMs: r((b.o.lambda.localMs - a.o.lambda.localMs) / n, 2),
    localGbSeconds: r((b.o.lambda.localGbSeconds - a.o.lambda.localGbSeconds) / n, 7),
  };
}

/** Usage of one operation kind, per occurrence (what the bill multiplies). */
interface PerOp {
  readUnits: number;
  writeUnits: number;
  sqsFifo: number;
  sqsStandard: number;
  invocations: number;
  gbSeconds: number;
  messagesIn: number;
  messagesOut: number;
  httpRequests: number;
  bytesOut: number;
  /** Inbox rows written (the storage estimate), and deliveries (the anchors' message counts). */
  deliveries: number;
}

function perOp(o: OperationUnits, deliveries: number): PerOp {
  return {
    readUnits: o.dynamo.readUnits,
    writeUnits: o.dynamo.writeUnits,
    sqsFifo: o.sqs.fifoRequests,
    sqsStandard: o.sqs.standardRequests,
    invocations: o.lambda.invocations,
    gbSeconds: o.lambda.localGbSeconds,
    messagesIn: o.apiGateway.messagesIn,
    messagesOut: o.apiGateway.messagesOut,
    httpRequests: o.apiGateway.httpRequests,
    bytesOut: o.bytes.webSocketOut,
    deliveries,
  };
}

export interface BillLine {
  service: string;
  item: string;
  quantity: number;
  unit: string;
  usd: number;
  /** true: from measured units; false: an estimate from stated assumptions. */
  measured: boolean;
}

export interface Bill {
  workload: Workload;
  /** Operations a month, by kind. */
  volumes: Record<string, number>;
  /** API Gateway WebSocket messages a month (in + out), by kind of operation. */
  messagesByOperation: Record<string, number>;
  lines: BillLine[];
  measuredTotal: number;
  estimatedTotal: number;
  total: number;
  /** API Gateway's own message and connection-minute fees for this traffic. */
  floor: number;
  anchors: Array<{ name: string; usd: number | null; note: string }>;
}

const per = (perMillion: number, count: number) => (count / 1e6) * perMillion;

/** Monthly bills of the named workloads from the measured operations. */
export function billsFor(ops: readonly OperationUnits[], workloads: readonly Workload[] = WORKLOADS): Bill[] {
  const byName = new Map(ops.map((o) => [o.operation, o]));
  const need = (name: string) => {
    const o = byName.get(name);
    if (!o) throw new Error(`the bill needs the measured operation ${name}`);
    return o;
  };
  const broadcast = perConnectionBroadcast(ops);
  const largestBroadcast = ops.filter((o) => o.operation.startsWith('broadcast.')).sort((a, b) => Number(b.operation.split('.')[1]) - Number(a.operation.split('.')[1]))[0];
  return workloads.map((w) => {
    const users = w.connections / w.devicesPerUser;
    const minutes = w.connections * w.hoursOnline * 60;
    const seconds = (SECONDS_PER_MONTH * w.hoursOnline) / 730;
    const reconnects = (w.connections * w.hoursOnline) / w.reconnectIntervalHours;
    const counts: Array<[string, number, PerOp]> = [
      ['connect', reconnects, perOp(need('connect'), 0)],
      ['disconnect', reconnects, perOp(need('disconnect'), 0)],
      ['ping', (w.connections * w.hoursOnline * 3600) / w.pingIntervalSeconds, perOp(need('ping'), 0)],
      ['sync.20', reconnects * w.syncsPerReconnect, perOp(need('sync.20'), 0)],
    ];
    // Deliveries per send as measured: to a user with 2 devices 2, to a group of N the N - 1 other members.
    const sendDeliveries: Record<string, number> = { 'send.user': 2, 'send.group10': 9, 'send.group100': 99 };
    for (const [name, share] of Object.entries(w.sendMix)) counts.push([name, w.sendsPerSecond * share! * seconds, perOp(need(name), sendDeliveries[name]!)]);
    if (w.broadcastsPerMinute > 0) {
      if (!broadcast || !largestBroadcast) throw new Error('the bill needs two measured broadcast sizes');
      // One broadcast to N connections: the largest measured one, plus the per-connection slope for the rest.
      const size = Number(largestBroadcast.operation.split('.')[1]);
      const base = perOp(largestBroadcast, size);
      const extra = w.connections - size;
      const one: PerOp = {
        readUnits: base.readUnits + extra * broadcast.readUnits,
        writeUnits: base.writeUnits + extra * broadcast.writeUnits,
        sqsFifo: base.sqsFifo,
        sqsStandard: base.sqsStandard + extra * broadcast.sqsRequests,
        invocations: base.invocations + extra * broadcast.invocations,
        gbSeconds: base.gbSeconds + extra * broadcast.localGbSeconds,
        messagesIn: base.messagesIn,
        messagesOut: base.messagesOut + extra * broadcast.messagesOut,
        httpRequests: base.httpRequests,
        bytesOut: base.bytesOut + extra * broadcast.bytesOut,
        deliveries: w.connections,
      };
      counts.push([`broadcast (${w.connections.toLocaleString('en-US')} connections)`, w.broadcastsPerMinute * w.hoursOnline * 60, one]);
    }
    const volumes = Object.fromEntries(counts.map(([name, n]) => [name, Math.round(n)]));
    const messagesByOperation = Object.fromEntries(counts.map(([name, n, p]) => [name, Math.round(n * (p.messagesIn + p.messagesOut))]));
    const sum = (f: (p: PerOp) => number) => counts.reduce((s, [, n, p]) => s + n * f(p), 0);
    const messages = sum((p) => p.messagesIn + p.messagesOut);
    const wsMessagesUsd = messages <= 1e9 ? per(PRICES.apiGateway.websocketMessagesPerMillion, messages) : per(PRICES.apiGateway.websocketMessagesPerMillion, 1e9) + per(PRICES.apiGateway.websocketMessagesPerMillionAfter1B, messages - 1e9);
    const connectionMinutesUsd = per(PRICES.apiGateway.connectionMinutesPerMillion, minutes);
    const http = sum((p) => p.httpRequests);
    const invocations = sum((p) => p.invocations);
    const gbs = sum((p) => p.gbSeconds);
    const gbsUsd = gbs <= 7.5e9 ? gbs * PRICES.lambda.arm64GbSecond : 7.5e9 * PRICES.lambda.arm64GbSecond + (gbs - 7.5e9) * PRICES.lambda.arm64GbSecondTier2;
    const rru = sum((p) => p.readUnits);
    const wru = sum((p) => p.writeUnits);
    const fifo = sum((p) => p.sqsFifo);
    const standard = sum((p) => p.sqsStandard);
    const gbOut = sum((p) => p.bytesOut) / 1e9;
    // Estimates (not measured): inbox storage, logs, traces, secrets.
    // Inbox rows a send writes: the recipient and the sender (to a user), every member (to a group).
    const rowsPerSend: Record<string, number> = { 'send.user': 2, 'send.group10': 10, 'send.group100': 100 };
    const storedRows = counts.filter(([name]) => name.startsWith('send.')).reduce((s, [name, n]) => s + (n * (rowsPerSend[name] ?? 0) * 7) / 30.4, 0);
    const storageGb = storedRows / 1e6; // <= 1 KB a row: every inbox row write was measured at 1 write unit
    const logGb = (invocations * 400) / 1e9; // START/END/REPORT lines (~400 bytes with the X-Ray trace id)
    const traces = invocations * 0.05 + seconds; // default sampling: 1 a second + 5 % of the rest
    const lines: BillLine[] = [
      { service: 'API Gateway', item: 'WebSocket messages', quantity: messages, unit: 'messages', usd: wsMessagesUsd, measured: true },
      { service: 'API Gateway', item: 'WebSocket connection-minutes', quantity: minutes, unit: 'minutes', usd: connectionMinutesUsd, measured: true },
      { service: 'API Gateway', item: 'HTTP API requests', quantity: http, unit: 'requests', usd: per(PRICES.apiGateway.httpRequestsPerMillion, http), measured: true },
      { service: 'Lambda', item: 'requests', quantity: invocations, unit: 'invocations', usd: per(PRICES.lambda.requestsPerMillion, invocations), measured: true },
      { service: 'Lambda', item: 'duration (arm64, local durations)', quantity: gbs, unit: 'GB-s', usd: gbsUsd, measured: true },
      { service: 'DynamoDB', item: 'write request units', quantity: wru, unit: 'WRU', usd: per(PRICES.dynamodb.writeRequestUnitsPerMillion, wru), measured: true },
      { service: 'DynamoDB', item: 'read request units', quantity: rru, unit: 'RRU', usd: per(PRICES.dynamodb.readRequestUnitsPerMillion, rru), measured: true },
      { service: 'SQS', item: 'FIFO requests', quantity: fifo, unit: 'requests', usd: per(PRICES.sqs.fifoPerMillion, fifo), measured: true },
      { service: 'SQS', item: 'standard requests', quantity: standard, unit: 'requests', usd: per(PRICES.sqs.standardPerMillion, standard), measured: true },
      { service: 'Data transfer', item: 'WebSocket frames out', quantity: gbOut, unit: 'GB', usd: gbOut * PRICES.dataTransferOutPerGb, measured: true },
      { service: 'DynamoDB', item: 'inbox storage (7 days, <= 1 KB a row)', quantity: storageGb, unit: 'GB-month', usd: storageGb * PRICES.dynamodb.storageGbMonth, measured: false },
      { service: 'CloudWatch Logs', item: 'Lambda platform lines (~400 B an invocation)', quantity: logGb, unit: 'GB', usd: logGb * PRICES.cloudWatchLogs.ingestionPerGb, measured: false },
      { service: 'X-Ray', item: 'traces (default sampling)', quantity: traces, unit: 'traces', usd: per(PRICES.xray.tracesRecordedPerMillion, traces), measured: false },
      // 3 secrets; reads are cached 5 minutes per instance: about $1 of API calls assumed.
      { service: 'Secrets Manager', item: '3 secrets + cached reads', quantity: 3, unit: 'secrets', usd: 3 * PRICES.secretsManager.perSecretMonth + 1, measured: false },
    ];
    const measuredTotal = lines.filter((l) => l.measured).reduce((s, l) => s + l.usd, 0);
    const estimatedTotal = lines.filter((l) => !l.measured).reduce((s, l) => s + l.usd, 0);
    const floor = wsMessagesUsd + connectionMinutesUsd;

    // The anchors, for the same traffic: publishes + deliveries (pings, acks and syncs are wxgate's own).
    const publishes = counts.filter(([name]) => name.startsWith('send.') || name.startsWith('broadcast')).reduce((s, [, n]) => s + n, 0);
    const deliveries = sum((p) => p.deliveries);
    const anchorMessages = publishes + deliveries;
    const perDay = (anchorMessages / w.hoursOnline) * 24;
    const plan = ANCHORS.pusher.plans.find((p) => p.connections >= w.connections && p.messagesPerDay >= perDay);
    const ablyPackage = ANCHORS.ably.packages.find((p) => p.connections >= w.connections && p.messagesPerSecond >= anchorMessages / seconds);
    const ablyUsage = per(ANCHORS.ably.messagesPerMillion, anchorMessages) + per(ANCHORS.ably.connectionMinutesPerMillion, minutes) + per(ANCHORS.ably.channelMinutesPerMillion, users * w.hoursOnline * 60);
    const appSync = per(ANCHORS.appSyncEvents.operationsPerMillion, anchorMessages + reconnects) + per(ANCHORS.appSyncEvents.connectionMinutesPerMillion, minutes);
    const anchors = [
      {
        name: 'Pusher Channels',
        usd: plan ? plan.price : null,
        note: plan
          ? `${plan.name} plan (${plan.connections.toLocaleString('en-US')} connections, ${(plan.messagesPerDay / 1e6).toLocaleString('en-US')} M messages a day; this traffic is ${(perDay / 1e6).toFixed(1)} M a day)`
          : `no published plan: ${w.connections.toLocaleString('en-US')} connections and ${(perDay / 1e6).toFixed(0)} M messages a day are past Growth Plus (30,000, 90 M); Enterprise, price on request`,
      },
      {
        name: 'Ably',
        usd: ablyPackage ? ablyPackage.price + ablyUsage : null,
        note: ablyPackage
          ? `${ablyPackage.name} package $${ablyPackage.price} + usage at list rates $${ablyUsage.toFixed(0)} (${(anchorMessages / 1e6).toFixed(0)} M messages, ${(minutes / 1e6).toFixed(1)} M connection-minutes, ${((users * w.hoursOnline * 60) / 1e6).toFixed(1)} M channel-minutes)`
          : `past the Pro package (50,000 connections, 10,000 messages/s): Enterprise, price on request; at list rates the usage alone is $${ablyUsage.toFixed(0)}`,
      },
      {
        name: 'AppSync Events',
        usd: appSync,
        note: `${((anchorMessages + reconnects) / 1e6).toFixed(0)} M operations (publishes, deliveries, connects) + ${(minutes / 1e6).toFixed(1)} M connection-minutes; no inbox or sync: storage would be extra`,
      },
    ];
    return { workload: w, volumes, messagesByOperation, lines, measuredTotal, estimatedTotal, total: measuredTotal + estimatedTotal, floor, anchors };
  });
}

/** A markdown table; `align` per column ('l' or 'r'), default: the first left, the rest right. */
function table(header: string[], rows: Array<Array<string | number>>, align?: string): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  const right = (i: number) => (align ? align[i] === 'r' : i > 0);
  const line = (row: string[]) => `| ${row.map((c, i) => (right(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(cells[0]!), `| ${widths.map((w, i) => (right(i) ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n');
}

export function formatUnitsTable(ops: readonly OperationUnits[], perConnection?: BroadcastPerConnection): string {
  const rows = ops.map((o) => [
    o.operation,
    o.dynamo.readUnits,
    o.dynamo.writeUnits,
    o.sqs.fifoRequests,
    o.sqs.standardRequests,
    o.lambda.invocations,
    o.lambda.localMs,
    o.apiGateway.messagesIn,
    o.apiGateway.messagesOut,
    o.apiGateway.httpRequests,
    o.apiGateway.posts,
  ]);
  if (perConnection) {
    rows.push([
      `broadcast, per connection (${perConnection.from}->${perConnection.to})`,
      perConnection.readUnits,
      perConnection.writeUnits,
      0,
      perConnection.sqsRequests,
      perConnection.invocations,
      perConnection.localMs,
      0,
      perConnection.messagesOut,
      0,
      perConnection.posts,
    ]);
  }
  return table(['operation', 'DDB read units', 'DDB write units', 'SQS FIFO req', 'SQS std req', 'Lambda inv', 'local ms', 'WS msg in', 'WS msg out', 'HTTP req', '@conn POST'], rows);
}

const usd = (n: number) => `$${n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)}`;
const qty = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(n < 10 ? 2 : 0));

export function formatBills(bills: readonly Bill[], markdown = false): string {
  const out: string[] = [];
  for (const b of bills) {
    out.push(markdown ? `#### ${b.workload.name}\n\n${b.workload.notes}.\n` : `${b.workload.name}: ${b.workload.notes}`);
    out.push(`volumes a month: ${Object.entries(b.volumes).map(([k, v]) => `${k} ${qty(v)}`).join(', ')}${markdown ? '\n' : ''}`);
    out.push(table(['service', 'item', 'quantity', 'USD/month', 'from'], b.lines.map((l) => [l.service, l.item, `${qty(l.quantity)} ${l.unit}`, usd(l.usd), l.measured ? 'measured units' : 'estimate']), 'llrrl'));
    out.push(`${markdown ? '\n' : ''}WebSocket messages by operation: ${Object.entries(b.messagesByOperation).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${qty(v)}`).join(', ')}`);
    out.push(`${markdown ? '\n**' : ''}total ${usd(b.total)}${markdown ? '**' : ''} (measured units ${usd(b.measuredTotal)}, estimates ${usd(b.estimatedTotal)}); floor (API Gateway messages + connection-minutes) ${usd(b.floor)}${markdown ? '\n' : ''}`);
    for (const a of b.anchors) out.push(`${markdown ? '-' : ' '} ${a.name}: ${a.usd === null ? 'n/a' : usd(a.usd)} - ${a.note}`);
    out.push('');
  }
  return out.join('\n');
}

/** Where each operation's units go: per table (indexes and the meter's computed part in brackets), SQS per queue, invocations and local ms per function. */
export function formatDetailTable(ops: readonly OperationUnits[]): string {
  const rows = ops.map((o) => {
    const tables = Object.entries(o.dynamo.byTable)
      .map(([t, u]) => {
        const idx = u.indexes ? Object.entries(u.indexes).map(([i, v]) => `${i} ${v.readUnits}/${v.writeUnits}`).join(', ') : '';
        const computed = u.computed ? `computed ${u.computed.readUnits}/${u.computed.writeUnits}` : '';
        const extra = [idx, computed].filter(Boolean).join('; ');
        return `${t} ${u.readUnits}/${u.writeUnits}${extra ? ` (${extra})` : ''}`;
      })
      .join('; ');
    const sqs = Object.entries(o.sqs.byQueue)
      .map(([q, actions]) => `${q}: ${Object.entries(actions).map(([a, n]) => `${a} ${n}`).join(', ')}`)
      .join('; ');
    const fns = Object.entries(o.lambda.byFunction)
      .map(([f, n]) => `${f}${n > 1 ? ` x${n}` : ''} ${o.lambda.msByFunction[f]} ms`)
      .join(', ');
    return [o.operation, tables || '-', sqs || '-', fns];
  });
  return table(['operation', 'DynamoDB read/write units by table', 'SQS requests', 'invocations, local ms (median run)'], rows, 'llll');
}

/** The three workloads side by side: wxgate's bill, its floor, the anchors. */
export function formatSummary(bills: readonly Bill[]): string {
  const anchor = (b: Bill, name: string) => {
    const a = b.anchors.find((x) => x.name === name);
    return a?.usd === null || a?.usd === undefined ? 'no self-serve plan' : usd(a.usd);
  };
  return table(
    ['USD a month', ...bills.map((b) => b.workload.name)],
    [
      ['wxgate, measured units', ...bills.map((b) => usd(b.measuredTotal))],
      ['wxgate, estimates (storage, logs, traces, secrets)', ...bills.map((b) => usd(b.estimatedTotal))],
      ['**wxgate total**', ...bills.map((b) => `**${usd(b.total)}**`)],
      ['floor: API Gateway messages + connection-minutes', ...bills.map((b) => usd(b.floor))],
      ['Pusher Channels', ...bills.map((b) => anchor(b, 'Pusher Channels'))],
      ['Ably', ...bills.map((b) => anchor(b, 'Ably'))],
      ['AppSync Events', ...bills.map((b) => anchor(b, 'AppSync Events'))],
    ],
  );
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` in a document. */
export function replaceSection(doc: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`no ${start} ... ${end} section`);
  return `${doc.slice(0, a + start.length)}\n${content.trim()}\n${doc.slice(b)}`;
}
