/**
 * `npm run bench`: first the cold start section (bench/cold-start.ts: each function bundled as the
 * stack bundles it, loaded in fresh Node processes). Then N WebSocket clients exchange M messages through the real local runtime
 * (DynamoDB Local + fauxqs + the handlers in this process, loopback only) and the bench
 * reports throughput, ack and end-to-end latency (also as multiples of a ping baseline taken
 * on the same connections in the same run) and lost messages, which must be 0. Then the WeChat
 * phase (bench/wechat.ts): signed safe-mode callbacks, time to the `success` answer against
 * WeChat's 5 s and the ping, and delivery to an agent. Then the broadcast phase
 * (bench/broadcast.ts): K sockets, wxgate's broadcast job against the naive all-at-once posts,
 * without and with a Management API rate limit.
 * See docs/performance.md. Exit code: 0 ok, 1 lost or failed sends, a WeChat callback not answered
 * `success` or not delivered, or a broadcast that missed a socket or did not finish, 2 crashed /
 * timed out / usage.
 */
import { DEFAULT_JWT_SECRET, startLocalGateway, type LocalGateway } from '../local/local-gateway';
import { adminKeysOption, newBenchAdminKey } from './admin';
import { nowMs, type BenchClient } from './bench-client';
import { broadcastNotes, broadcastProblems, runBroadcastPhase, type BroadcastResources } from './broadcast';
import { COLD_START_USAGE, coldStartFlags, runColdStartSection } from './cold-start';
import { barrier, checkDelivery, measurePings, runSendPhase, settle } from './phases';
import { connectPopulation } from './population';
import { formatBroadcast, formatFigures, formatWechat, formatSettings, machineInfo, resultsFile, writeResult, type BenchFigures, type BenchResult } from './report';
import { runScaleBench } from './scale';
import { parseSettings, usage, UsageError, type BenchSettings } from './settings';
import { perSecond, ratio, round, summarize } from './stats';
import { prepareWechat, releaseWechat, runWechatPhase, wechatFailures, wechatProblems, type WechatResources } from './wechat';

const DRAIN_TIMEOUT_MS = 60_000;
/** The gateway's stop (Java included) gets this long before the process exits anyway. */
const STOP_TIMEOUT_MS = 30_000;

/** What must be released whatever happens: filled in as the run goes. */
interface Resources {
  gatewayStarting?: Promise<LocalGateway>;
  clients: BenchClient[];
  broadcast: BroadcastResources;
  wechat: WechatResources;
}

const log = (line: string) => console.log(line);
const step = (line: string) => console.error(`[bench] ${line}`);

/** Runs the phases, filling in `result` as each one finishes (so an abort keeps what was measured). */
async function runBench(settings: BenchSettings, resources: Resources, result: BenchResult): Promise<void> {
  const t0 = nowMs();
  const adminKey = newBenchAdminKey();
  // The handlers read the accounts file named in their env, and that env is applied before any
  // handler is imported: so the WeChat account has to exist before the gateway starts.
  const wechat = settings.wechatCallbacks > 0 ? await prepareWechat(resources.wechat) : undefined;
  resources.gatewayStarting = startLocalGateway({
    httpPort: 0,
    wsPort: 0,
    adminKeys: adminKeysOption(adminKey),
    handlerEnv: wechat?.handlerEnv,
    logger: settings.verbose ? (line) => console.error(line) : () => {},
  });
  const gateway = await resources.gatewayStarting;
  const gatewayStartSeconds = round((nowMs() - t0) / 1000);
  step(`gateway up in ${gatewayStartSeconds} s at ${gateway.wsUrl}`);

  result.figures = await runMessaging(settings, resources, gateway, gatewayStartSeconds);
  // WeChat before the broadcast: its per-request latencies are measured on the gateway as the
  // messaging phase left it (warm, its sockets still open, nothing else queued), not after the
  // broadcast's 4,000-odd posts and 1,000 connects and disconnects; and the broadcast, the long
  // phase, cannot take the callback figures with it if it aborts.
  if (wechat) {
    result.wechat = await runWechatPhase({
      gateway,
      adminKey,
      jwtSecret: DEFAULT_JWT_SECRET,
      setup: wechat,
      callbacks: settings.wechatCallbacks,
      concurrency: settings.wechatConcurrency,
      messagingPingP50Ms: result.figures.pingMs.p50,
      resources: resources.wechat,
      step,
    });
  }
  if (settings.broadcastConnections === 0) return;
  // The broadcast must reach exactly its own sockets: close the messaging ones and the WeChat
  // agent first (the broadcast waits for their rows to go).
  for (const client of resources.clients) client.terminate();
  for (const client of resources.wechat.clients) client.terminate();
  result.broadcast = await runBroadcastPhase({
    gateway,
    adminKey,
    jwtSecret: DEFAULT_JWT_SECRET,
    connections: settings.broadcastConnections,
    rateLimit: { ratePerSecond: settings.broadcastRate, burst: settings.broadcastBurst },
    naiveSockets: settings.naiveSockets,
    resources: resources.broadcast,
    step,
  });
}

