import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BroadcastFigures, BroadcastRun } from './broadcast';
import type { BenchSettings } from './settings';
import type { LatencySummary } from './stats';
import { WECHAT_LIMIT_MS, type WechatFigures } from './wechat';

/** What `bench/results/latest.json` holds (the folder is gitignored). */
export interface BenchResult {
  startedAt: string;
  durationSeconds: number;
  settings: BenchSettings;
  machine: MachineInfo;
  /** The messaging phases. */
  figures?: BenchFigures;
  /** The WeChat callback phase (absent when skipped with `--wechat-callbacks 0`, or not reached). */
  wechat?: WechatFigures;
  /** The broadcast phase (absent when skipped with `--broadcast-connections 0`, or not reached). */
  broadcast?: BroadcastFigures;
  problems: string[];
  error?: string;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  totalMemoryGiB: number;
  node: string;
  platform: string;
  loadAverageAtStart: number[];
}

export interface BenchFigures {
  gatewayStartSeconds: number;
  connections: number;
  connectMs: LatencySummary;
  warmupMessages: number;
  /** Ping round trips on the sending connections, before and after the send phase, pooled. */
  pingMs: LatencySummary;
  pingP50BeforeMs: number;
  pingP50AfterMs: number;
  send: {
    attempted: number;
    acked: number;
    failed: number;
    failureExamples: string[];
    wallSeconds: number;
    ackedPerSecond: number;
    ackMs: LatencySummary;
  };
  delivery: {
    expected: number;
    deliveredLive: number;
    deliveredFramesPerSecond: number;
    endToEndMs: LatencySummary;
    recoveredViaSync: number;
    lost: number;
    duplicates: number;
    unexpected: number;
    missingFromSync: number;
    lostExamples: string[];
    queueDrainAfterSendSeconds: number;
  };
  /** Latencies as multiples of the ping p50: the figure that travels between machines. */
  relativeToPingP50: { ackP50: number; ackP99: number; endToEndP50: number; endToEndP99: number };
}

export const resultsFile = fileURLToPath(new URL('./results/latest.json', import.meta.url));

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export async function writeResult(result: BenchResult): Promise<void> {
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(resultsFile, `${JSON.stringify(result, null, 2)}\n`);
}

/** Left-aligned first column, right-aligned numbers, two spaces between columns. */
export function formatTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, col) => Math.max(...cells.map((row) => (row[col] ?? '').length)));
  const line = (row: string[]) => row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatSettings(settings: BenchSettings, machine: MachineInfo): string {
  return formatTable(
    ['setting', 'value'],
    [
      ['users', settings.users],
      ['devices per user', settings.devices],
      ['messages per sending user', settings.messages],
      ['concurrency (sends in flight per sender)', settings.concurrency],
      ['warm-up messages per sender', settings.warmup],
      ['pings per sender (before + after)', `${settings.pings} + ${settings.pings}`],
      ['WeChat callbacks (0 = skipped)', settings.wechatCallbacks],
      ['WeChat callbacks in flight', settings.wechatConcurrency],
      ['broadcast sockets (0 = skipped)', settings.broadcastConnections],
      ['broadcast Management API limit (throttled runs)', `${settings.broadcastRate}/s, burst ${settings.broadcastBurst}`],
      ['naive posts: HTTP connections (maxSockets)', settings.naiveSockets],
      ['overall timeout (s)', settings.timeoutSeconds],
      ['machine', `${machine.cpuModel}, ${machine.cores} cores, ${machine.totalMemoryGiB} GiB, Node ${machine.node}`],
    ],
  );
}

const latencyRow = (name: string, s: LatencySummary, pingP50: number): Array<string | number> => [
  name,
  s.count,
  s.p50.toFixed(2),
  s.p99.toFixed(2),
  s.max.toFixed(2),
  (s.p50 / pingP50).toFixed(2),
  (s.p99 / pingP50).toFixed(2),
];

