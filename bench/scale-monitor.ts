/**
 * What the scale bench watches while it runs (bench/scale.ts): memory (RSS) and CPU time of the
 * gateway process (this one: the handlers, the WebSocket and HTTP emulation, fauxqs), of the
 * client process and of the DynamoDB Local JVM, the gateway's event-loop delay, the JVM's heap,
 * the machine's load and free memory; sampled every second and summed up per phase.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const MiB = 2 ** 20;
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every common build). */
const CLOCK_TICKS = 100;

export const round1 = (n: number): number => Math.round(n * 10) / 10;

/** VmRSS of a process in MiB, or null when it is gone or /proc is not there. */
export function rssMiB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used so far, or null. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** The machine's MemAvailable in MiB (what can still be used without swapping), or null. */
export function memAvailableMiB(): number | null {
  try {
    const match = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** The soft and hard limits on open files of a process (Linux /proc). */
export function openFileLimits(pid: number | 'self' = 'self'): { soft: number; hard: number } | null {
  try {
    const match = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    if (!match) return null;
    const value = (s: string) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: value(match[1]!), hard: value(match[2]!) };
  } catch {
    return null;
  }
}

/** Open file descriptors of a process, or null. */
export function openFiles(pid: number | 'self' = 'self'): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** The pid of this process's `java` child (DynamoDB Local, started by local/dynamodb-engine.ts), or undefined. */
export function findJavaChild(parentPid = process.pid): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parentPid && command === 'java') return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

export interface JavaHeap {
  /** Heap in use (young + old generation), MiB. */
  usedMiB: number;
  /** The heap's current size (committed), MiB. */
  committedMiB: number;
  /** The most it may grow to (-Xmx, by default a quarter of the machine's memory), MiB. */
  maxMiB: number;
}

/** -XX:MaxHeapSize of a JVM in MiB (by default a quarter of the machine's memory), via `jcmd`; read once per pid. */
const maxHeapMiB = new Map<number, Promise<number | null>>();
function maxHeapOf(pid: number): Promise<number | null> {
  let max = maxHeapMiB.get(pid);
  if (!max) {
    max = execFileAsync('jcmd', [String(pid), 'VM.flags'], { timeout: 10_000 }).then(
      (r) => {
        const match = /-XX:MaxHeapSize=(\d+)/.exec(r.stdout);
        return match ? round1(Number(match[1]) / MiB) : null;
      },
      () => null,
    );
    maxHeapMiB.set(pid, max);
  }
  return max;
}

/**
 * The JVM's heap via `jstat -gc` (a JDK tool; local mode needs a JDK anyway), or null if it cannot
 * be read. `used` is what the generations hold, garbage not yet collected included.
 */
export async function javaHeap(pid: number | undefined): Promise<JavaHeap | null> {
  if (pid === undefined) return null;
  try {
    const [out, maxMiB] = await Promise.all([execFileAsync('jstat', ['-gc', String(pid)], { timeout: 10_000 }).then((r) => r.stdout), maxHeapOf(pid)]);
    const [header, values] = out.trim().split('\n').map((line) => line.trim().split(/\s+/));
    const gc = Object.fromEntries(header!.map((name, i) => [name, Number(values![i])]));
    const kib = (...names: string[]) => names.reduce((sum, name) => sum + (gc[name] ?? 0), 0);
    const usedKiB = kib('S0U', 'S1U', 'EU', 'OU');
    const committedKiB = kib('S0C', 'S1C', 'EC', 'OC');
    if (!Number.isFinite(usedKiB) || maxMiB === null) return null;
    return { usedMiB: round1(usedKiB / 1024), committedMiB: round1(committedKiB / 1024), maxMiB };
  } catch {
    return null;
  }
}

export interface ProcessPhase {
  /** Largest RSS sampled in the phase, MiB. */
  peakRssMiB: number | null;
  /** RSS at the end of the phase, MiB. */
  endRssMiB: number | null;
  /** CPU seconds used during the phase per wall second (1.0 = one core busy). */
  cpuCores: number | null;
  /** The same per sampling interval (about a second): the 90th percentile of the intervals, and their share at 0.9 cores or more. */
  cpuCoresP90: number | null;
  shareAbove90: number | null;
}

export interface PhaseStats {
  phase: string;
  wallSeconds: number;
  gateway: ProcessPhase & { heapUsedMiB: number; openFiles: number | null; eventLoopDelayMs: { p50: number; p99: number; max: number } };
  clients: ProcessPhase;
  java: ProcessPhase & { heapAtEnd: JavaHeap | null };
  /** The machine: 1-minute load average at the end, lowest MemAvailable seen. */
  loadAverage1m: number;
  minMemAvailableMiB: number | null;
}

interface Running {
  phase: string;
  startedAt: number;
  /** CPU cores per sampling interval, and the last sample's CPU seconds and time. */
  intervals: { gateway: number[]; java: number[] };
  last: { at: number; gateway: number; java: number | null };
  cpu: { gateway: number; clients: number | null; java: number | null };
  peak: { gateway: number; clients: number | null; java: number | null };
  minAvailable: number | null;
}

const maxOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/**
 * Samples the three processes every `intervalMs` and closes a PhaseStats at each `phase()` call.
 * `clientPid` may be set later (the client process is started after the gateway).
 */
export class ScaleMonitor {
  readonly phases: PhaseStats[] = [];
  clientPid?: number;
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private timer?: NodeJS.Timeout;
  private current?: Running;
  /** Largest RSS of each process over the whole run. */
  readonly peak = { gatewayMiB: 0, clientsMiB: 0, javaMiB: 0 };

  constructor(readonly javaPid: number | undefined) {}

