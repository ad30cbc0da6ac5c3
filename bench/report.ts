import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchSettings } from './settings';
import type { LatencySummary } from './stats';

/** What `bench/results/latest.json` holds (the folder is gitignored). */
export interface BenchResult {
  startedAt: string;
  durationSeconds: number;
  settings: BenchSettings;
  machine: MachineInfo;
  figures?: BenchFigures;
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
