/**
 * `npm run bench -- --scale` (docs/performance.md, "Scale"): as many connections as the machine
 * holds on the local runtime (10,000 by default), a mixed workload over them for a fixed time
 * (pings from every connection, sends to users and to groups, syncs, one broadcast), and what it
 * cost: throughput and latency per operation (as multiples of the same run's ping), delivery
 * (lost must be 0), memory and CPU of the local runtime and of DynamoDB Local's JVM, and the cost
 * units per operation from the local cost meter, each kind measured in a window of its own.
 *
 * Two processes: this one runs the gateway (startLocalGateway: the handlers, the WebSocket and
 * HTTP emulation, fauxqs, and DynamoDB Local as a Java child) and watches it; a child started with
 * `fork` (bench/scale-clients.ts) holds the client sockets and runs the workload. One process
 * would hold both ends of every socket (two file descriptors each: 10,000 connections are 20,000
 * descriptors, this machine's limit) and mix the clients' work into the runtime's event loop,
 * memory and CPU, which is what is measured.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient, ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import type { CostSnapshot } from '../local/cost-meter';
import { startLocalGateway, type LocalGateway } from '../local/local-gateway';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../local/local-names';
import { adminKeysOption, newBenchAdminKey } from './admin';
import { machineInfo } from './report';
import { formatScale, scaleProblems, type ScaleResult } from './scale-report';
import { findJavaChild, openFileLimits, rssMiB, ScaleMonitor } from './scale-monitor';
import type { ClientMessage, CostWindow, GatewayCounters, GatewayMessage, RpcRequest } from './scale-protocol';
import { parseScaleSettings, scaleUsage, ScaleUsageError, type ScaleSettings } from './scale-settings';

export const scaleResultsFile = fileURLToPath(new URL('./results/scale-latest.json', import.meta.url));
const STOP_TIMEOUT_MS = 60_000;
/** File descriptors each process needs beyond one per socket (HTTP clients, DynamoDB, SQS, files). */
const FD_MARGIN = 2_000;

const step = (line: string) => console.error(`[bench scale] ${line}`);

/**
 * Raises this process's open-file limit to `needed` if it is lower (the client process inherits
 * it) with `prlimit`: the soft limit up to the hard one freely, the hard one only with the
 * privilege to (CAP_SYS_RESOURCE). Returns what it did, for the report.
 */