  start(phase: string, intervalMs = 1000): void {
    this.loop.enable();
    this.current = this.begin(phase);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private begin(phase: string): Running {
    this.loop.reset();
    const cpu = process.cpuUsage();
    const startedAt = Date.now();
    return {
      phase,
      startedAt,
      intervals: { gateway: [], java: [] },
      last: { at: startedAt, gateway: (cpu.user + cpu.system) / 1e6, java: cpuSeconds(this.javaPid) },
      cpu: { gateway: (cpu.user + cpu.system) / 1e6, clients: cpuSeconds(this.clientPid), java: cpuSeconds(this.javaPid) },
      peak: { gateway: safeRss(), clients: rssMiB(this.clientPid), java: rssMiB(this.javaPid) },
      minAvailable: memAvailableMiB(),
    };
  }

  private sample(): void {
    const c = this.current;
    if (!c) return;
    let gateway: number;
    try {
      gateway = process.memoryUsage().rss / MiB;
    } catch {
      return; // e.g. EMFILE: reading /proc needs a descriptor too
    }
    const clients = rssMiB(this.clientPid);
    const java = rssMiB(this.javaPid);
    const now = Date.now();
    const cpu = process.cpuUsage();
    const gatewayCpu = (cpu.user + cpu.system) / 1e6;
    const javaCpu = cpuSeconds(this.javaPid);
    const seconds = (now - c.last.at) / 1000;
    if (seconds > 0.5) {
      c.intervals.gateway.push((gatewayCpu - c.last.gateway) / seconds);
      if (javaCpu !== null && c.last.java !== null) c.intervals.java.push((javaCpu - c.last.java) / seconds);
      c.last = { at: now, gateway: gatewayCpu, java: javaCpu };
    }
    c.peak.gateway = Math.max(c.peak.gateway, gateway);
    c.peak.clients = maxOrNull(c.peak.clients, clients);
    c.peak.java = maxOrNull(c.peak.java, java);
    const available = memAvailableMiB();
    c.minAvailable = c.minAvailable === null ? available : available === null ? c.minAvailable : Math.min(c.minAvailable, available);
    this.peak.gatewayMiB = Math.max(this.peak.gatewayMiB, gateway);
    this.peak.clientsMiB = Math.max(this.peak.clientsMiB, clients ?? 0);
    this.peak.javaMiB = Math.max(this.peak.javaMiB, java ?? 0);
  }

  /** Ends the current phase (reading the JVM heap, which takes a moment) and starts `next` (none: stop sampling). */
  async phase(next: string | undefined): Promise<PhaseStats | undefined> {
    const c = this.current;
    if (!c) return undefined;
    this.sample();
    const wallSeconds = (Date.now() - c.startedAt) / 1000;
    const cpu = process.cpuUsage();
    const gatewayCpu = (cpu.user + cpu.system) / 1e6;
    const clientsCpu = cpuSeconds(this.clientPid);
    const javaCpu = cpuSeconds(this.javaPid);
    const cores = (end: number | null, start: number | null) => (end === null || start === null || wallSeconds <= 0 ? null : Math.round(((end - start) / wallSeconds) * 100) / 100);
    const percentileMs = (p: number) => round1(this.loop.percentile(p) / 1e6);
    const loop = { p50: percentileMs(50), p99: percentileMs(99), max: round1(this.loop.max / 1e6) };
    let memory: { rss: number; heapUsed: number };
    try {
      memory = process.memoryUsage();
    } catch {
      memory = { rss: Number.NaN, heapUsed: Number.NaN };
    }
    // Start the next phase's counters before the (slow) heap read, so no time falls between phases.
    this.current = next === undefined ? undefined : this.begin(next);
    if (next === undefined) {
      clearInterval(this.timer);
      this.loop.disable();
    }
    const stats: PhaseStats = {
      phase: c.phase,
      wallSeconds: round1(wallSeconds),
      gateway: {
        peakRssMiB: round1(c.peak.gateway),
        endRssMiB: round1(memory.rss / MiB),
        cpuCores: cores(gatewayCpu, c.cpu.gateway),
        ...intervalStats(c.intervals.gateway),
        heapUsedMiB: round1(memory.heapUsed / MiB),
        openFiles: openFiles(),
        eventLoopDelayMs: loop,
      },
      clients: { peakRssMiB: nullable(c.peak.clients), endRssMiB: nullable(rssMiB(this.clientPid)), cpuCores: cores(clientsCpu, c.cpu.clients), cpuCoresP90: null, shareAbove90: null },
      java: {
        peakRssMiB: nullable(c.peak.java),
        endRssMiB: nullable(rssMiB(this.javaPid)),
        cpuCores: cores(javaCpu, c.cpu.java),
        ...intervalStats(c.intervals.java),
        heapAtEnd: await javaHeap(this.javaPid),
      },
      loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
      minMemAvailableMiB: c.minAvailable === null ? null : Math.round(c.minAvailable),
    };
    this.phases.push(stats);
    return stats;
  }

  stop(): void {
    clearInterval(this.timer);
    this.loop.disable();
    this.current = undefined;
  }
}

function intervalStats(values: number[]): { cpuCoresP90: number | null; shareAbove90: number | null } {
  if (values.length === 0) return { cpuCoresP90: null, shareAbove90: null };
  const sorted = [...values].sort((a, b) => a - b);
  const p90 = sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)]!;
  return { cpuCoresP90: Math.round(p90 * 100) / 100, shareAbove90: Math.round((values.filter((v) => v >= 0.9).length / values.length) * 100) / 100 };
}

const safeRss = (): number => {
  try {
    return process.memoryUsage().rss / MiB;
  } catch {
    return 0;
  }
};
const nullable = (n: number | null) => (n === null ? null : round1(n));