async function runMessaging(settings: BenchSettings, resources: Resources, gateway: LocalGateway, gatewayStartSeconds: number): Promise<BenchFigures> {
  const t0 = nowMs();
  const population = await connectPopulation(gateway.wsUrl, DEFAULT_JWT_SECRET, settings, resources.clients, 30_000);
  step(`${population.clients.length} connections registered in ${round(nowMs() - t0)} ms`);

  const warmup = await runSendPhase(population, settings.users, settings.warmup, settings.concurrency, 'warmup');
  await measurePings(population.senders, settings.pings);
  await settle(gateway, population, DRAIN_TIMEOUT_MS);
  step(`warm-up: ${warmup.sent.length} messages (not counted)`);

  const pingsBefore = await measurePings(population.senders, settings.pings);
  step('sending...');
  const send = await runSendPhase(population, settings.users, settings.messages, settings.concurrency, 'measured');
  const drainMs = await settle(gateway, population, DRAIN_TIMEOUT_MS);
  const pingsAfter = await measurePings(population.senders, settings.pings);
  step('checking delivery with sync on every device...');
  const delivery = await checkDelivery(population, send.sent);
  await barrier(population.clients);

  const pingMs = summarize([...pingsBefore, ...pingsAfter]);
  const ackMs = summarize(send.sent.map((m) => m.ackedAtMs - m.sentAtMs));
  const endToEndMs = summarize(delivery.endToEndMs);
  return {
    gatewayStartSeconds,
    connections: population.clients.length,
    connectMs: summarize(population.connectMs),
    warmupMessages: warmup.sent.length,
    pingMs,
    pingP50BeforeMs: summarize(pingsBefore).p50,
    pingP50AfterMs: summarize(pingsAfter).p50,
    send: {
      attempted: settings.users * settings.messages,
      acked: send.sent.length,
      failed: send.failures.length,
      failureExamples: send.failures.slice(0, 10),
      wallSeconds: round((send.endMs - send.startMs) / 1000, 3),
      ackedPerSecond: perSecond(send.sent.length, send.endMs - send.startMs),
      ackMs,
    },
    delivery: {
      expected: delivery.expected,
      deliveredLive: delivery.deliveredLive,
      // Live pushes trail the acks slightly (ws-send acks first, then delivers).
      deliveredFramesPerSecond: perSecond(delivery.deliveredLive, Math.max(delivery.lastLiveReceiveMs, send.endMs) - send.startMs),
      endToEndMs,
      recoveredViaSync: delivery.recoveredViaSync,
      lost: delivery.lost,
      duplicates: delivery.duplicates,
      unexpected: delivery.unexpected,
      missingFromSync: delivery.missingFromSync,
      lostExamples: delivery.lostExamples,
      queueDrainAfterSendSeconds: round(drainMs / 1000, 3),
    },
    relativeToPingP50: {
      ackP50: ratio(ackMs.p50, pingMs.p50),
      ackP99: ratio(ackMs.p99, pingMs.p50),
      endToEndP50: ratio(endToEndMs.p50, pingMs.p50),
      endToEndP99: ratio(endToEndMs.p99, pingMs.p50),
    },
  };
}

function problemsOf(f: BenchFigures): string[] {
  const problems: string[] = [];
  if (f.delivery.lost > 0) problems.push(`${f.delivery.lost} acked deliveries lost: ${f.delivery.lostExamples.join('; ')}`);
  if (f.send.failed > 0) problems.push(`${f.send.failed} sends not acked: ${f.send.failureExamples.join('; ')}`);
  if (f.delivery.missingFromSync > 0) problems.push(`${f.delivery.missingFromSync} acked deliveries missing from the device's sync`);
  if (f.delivery.duplicates > 0) problems.push(`${f.delivery.duplicates} duplicate frames (allowed by at-least-once, not expected here)`);
  if (f.delivery.unexpected > 0) problems.push(`${f.delivery.unexpected} frames outside the audience`);
  return problems;
}