function ensureOpenFiles(needed: number): { before: number | null; after: number | null; note: string } {
  const before = openFileLimits();
  if (!before) return { before: null, after: null, note: 'open-file limits unknown (no /proc)' };
  if (before.soft >= needed) return { before: before.soft, after: before.soft, note: `limit ${before.soft} >= ${needed} needed` };
  const prlimit = (soft: number, hard: number) => {
    try {
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (needed > before.hard && prlimit(needed, needed)) return { before: before.soft, after: openFileLimits()?.soft ?? null, note: `raised from ${before.soft} to ${needed} (hard limit too) with prlimit` };
  const soft = Math.min(needed, before.hard);
  if (soft > before.soft) prlimit(soft, before.hard);
  const after = openFileLimits()?.soft ?? before.soft;
  return {
    before: before.soft,
    after,
    note:
      after >= needed
        ? `raised from ${before.soft} to ${after} with prlimit`
        : `${needed} needed, but the hard limit ${before.hard} could not be raised (prlimit needs CAP_SYS_RESOURCE): soft limit ${after}; the run stops opening sockets short of it`,
  };
}

/** A cost meter snapshot, reduced to what the report shows. */
function costWindowOf(s: CostSnapshot): CostWindow {
  const byTable: CostWindow['dynamo']['byTable'] = {};
  for (const [id, t] of Object.entries(s.dynamodb)) if (t) byTable[id] = { readUnits: t.readUnits, writeUnits: t.writeUnits, requests: t.requests };
  const byQueue: Record<string, number> = {};
  for (const [id, q] of Object.entries(s.sqs)) if (q) byQueue[id] = q.requests;
  const byFunction: Record<string, number> = {};
  for (const [id, l] of Object.entries(s.lambda)) if (l) byFunction[id] = l.invocations;
  return {
    windowMs: s.windowMs,
    dynamo: { readUnits: s.totals.dynamoReadUnits, writeUnits: s.totals.dynamoWriteUnits, byTable },
    sqs: { requests: s.totals.sqsRequests, fifoRequests: s.totals.sqsFifoRequests, standardRequests: s.totals.sqsStandardRequests, byQueue },
    lambda: { invocations: s.totals.lambdaInvocations, byFunction },
    management: { posts: s.management.posts, gets: s.management.gets, deletes: s.management.deletes },
    websocket: { messagesIn: s.websocket.messagesIn, messagesOut: s.websocket.messagesOut, connects: s.websocket.connects, disconnects: s.websocket.disconnects },
    httpRequests: s.totals.httpRequests,
  };
}

async function countRows(dynamo: DynamoDBClient, table: string): Promise<number> {
  let count = 0;
  let startKey: ScanCommandOutput['LastEvaluatedKey'];
  do {
    const page = await dynamo.send(new ScanCommand({ TableName: table, Select: 'COUNT', ExclusiveStartKey: startKey }));
    count += page.Count ?? 0;
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return count;
}

interface Resources {
  gatewayStarting?: Promise<LocalGateway>;
  child?: ChildProcess;
  monitor?: ScaleMonitor;
  dynamo?: DynamoDBClient;
}

async function run(settings: ScaleSettings, resources: Resources, result: ScaleResult): Promise<void> {
  const t0 = Date.now();
  const adminKey = newBenchAdminKey();
  const jwtSecret = randomBytes(24).toString('hex');
  resources.gatewayStarting = startLocalGateway({
    httpPort: 0,
    wsPort: 0,
    jwtSecret,
    adminKeys: adminKeysOption(adminKey),
    costMeter: settings.meter === 1,
    // Nothing expires during a run: the TTL sweeper (local mode's stand-in for DynamoDB TTL, which
    // costs the application nothing in AWS) would only scan 10,000 rows every 30 s.
    sweepIntervalMs: 24 * 3600_000,
    logger: settings.verbose ? (line) => console.error(line) : () => {},
  });
  const gateway = await resources.gatewayStarting;
  result.gatewayStartSeconds = Math.round((Date.now() - t0) / 100) / 10;
  const javaPid = findJavaChild();
  result.javaPid = javaPid ?? null;
  result.meter = gateway.costMeter !== undefined;
  step(`gateway up in ${result.gatewayStartSeconds} s at ${gateway.wsUrl} (DynamoDB Local: pid ${javaPid ?? 'not found'}; cost meter ${result.meter ? 'on' : 'off'})`);
  const dynamo = (resources.dynamo = new DynamoDBClient({ endpoint: gateway.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS }));
  result.rssAtStartMiB = { gateway: Math.round(process.memoryUsage().rss / 2 ** 20), java: Math.round(rssMiB(javaPid) ?? 0) };
  const monitor = (resources.monitor = new ScaleMonitor(javaPid));
  monitor.start('start');

  const child = (resources.child = fork(fileURLToPath(new URL('./scale-clients.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  }));
  monitor.clientPid = child.pid;
  result.clientPid = child.pid ?? null;

  const answer = async (request: RpcRequest): Promise<unknown> => {
    switch (request.method) {
      case 'drain':
        return gateway.drainQueues(Number(request.arg ?? 120_000));
      case 'phase': {
        const name = String(request.arg);
        const stats = await monitor.phase(name === 'end' ? undefined : name);
        if (stats && stats.phase !== 'start') {
          const g = stats.gateway;
          step(
            `phase "${stats.phase}": ${stats.wallSeconds} s; RSS gateway ${g.peakRssMiB} MiB (peak), clients ${stats.clients.peakRssMiB}, Java ${stats.java.peakRssMiB}; ` +
              `CPU cores gateway ${g.cpuCores}, clients ${stats.clients.cpuCores}, Java ${stats.java.cpuCores}; gateway event-loop delay p99 ${g.eventLoopDelayMs.p99} ms; load ${stats.loadAverage1m}`,
          );
        }
        return null;
      }
      case 'meterReset':
        gateway.costMeter?.reset();
        return null;
      case 'meterSnapshot':
        return gateway.costMeter ? costWindowOf(gateway.costMeter.snapshot()) : null;
      case 'connectionRows':
        return countRows(dynamo, gateway.tableNames.connections);
      case 'gatewayCounters': {
        const m = gateway.managementStats();
        const counters: GatewayCounters = {
          stage: gateway.stageThrottleStats(),
          management: { posts: m.posts, throttled: m.throttled, delivered: m.delivered, gone: m.gone, errors: m.errors },
        };
        return counters;
      }
    }
  };

  const finished = new Promise<void>((resolve, reject) => {
    child.on('message', (message: ClientMessage) => {
      if (message.type === 'rpc') {
        answer(message).then(
          (value) => child.send({ type: 'rpcReply', id: message.id, ok: true, value } satisfies GatewayMessage),
          (err: Error) => child.send({ type: 'rpcReply', id: message.id, ok: false, error: err.message } satisfies GatewayMessage),
        );
        return;
      }
      result.clients = message.figures;
      if (message.type === 'done') resolve();
      else reject(new Error(`client process: ${message.error}`));
    });
    child.once('exit', (code, signal) => reject(new Error(`client process exited (${signal ?? code}) before it finished`)));
  });
  finished.catch(() => undefined);
  child.send({ type: 'start', settings, wsUrl: gateway.wsUrl, httpUrl: gateway.httpUrl, jwtSecret, adminKey, meter: result.meter } satisfies GatewayMessage);
  await finished;
}

/** Stops the client process (by its pid) and the gateway (Java included), bounded. */
async function release(resources: Resources): Promise<void> {
  const child = resources.child;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.disconnect?.();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  resources.monitor?.stop();
  resources.dynamo?.destroy();
  const stopped = (async () => {
    const gateway = await resources.gatewayStarting?.catch(() => undefined);
    await gateway?.stop();
  })();
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(() => (step('gateway stop timed out'), resolve()), STOP_TIMEOUT_MS)));
  await Promise.race([stopped.catch((err: Error) => step(`gateway stop failed: ${err.message}`)), gaveUp]);
  clearTimeout(timer);
}

/** `npm run bench -- --scale [flags]`: `argv` without `--scale`. Exit code: 0 ok, 1 a lost or duplicated message or a broadcast that missed a socket, 2 crashed / timed out / usage. */
export async function runScaleBench(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(scaleUsage());
    return 0;
  }
  let settings: ScaleSettings;
  try {
    settings = parseScaleSettings(argv);
  } catch (err) {
    if (!(err instanceof ScaleUsageError)) throw err;
    console.error(`${err.message}\n\n${scaleUsage()}`);
    return 2;
  }
  const startedAt = new Date();
  const machine = machineInfo();
  const fds = ensureOpenFiles(settings.connections + FD_MARGIN);
  step(`open files: ${fds.note}`);
  const result: ScaleResult = {
    startedAt: startedAt.toISOString(),
    durationSeconds: 0,
    settings,
    machine,
    openFiles: fds,
    meter: false,
    gatewayStartSeconds: 0,
    javaPid: null,
    clientPid: null,
    phases: [],
    rssAtStartMiB: { gateway: 0, java: 0 },
    peakRssMiB: { gateway: 0, clients: 0, java: 0 },
    problems: [],
  };
  const resources: Resources = {};
  let abort!: (err: Error) => void;
  const aborted = new Promise<never>((_, reject) => (abort = reject));
  aborted.catch(() => undefined);
  const timer = setTimeout(() => abort(new Error(`overall timeout: not finished after ${settings.timeoutSeconds} s`)), settings.timeoutSeconds * 1000);
  const onSignal = (signal: string) => abort(new Error(`interrupted by ${signal}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const onStray = (reason: unknown) => abort(reason instanceof Error ? reason : new Error(String(reason)));
  process.on('unhandledRejection', onStray);
  const running = run(settings, resources, result);
  running.catch(() => undefined);
  try {
    await Promise.race([running, aborted]);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    step('stopping the clients and the gateway...');
    if (resources.monitor) {
      result.phases = resources.monitor.phases.filter((p) => p.phase !== 'start');
      const peak = resources.monitor.peak;
      result.peakRssMiB = { gateway: Math.round(peak.gatewayMiB), clients: Math.round(peak.clientsMiB), java: Math.round(peak.javaMiB) };
    }
    await release(resources);
  }
  result.durationSeconds = Math.round((Date.now() - startedAt.getTime()) / 100) / 10;
  result.problems = scaleProblems(result);
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(scaleResultsFile, `${JSON.stringify(result, null, 2)}\n`);
  console.log(formatScale(result));
  if (result.error) console.error(`\nscale bench FAILED: ${result.error}`);
  for (const problem of result.problems) console.error(`\nproblem: ${problem}`);
  console.log(`\nresult written to ${scaleResultsFile} (${result.durationSeconds} s in all)`);
  if (result.error) return 2;
  return result.problems.length > 0 ? 1 : 0;
}