export function formatFigures(f: BenchFigures): string {
  const pingP50 = f.pingMs.p50;
  const latency = formatTable(
    ['latency (ms)', 'samples', 'p50', 'p99', 'max', 'p50/ping p50', 'p99/ping p50'],
    [
      latencyRow('ping -> pong (baseline)', f.pingMs, pingP50),
      latencyRow('send -> ack', f.send.ackMs, pingP50),
      latencyRow('send -> message on device (end to end)', f.delivery.endToEndMs, pingP50),
      latencyRow('connect (open + first pong, all at once)', f.connectMs, pingP50),
    ],
  );
  const throughput = formatTable(
    ['throughput', 'value'],
    [
      ['acked messages', `${f.send.acked} / ${f.send.attempted}`],
      ['send phase wall time (s)', f.send.wallSeconds.toFixed(2)],
      ['acked messages/s', f.send.ackedPerSecond.toFixed(1)],
      ['delivered frames/s (live)', f.delivery.deliveredFramesPerSecond.toFixed(1)],
      ['queue drain after send phase (s)', f.delivery.queueDrainAfterSendSeconds.toFixed(2)],
      ['ping p50 before / after send phase (ms)', `${f.pingP50BeforeMs.toFixed(2)} / ${f.pingP50AfterMs.toFixed(2)}`],
    ],
  );
  const delivery = formatTable(
    ['delivery (message x audience device)', 'count'],
    [
      ['expected', f.delivery.expected],
      ['delivered live', f.delivery.deliveredLive],
      ['recovered via sync', f.delivery.recoveredViaSync],
      ['LOST (acked, not live, not in sync)', f.delivery.lost],
      ['duplicates (same msgId twice on a device)', f.delivery.duplicates],
      ['unexpected (outside the audience)', f.delivery.unexpected],
      ['missing from the device sync', f.delivery.missingFromSync],
      ['send failures (error frame / timeout)', f.send.failed],
    ],
  );
  return [latency, throughput, delivery].join('\n\n');
}

const seconds = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : (ms / 1000).toFixed(2));
const times = (value: number | null): string => (value === null ? '-' : value.toFixed(2));

function runLabel(run: BroadcastRun): string {
  const who = run.job ? 'wxgate (POST /v1/push to all)' : 'naive (Promise.all of posts)';
  return run.rateLimit ? `${who}, limited` : `${who}, no limit`;
}

function runDetail(run: BroadcastRun): string {
  if (run.job) {
    const j = run.job;
    return `job ${j.state}${j.finishedMs === null ? '' : ` at ${seconds(j.finishedMs)} s`} (202 after ${j.answeredMs.toFixed(0)} ms): targeted ${j.targeted}, delivered ${j.delivered}, gone ${j.gone}, failed ${j.failed}`;
  }
  const n = run.naive!;
  const failures = Object.entries(n.failures)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
  return `${n.posts} posts (ids read in ${n.listMs.toFixed(0)} ms before the clock), answered in ${seconds(n.settledMs)} s: ${n.ok} ok, ${n.failed} failed${failures ? ` (${failures})` : ''}`;
}

export function formatBroadcast(b: BroadcastFigures): string {
  const { wxgate, naive, wxgateThrottled, naiveThrottled } = b.runs;
  const floorMs = naive.lastSocketMs;
  const idealMs = b.idealThrottledSeconds * 1000;
  const row = (run: BroadcastRun): Array<string | number> => [
    runLabel(run),
    seconds(run.lastSocketMs),
    times(run.lastSocketMs === null || !floorMs ? null : run.lastSocketMs / floorMs),
    run.rateLimit ? times(run.lastSocketMs === null ? null : run.lastSocketMs / idealMs) : '',
    seconds(run.arrivalMs.count ? run.arrivalMs.p50 : null),
    run.received,
    run.lost,
    run.duplicates,
    run.management.posts,
    run.management.throttled,
  ];
  const limit = `${b.rateLimit.ratePerSecond}/s, burst ${b.rateLimit.burst}`;
  const table = formatTable(
    [`broadcast to ${b.connections} sockets`, 'last socket (s)', 'x floor', 'x K/rate', 'p50 socket (s)', 'received', 'LOST', 'dups', 'posts', '429s'],
    [row(wxgate), row(naive), row(wxgateThrottled), row(naiveThrottled)],
  );
  const details = formatTable(
    ['run', 'detail'],
    [wxgate, naive, wxgateThrottled, naiveThrottled].map((run) => [runLabel(run), runDetail(run)]),
  );
  const f = b.fanout;
  const summary = formatTable(
    ['broadcast', 'value'],
    [
      ['sockets opened (s)', `${b.connections} in ${b.connectSeconds.toFixed(2)}`],
      ['wxgate / naive floor, no limit', `${times(b.relative.wxgateOverFloor)} x`],
      [`ideal under ${limit}: K / rate (s)`, b.idealThrottledSeconds.toFixed(2)],
      ['wxgate limited / ideal', `${times(b.relative.wxgateThrottledOverIdeal)} x (lost ${wxgateThrottled.lost})`],
      ['naive limited / ideal', `${times(b.relative.naiveThrottledOverIdeal)} x (lost ${naiveThrottled.lost} of ${naiveThrottled.sockets})`],
    ],
  );
  const settings =
    `fan-out: ${f.postsPerSecond} posts/s for all jobs (FANOUT_POSTS_PER_SECOND), ${f.workers} workers at ${f.postsPerSecond / f.workers}/s each, ` +
    `${f.scanSegments} scan segments x ${f.scanPageSize} rows a page, ${f.postsInFlightPerTask} posts in flight per task; ` +
    `naive: maxAttempts ${b.naiveClient.maxAttempts}, ${b.naiveClient.maxSockets} HTTP connections`;
  return [table, details, summary, settings].join('\n\n');
}