/** Resolves when the gateway (if it got started) and every client are closed, or after STOP_TIMEOUT_MS. */
async function release(resources: Resources): Promise<void> {
  for (const client of resources.clients) client.terminate();
  for (const socket of resources.broadcast.sockets) socket.terminate();
  for (const destroy of resources.broadcast.destroy) destroy();
  const stopped = (async () => {
    await releaseWechat(resources.wechat).catch((err: Error) => step(`WeChat cleanup failed: ${err.message}`));
    const gateway = await resources.gatewayStarting?.catch(() => undefined);
    await gateway?.stop();
  })();
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(() => (step('gateway stop timed out'), resolve()), STOP_TIMEOUT_MS)));
  await Promise.race([stopped.catch((err: Error) => step(`gateway stop failed: ${err.message}`)), gaveUp]);
  clearTimeout(timer);
}

/** Rejects on the overall timeout, SIGINT/SIGTERM or a stray rejection: whichever comes first. */
function abortSignals(timeoutSeconds: number): { aborted: Promise<never>; clear: () => void } {
  let abort!: (err: Error) => void;
  const aborted = new Promise<never>((_, reject) => (abort = reject));
  aborted.catch(() => undefined);
  const timer = setTimeout(() => abort(new Error(`overall timeout: not finished after ${timeoutSeconds} s`)), timeoutSeconds * 1000);
  const onSignal = (signal: string) => abort(new Error(`interrupted by ${signal}`));
  const onStray = (reason: unknown) => abort(reason instanceof Error ? reason : new Error(String(reason)));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('unhandledRejection', onStray);
  return {
    aborted,
    clear: () => {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  // `--scale`: the scale bench instead (bench/scale.ts, its own flags).
  if (argv.includes('--scale')) return runScaleBench(argv.filter((arg) => arg !== '--scale'));
  if (argv.includes('--help') || argv.includes('-h')) {
    log(`${usage()}\n${COLD_START_USAGE}`);
    return 0;
  }
  const coldStart = coldStartFlags(argv);
  if (coldStart.only) {
    await runColdStartSection(log, step);
    return 0;
  }
  let settings: BenchSettings;
  try {
    settings = parseSettings(coldStart.rest);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n\n${usage()}`);
    return 2;
  }
  // The cold start section (bench/cold-start.ts) first, on a machine not yet busy with the gateway.
  if (!coldStart.skip) await runColdStartSection(log, step);

  const startedAt = new Date();
  const machine = machineInfo();
  const phases = ['messaging', ...(settings.wechatCallbacks > 0 ? ['WeChat callbacks'] : []), ...(settings.broadcastConnections > 0 ? ['broadcast'] : [])];
  log(`wxgate bench: ${phases.join(', then ')} (local mode)\n\n${formatSettings(settings, machine)}\n`);
  const result: BenchResult = { startedAt: startedAt.toISOString(), durationSeconds: 0, settings, machine, problems: [] };
  const resources: Resources = { clients: [], broadcast: { sockets: [], destroy: [] }, wechat: { clients: [], destroy: [] } };
  const { aborted, clear } = abortSignals(settings.timeoutSeconds);
  const run = runBench(settings, resources, result);
  run.catch(() => undefined); // after an abort its rejection no longer matters
  try {
    await Promise.race([run, aborted]);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    if (result.figures) result.problems.push(...problemsOf(result.figures));
    if (result.wechat) result.problems.push(...wechatProblems(result.wechat));
    if (result.broadcast) result.problems.push(...broadcastProblems(result.broadcast));
    clear();
    step('stopping the gateway...');
    await release(resources);
  }
  result.durationSeconds = round((Date.now() - startedAt.getTime()) / 1000, 1);
  await writeResult(result);

  if (result.figures) log(formatFigures(result.figures));
  if (result.wechat) log(`\n${formatWechat(result.wechat)}`);
  if (result.broadcast) log(`\n${formatBroadcast(result.broadcast)}`);
  if (result.error) console.error(`\nbench FAILED: ${result.error}`);
  for (const problem of result.problems) console.error(`\nproblem: ${problem}`);
  for (const note of result.broadcast ? broadcastNotes(result.broadcast) : []) console.error(`\nnote: ${note}`);
  log(`\nresult written to ${resultsFile} (${result.durationSeconds} s in all)`);
  if (result.error) return 2;
  const f = result.figures!;
  const messagingFailed = f.delivery.lost > 0 || f.send.failed > 0 || f.delivery.missingFromSync > 0;
  const wechatFailed = result.wechat ? wechatFailures(result.wechat).length > 0 : false;
  const broadcastFailed = result.broadcast ? broadcastProblems(result.broadcast).length > 0 : false;
  return messagingFailed || wechatFailed || broadcastFailed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(2);
  },
);