export function formatWechat(w: WechatFigures): string {
  const pingP50 = w.pingMs.p50;
  const row = (name: string, s: LatencySummary): Array<string | number> => [
    name,
    s.count,
    s.p50.toFixed(2),
    s.p90.toFixed(2),
    s.p99.toFixed(2),
    s.max.toFixed(2),
    (s.p50 / pingP50).toFixed(2),
    (s.p99 / pingP50).toFixed(2),
  ];
  const latency = formatTable(
    ['WeChat callbacks: latency (ms)', 'samples', 'p50', 'p90', 'p99', 'max', 'p50/ping p50', 'p99/ping p50'],
    [row(`ping -> pong (${w.pingSockets} sockets at once, baseline)`, w.pingMs), row('callback posted -> "success" answer', w.ackMs), row('callback posted -> frame on the agent', w.delivery.endToEndMs)],
  );
  const m = w.relativeToMessagingPingP50;
  const summary = formatTable(
    ['WeChat callbacks', 'value'],
    [
      ['callbacks (signed, safe mode)', `${w.callbacks} from ${w.wechatUsers} WeChat users, ${w.concurrency} in flight, after ${w.warmupCallbacks} warm-up`],
      ['answered success / not success', `${w.acked} / ${w.nonSuccess}`],
      [`ack p99 / WeChat's ${WECHAT_LIMIT_MS} ms`, `${(w.ackP99OfLimit * 100).toFixed(2)} % (${w.overLimit} answers over the limit)`],
      ['ack p50 / p99 as x ping p50', `${w.relativeToPingP50.ackP50.toFixed(2)} x / ${w.relativeToPingP50.ackP99.toFixed(2)} x`],
      [
        'ack p50 / p99 as x the messaging ping p50',
        m && w.messagingPingP50Ms ? `${m.ackP50.toFixed(2)} x / ${m.ackP99.toFixed(2)} x (of ${w.messagingPingP50Ms.toFixed(2)} ms)` : '-',
      ],
      ['post phase wall time (s)', w.wallSeconds.toFixed(2)],
      ['callbacks answered/s', w.ackedPerSecond.toFixed(1)],
      ['ping p50 before / after (ms)', `${w.pingP50BeforeMs.toFixed(2)} / ${w.pingP50AfterMs.toFixed(2)}`],
      ['delivered to the agent', `${w.delivery.delivered} / ${w.delivery.expected}`],
      ['LOST (answered success, no frame)', w.delivery.lost],
      ['duplicates (same MsgId twice)', w.delivery.duplicates],
      ['unexpected frames', w.delivery.unexpected],
      ['last frame after the last answer (s)', w.delivery.trailSeconds.toFixed(2)],
      ['delivered frames/s (first post -> last frame)', w.delivery.deliveredPerSecond.toFixed(1)],
    ],
  );
  return [latency, summary].join('\n\n');
}
