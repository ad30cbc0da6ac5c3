/**
 * The client process of the scale bench (bench/scale.ts starts it with `fork`): it holds the
 * sockets and runs the workload, and asks the gateway process (over the IPC channel) to drain the
 * queues, read the cost meter and mark phases. Apart so that the two ends of 10,000 sockets do not
 * share one process's file descriptors, event loop and heap: the gateway process's memory and
 * event-loop delay are then the local runtime's own.
 *
 * Phases: connect (paced under the `$connect` throttle), groups through the admin API, warm-up,
 * idle pings, the mixed workload (pings from every connection, p2p sends, group sends, syncs and
 * one broadcast, open loop at fixed rates), settle and the delivery check, cost windows (each kind
 * of operation alone), close.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { issueClientToken } from '../lambdas/domain/client-token';
import { adminRequest } from './admin';
import { memAvailableMiB, openFileLimits, openFiles } from './scale-monitor';
import type {
  BroadcastFigures,
  ClientFigures,
  ClientMessage,
  ConnectFigures,
  CostOperation,
  CostWindow,
  DeliveryFigures,
  GatewayCounters,
  GatewayMessage,
  OperationFigures,
  RpcMethod,
  StartMessage,
} from './scale-protocol';
import type { ScaleSettings } from './scale-settings';
import { perSecond, summarize, type LatencySummary } from './stats';

const nowMs = (): number => performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const REQUEST_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 30_000;
const CONNECT_ATTEMPTS = 5;
/** Open files checked every this many connects. */
const FILES_CHECK_EVERY = 250;
/** Open files the gateway keeps free for its own HTTP connections (a run at 10,000 used about 400). */
const FILES_RESERVE = 1_000;
/** Stop opening connections when the machine has less than this left (it is shared). */
const MIN_MEM_AVAILABLE_MIB = 2048;
const DRAIN_TIMEOUT_MS = 180_000;
const JOB_POLL_MS = 500;
const JOB_TIMEOUT_MS = 300_000;
/** Waiting for live deliveries after the workload: give up after this long without progress. */
const DELIVERY_QUIET_MS = 10_000;
/** Connections whose whole inbox the delivery check reads with sync (besides those missing something). */
const SYNC_CHECK_SAMPLE = 200;

// ---------------------------------------------------------------------------------------------
// The IPC channel to the gateway process
// ---------------------------------------------------------------------------------------------

let rpcSeq = 0;
const rpcWaiters = new Map<number, { resolve: (value: any) => void; reject: (err: Error) => void }>();

function rpc<T>(method: RpcMethod, arg?: unknown): Promise<T> {
  const id = ++rpcSeq;
  return new Promise<T>((resolve, reject) => {
    rpcWaiters.set(id, { resolve, reject });
    send({ type: 'rpc', id, method, arg });
  });
}

function send(message: ClientMessage): void {
  process.send?.(message);
}

// ---------------------------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------------------------

type Frame = Record<string, any>;

interface Answer {
  frame: Frame;
  sentAtMs: number;
  answeredAtMs: number;
  /** The stage throttle answered ({"message":"Too Many Requests"}), nothing ran. */
  throttled: boolean;
}

interface Pending {
  sentAtMs: number;
  resolve: (answer: Answer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

class ConnectError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

class ScaleClient {
  /** msgId -> receive times of every `message` frame carrying it. */
  readonly received = new Map<string, number[]>();
  cursor?: string;
  closedAtMs?: number;
  closeCode?: number;
  /** Set when the bench closes it: a close after that is not unexpected. */
  closing = false;
  private readonly pending = new Map<string, Pending>();
  private seq = 0;

  private constructor(
    readonly index: number,
    readonly userIndex: number,
    readonly userId: string,
    readonly deviceId: string,
    private readonly socket: WebSocket,
    onClose: (client: ScaleClient) => void,
  ) {
    socket.on('message', (data) => this.onFrame(data.toString(), nowMs()));
    socket.on('close', (code) => {
      this.closedAtMs = nowMs();
      this.closeCode = code;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.reject(new Error('closed'));
      }
      onClose(this);
    });
  }

  get open(): boolean {
    return this.closedAtMs === undefined;
  }

  static async connect(
    wsUrl: string,
    index: number,
    userIndex: number,
    deviceId: string,
    token: string,
    localAddress: string,
    onClose: (client: ScaleClient) => void,
  ): Promise<ScaleClient> {
    const socket = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(token)}`, { perMessageDeflate: false, localAddress });
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.removeAllListeners('open');
        socket.on('error', () => undefined);
        socket.terminate();
        reject(err);
      };
      const timer = setTimeout(() => fail(new ConnectError(`no open after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      socket.once('open', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => fail(new ConnectError(`${(err as NodeJS.ErrnoException).code ?? err.name}: ${err.message}`)));
      socket.once('unexpected-response', (_req, res) => fail(new ConnectError(`upgrade answered ${res.statusCode}`, res.statusCode)));
    });
    socket.on('error', () => undefined);
    return new ScaleClient(index, userIndex, userIdOf(userIndex), deviceId, socket, onClose);
  }

  /** Sends `frame` with a fresh id; resolves with its answer (or the throttle's), rejects on timeout or close. */
  request(frame: Frame): Promise<Answer> {
    const id = `r${++this.seq}`;
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject(new Error('closed'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('timeout'));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { sentAtMs: nowMs(), resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  close(): void {
    this.closing = true;
    this.socket.close(1000);
  }

  terminate(): void {
    this.closing = true;
    this.socket.terminate();
  }

  private onFrame(text: string, atMs: number): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      return;
    }
    if (frame.type === 'message' && typeof frame.msgId === 'string') {
      const times = this.received.get(frame.msgId);
      if (times) times.push(atMs);
      else this.received.set(frame.msgId, [atMs]);
      return;
    }
    let id: string | undefined = typeof frame.id === 'string' ? frame.id : undefined;
    let throttled = false;
    if (frame.type === undefined && typeof frame.message === 'string') {
      // API Gateway's own answer (throttled, or a route that failed outright) carries no id:
      // it answers the oldest request still waiting on this connection.
      id = this.pending.keys().next().value;
      throttled = frame.message === 'Too Many Requests';
    }
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve({ frame, sentAtMs: p.sentAtMs, answeredAtMs: atMs, throttled });
  }
}

/**
 * Connections per loopback source address: one source address reaches one server port from at
 * most the ephemeral port range (32768-60999 by default: 28,232 ports), so beyond that the
 * connections are spread over 127.0.0.1, 127.0.0.2, ... (all loopback on Linux).
 */
const CONNECTIONS_PER_SOURCE_ADDRESS = 25_000;
const sourceAddressOf = (index: number, total: number) => `127.0.0.${1 + (index % Math.ceil(total / CONNECTIONS_PER_SOURCE_ADDRESS))}`;

const userIdOf = (userIndex: number) => `sc-u${userIndex}`;
const groupIdOf = (group: number) => `sc-g${group}`;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

class Run {
  readonly figures: ClientFigures = { unexpectedCloses: {}, costs: [], clientLoop: {} };
  /** Every connection the run opened (index = connection number). */
  readonly clients: ScaleClient[] = [];
  /** Open connections per user index. */
  private readonly byUser = new Map<number, ScaleClient[]>();
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });
  private phaseName = 'start';
  private readonly s: ScaleSettings;
  private groupMembers: number[][] = [];
  /** Users with a connection (after the connect phase). */
  private userIndices?: number[];
  /** End-to-end samples of the mixed workload's sends, filled in by waitForDeliveries. */
  private e2e: { p2p: Array<[number, number]>; group: Array<[number, number]> } = { p2p: [], group: [] };
  /** While the workload's broadcast ran: its POST to the last socket's frame (this process's clock). */
  private broadcastWindow?: { from: number; to: number };

  constructor(private readonly start: StartMessage) {
    this.s = start.settings;
    this.loop.enable();
  }

  private step(line: string): void {
    process.stderr.write(`[bench scale] ${line}\n`);
  }

  private async phase(name: string): Promise<void> {
    const ms = (n: number) => Math.round(n / 1e5) / 10;
    this.figures.clientLoop[this.phaseName] = { p50: ms(this.loop.percentile(50)), p99: ms(this.loop.percentile(99)), max: ms(this.loop.max) };
    this.loop.reset();
    this.phaseName = name;
    await rpc('phase', name);
  }

  private admin(method: string, path: string, payload?: unknown) {
    return adminRequest(this.start.httpUrl, this.start.adminKey, method, path, payload);
  }

  private openClients(): ScaleClient[] {
    return this.clients.filter((c) => c.open);
  }

  private onClose = (client: ScaleClient): void => {
    const list = this.byUser.get(client.userIndex);
    if (list) this.byUser.set(client.userIndex, list.filter((c) => c !== client));
    if (!client.closing) {
      const key = String(client.closeCode);
      this.figures.unexpectedCloses[key] = (this.figures.unexpectedCloses[key] ?? 0) + 1;
    }
  };

  async run(): Promise<void> {
    const meter = this.start.meter && this.s.meter === 1;
    await this.phase('connect');
    if (meter) await rpc('meterReset');
    await this.connectAll();
    const reached = this.clients.length;
    if (reached === 0) throw new Error(`no connection opened: ${this.figures.connect?.stopReason ?? 'unknown'}`);
    const drainStart = nowMs();
    await rpc('drain', DRAIN_TIMEOUT_MS);
    if (this.figures.connect) this.figures.connect.drainSeconds = Math.round((nowMs() - drainStart) / 100) / 10;
    if (meter) {
      this.pushCost('connect', '$connect of every connection (authorizer, $connect, presence counter)', reached, await rpc<CostWindow>('meterSnapshot'));
    }

    await this.phase('groups + warm-up');
    await this.createGroups();
    await this.warmUp();
    await rpc('drain', DRAIN_TIMEOUT_MS);

    await this.phase('idle pings');
    this.figures.idlePingMs = summarize(await this.idlePings());

    if (this.s.durationSeconds > 0) {
      await this.phase('mixed workload');
      if (meter) await rpc('meterReset');
      const tracked = await this.mixed();
      await this.phase('settle + delivery check');
      await this.waitForDeliveries(tracked);
      await rpc('drain', DRAIN_TIMEOUT_MS);
      if (meter && this.figures.mixed) this.figures.mixed.cost = await rpc<CostWindow>('meterSnapshot');
      this.figures.delivery = await this.checkDelivery(tracked);
    }

    if (meter) {
      await this.phase('cost windows');
      await this.costWindows();
    }

    await this.phase('close');
    if (meter) await rpc('meterReset');
    await this.closeAll();
    if (meter) {
      await rpc('drain', DRAIN_TIMEOUT_MS);
      this.pushCost('disconnect', '$disconnect of every connection (the bench closes them; presence counter)', this.figures.close?.connections ?? 0, await rpc<CostWindow>('meterSnapshot'));
    }
    await this.phase('end');
  }

  private pushCost(kind: string, description: string, ops: number, window: CostWindow): void {
    const op: CostOperation = { kind, description, ops, window };
    this.figures.costs.push(op);
  }

  // ---- connect ----

  private async connectAll(): Promise<void> {
    const s = this.s;
    const users = Math.ceil(s.connections / s.devices);
    const latencies: number[] = [];
    const failureExamples: string[] = [];
    let throttled = 0;
    let failures = 0;
    let consecutiveFailures = 0;
    let stopReason: string | null = null;
    let inFlight = 0;
    const limits = openFileLimits();
    const gatewayLimits = openFileLimits(process.ppid);
    const startMs = nowMs();
    this.step(`connecting ${s.connections} sockets (${users} users x ${s.devices}), ${s.connectRate}/s, ${s.connectConcurrency} in flight at most...`);

    const openOne = async (index: number) => {
      const userIndex = Math.floor(index / s.devices);
      const deviceId = `d${index % s.devices}`;
      const { token } = await issueClientToken({ userId: userIdOf(userIndex), deviceId, ttlSeconds: 4 * 3600 }, this.start.jwtSecret);
      for (let attempt = 1; ; attempt++) {
        const t0 = nowMs();
        try {
          const client = await ScaleClient.connect(this.start.wsUrl, index, userIndex, deviceId, token, sourceAddressOf(index, s.connections), this.onClose);
          latencies.push(nowMs() - t0);
          this.clients.push(client);
          const list = this.byUser.get(userIndex) ?? [];
          list.push(client);
          this.byUser.set(userIndex, list);
          consecutiveFailures = 0;
          return;
        } catch (err) {
          const e = err as ConnectError;
          if (e.status === 429 && attempt < CONNECT_ATTEMPTS) {
            throttled++;
            await sleep(1000 + Math.random() * 500); // as a client backs off from a 429
            continue;
          }
          if (e.status === 429) throttled++;
          failures++;
          consecutiveFailures++;
          if (failureExamples.length < 10) failureExamples.push(`#${index}: ${e.message}`);
          if (!stopReason && (consecutiveFailures >= 20 || failures > Math.max(20, s.connections / 100))) {
            stopReason = `${failures} connects failed (${consecutiveFailures} in a row), last: ${e.message}`;
          }
          return;
        }
      }
    };

    const running = new Set<Promise<void>>();
    let lastReport = nowMs();
    for (let index = 0; index < s.connections && !stopReason; index++) {
      // Pace: connect `index` starts no earlier than index / rate seconds after the first.
      const due = startMs + (index * 1000) / s.connectRate;
      const wait = due - nowMs();
      if (wait > 0) await sleep(wait);
      while (inFlight >= s.connectConcurrency) await Promise.race(running);
      if (index % FILES_CHECK_EVERY === 0) {
        const available = memAvailableMiB();
        if (available !== null && available < MIN_MEM_AVAILABLE_MIB) {
          stopReason = `the machine had ${Math.round(available)} MiB available, under the bench's floor of ${MIN_MEM_AVAILABLE_MIB} MiB (it is shared)`;
          break;
        }
        // Both processes hold one descriptor per socket; the gateway also needs some for its own
        // HTTP connections (DynamoDB Local, fauxqs, the cost meter's proxies, @connections posts).
        const needed = FILES_CHECK_EVERY + s.connectConcurrency + FILES_RESERVE;
        const files = openFiles();
        if (files !== null && limits && files + needed > limits.soft) {
          stopReason = `the client process holds ${files} open files; ${needed} more would pass its limit of ${limits.soft}`;
          break;
        }
        const gatewayFiles = openFiles(process.ppid);
        if (gatewayFiles !== null && gatewayLimits && gatewayFiles + needed > gatewayLimits.soft) {
          stopReason =
            `the gateway process holds ${gatewayFiles} open files (one per socket, plus its own HTTP connections); ` +
            `${needed} more would pass its limit of ${gatewayLimits.soft} (hard limit ${gatewayLimits.hard})`;
          break;
        }
      }
      inFlight++;
      const p = openOne(index).finally(() => {
        inFlight--;
        running.delete(p);
      });
      running.add(p);
      if (nowMs() - lastReport > 5000) {
        lastReport = nowMs();
        this.step(`  ${this.clients.length} open, ${inFlight} connecting, ${throttled} 429s, ${failures} failed (${Math.round((nowMs() - startMs) / 1000)} s)`);
      }
    }
    await Promise.all(running);
    const seconds = (nowMs() - startMs) / 1000;
    this.clients.sort((a, b) => a.index - b.index);
    const reached = this.clients.length;
    this.step(`${reached} sockets open in ${seconds.toFixed(1)} s${stopReason ? `; stopped: ${stopReason}` : ''}`);
    // Every socket is open once $connect returned, so its row exists; count them anyway.
    const rows = await rpc<number>('connectionRows');
    const figures: ConnectFigures = {
      target: s.connections,
      reached,
      seconds: Math.round(seconds * 100) / 100,
      perSecond: perSecond(reached, seconds * 1000),
      latencyMs: summarize(latencies),
      throttled,
      failures,
      failureExamples,
      stopReason,
      rows,
      clientOpenFiles: openFiles(),
    };
    this.figures.connect = figures;
  }

  // ---- groups, warm-up, idle pings ----

  private async createGroups(): Promise<void> {
    const s = this.s;
    const users = [...this.byUser.keys()].sort((a, b) => a - b);
    if (s.groups === 0 || users.length < s.groupSize) return;
    const t0 = nowMs();
    for (let g = 0; g < s.groups; g++) {
      const members = Array.from({ length: s.groupSize }, (_, k) => users[(g * s.groupSize + k) % users.length]!);
      const answer = await this.admin('PUT', `/v1/groups/${groupIdOf(g)}/members`, { add: members.map(userIdOf) });
      if (answer.status !== 200) throw new Error(`PUT /v1/groups/${groupIdOf(g)}/members answered ${answer.status} ${JSON.stringify(answer.body)}`);
      this.groupMembers.push(members);
    }
    this.figures.groups = { groups: s.groups, members: s.groupSize, seconds: Math.round((nowMs() - t0) / 10) / 100 };
    this.step(`${s.groups} groups of ${s.groupSize} members created`);
  }

  private async warmUp(): Promise<void> {
    const open = this.openClients();
    const pick = () => open[Math.floor(Math.random() * open.length)]!;
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) {
      work.push(pick().request({ action: 'ping' }));
      work.push(pick().request({ action: 'sync', limit: 100 }));
      const from = pick();
      work.push(from.request({ action: 'send', to: { user: userIdOf(this.otherUser(from.userIndex)) }, body: { bench: 'warm-up' } }));
    }
    for (let g = 0; g < Math.min(4, this.groupMembers.length); g++) {
      const sender = this.byUser.get(this.groupMembers[g]![0]!)?.[0];
      if (sender) work.push(sender.request({ action: 'send', to: { group: groupIdOf(g) }, body: { bench: 'warm-up' } }));
    }
    await Promise.allSettled(work);
    // A push to 101 users goes through a fan-out job: loads the fan-out worker before the broadcast.
    const users = [...this.byUser.keys()].slice(0, 101).map(userIdOf);
    if (users.length === 101) {
      const push = await this.admin('POST', '/v1/push', { to: { users }, body: { bench: 'warm-up' } });
      if (push.status === 202) await this.waitJob(push.body.jobId as string, 60_000, 250);
    }
    this.step('warm-up done');
  }

  private async idlePings(): Promise<number[]> {
    const open = this.openClients();
    const samples: number[] = [];
    await Promise.all(
      Array.from({ length: Math.min(20, open.length) }, async (_, k) => {
        const client = open[Math.floor((k * open.length) / 20)]!;
        for (let i = 0; i < 10; i++) {
          const answer = await client.request({ action: 'ping' }).catch(() => undefined);
          if (answer && answer.frame.type === 'pong') samples.push(answer.answeredAtMs - answer.sentAtMs);
        }
      }),
    );
    return samples;
  }

  private otherUser(userIndex: number): number {
    const users = (this.userIndices ??= [...this.byUser.keys()]);
    for (;;) {
      const candidate = users[Math.floor(Math.random() * users.length)]!;
      if (candidate !== userIndex || users.length === 1) return candidate;
    }
  }

  // ---- the mixed workload ----

  private async mixed(): Promise<TrackedMessage[]> {
    const s = this.s;
    const open = this.openClients();
    const rates = { ping: open.length / s.pingIntervalSeconds, p2p: s.p2pRate, group: this.groupMembers.length ? s.groupRate : 0, sync: s.syncRate };
    const durationMs = s.durationSeconds * 1000;
    const ops = { ping: newOp(), p2p: newOp(), group: newOp(), sync: newOp() };
    const e2e = (this.e2e = { p2p: [], group: [] });
    const tracked: TrackedMessage[] = [];
    let syncMessages = 0;
    let groupAudience = 0;
    const inflight = new Set<Promise<void>>();
    // Every connection pings once per interval, in a shuffled order: no two pings of a connection closer than the interval.
    const pingOrder = shuffle(open.slice());
    const before = await rpc<GatewayCounters>('gatewayCounters');
    this.step(
      `mixed workload for ${s.durationSeconds} s: pings ${rates.ping.toFixed(1)}/s (every connection every ${s.pingIntervalSeconds} s), ` +
        `p2p ${rates.p2p}/s, group ${rates.group}/s (${s.groupSize} members), sync ${rates.sync}/s${s.broadcast ? `, a broadcast at ${Math.round(s.durationSeconds / 3)} s` : ''}`,
    );

    const record = (op: Op, answer: Answer | undefined, ok: (frame: Frame) => boolean): Answer | undefined => {
      if (!answer) {
        op.noAnswer++;
        return undefined;
      }
      if (answer.throttled) {
        op.throttled++;
        return undefined;
      }
      if (!ok(answer.frame)) {
        const code = String(answer.frame.code ?? answer.frame.message ?? answer.frame.type);
        op.errors[code] = (op.errors[code] ?? 0) + 1;
        return undefined;
      }
      op.latencies.push(answer.answeredAtMs - answer.sentAtMs);
      op.sentAt.push(answer.sentAtMs);
      return answer;
    };
    const fire = (work: () => Promise<void>) => {
      const p = work().finally(() => inflight.delete(p));
      inflight.add(p);
    };
    const ask = (client: ScaleClient, frame: Frame): Promise<Answer | undefined> => client.request(frame).catch(() => undefined);

    const doPing = (client: ScaleClient) =>
      fire(async () => {
        if (!client.open) return;
        ops.ping.offered++;
        const answer = await ask(client, { action: 'ping' });
        record(ops.ping, answer, (f) => f.type === 'pong');
      });
    const doP2p = () =>
      fire(async () => {
        const from = pickOpen(open);
        if (!from) return;
        const toUser = this.otherUser(from.userIndex);
        ops.p2p.offered++;
        const answer = await ask(from, { action: 'send', to: { user: userIdOf(toUser) }, body: { bench: 'scale', kind: 'p2p' } });
        const ok = record(ops.p2p, answer, (f) => f.type === 'ack' && typeof f.msgId === 'string');
        if (!ok) return;
        const audience = [...(this.byUser.get(toUser) ?? []), ...(this.byUser.get(from.userIndex) ?? []).filter((c) => c !== from)];
        tracked.push({ kind: 'p2p', msgId: ok.frame.msgId as string, sentAtMs: ok.sentAtMs, audience: audience.map((c) => c.index), e2e: e2e.p2p });
      });
    const doGroup = () =>
      fire(async () => {
        const g = Math.floor(Math.random() * this.groupMembers.length);
        const members = this.groupMembers[g]!;
        const senderUser = members[Math.floor(Math.random() * members.length)]!;
        const devices = this.byUser.get(senderUser) ?? [];
        const from = devices[Math.floor(Math.random() * devices.length)];
        if (!from) return;
        ops.group.offered++;
        const answer = await ask(from, { action: 'send', to: { group: groupIdOf(g) }, body: { bench: 'scale', kind: 'group' } });
        const ok = record(ops.group, answer, (f) => f.type === 'ack' && typeof f.msgId === 'string');
        if (!ok) return;
        const audience = members.flatMap((u) => this.byUser.get(u) ?? []).filter((c) => c !== from);
        groupAudience = Math.max(groupAudience, audience.length);
        tracked.push({ kind: 'group', msgId: ok.frame.msgId as string, sentAtMs: ok.sentAtMs, audience: audience.map((c) => c.index), e2e: e2e.group });
      });
    const doSync = () =>
      fire(async () => {
        const client = pickOpen(open);
        if (!client) return;
        ops.sync.offered++;
        const answer = await ask(client, { action: 'sync', limit: 100, ...(client.cursor ? { after: client.cursor } : {}) });
        const ok = record(ops.sync, answer, (f) => f.type === 'sync');
        if (!ok) return;
        syncMessages += (ok.frame.messages as unknown[]).length;
        if (typeof ok.frame.cursor === 'string') client.cursor = ok.frame.cursor;
      });

    const startMs = nowMs();
    let broadcast: Promise<BroadcastFigures> | undefined;
    const fired = { ping: 0, p2p: 0, group: 0, sync: 0 };
    for (;;) {
      const elapsed = nowMs() - startMs;
      if (elapsed >= durationMs) break;
      const due = (rate: number) => Math.floor((rate * elapsed) / 1000);
      for (; fired.ping < due(rates.ping); fired.ping++) doPing(pingOrder[fired.ping % pingOrder.length]!);
      for (; fired.p2p < due(rates.p2p); fired.p2p++) doP2p();
      for (; fired.group < due(rates.group); fired.group++) doGroup();
      for (; fired.sync < due(rates.sync); fired.sync++) doSync();
      if (s.broadcast && !broadcast && elapsed >= durationMs / 3) {
        broadcast = this.broadcast(Math.round(elapsed / 100) / 10, JOB_POLL_MS);
        broadcast.catch(() => undefined);
      }
      await sleep(5);
    }
    const seconds = (nowMs() - startMs) / 1000;
    this.step(`workload done after ${seconds.toFixed(1)} s; waiting for ${inflight.size} answers${broadcast ? ' and the broadcast job' : ''}...`);
    await Promise.all(inflight);
    const broadcastFigures = broadcast ? await broadcast : undefined;
    const after = await rpc<GatewayCounters>('gatewayCounters');
    const figuresOf = (op: Op): OperationFigures => ({
      offered: op.offered,
      ok: op.latencies.length,
      throttled: op.throttled,
      errors: op.errors,
      noAnswer: op.noAnswer,
      perSecond: perSecond(op.latencies.length, seconds * 1000),
      latencyMs: summarize(op.latencies),
      ...(this.broadcastWindow ? { split: this.split(op.sentAt.map((sentAt, i) => [sentAt, op.latencies[i]!])) } : {}),
    });
    // End to end is known once the deliveries are in: filled in by waitForDeliveries.
    this.figures.mixed = {
      plannedSeconds: s.durationSeconds,
      seconds: Math.round(seconds * 100) / 100,
      rates: { ping: Math.round(rates.ping * 10) / 10, p2p: rates.p2p, group: rates.group, sync: rates.sync },
      ping: figuresOf(ops.ping),
      p2p: { ...figuresOf(ops.p2p), endToEndMs: summarize([]) },
      group: { ...figuresOf(ops.group), endToEndMs: summarize([]), audience: groupAudience },
      sync: { ...figuresOf(ops.sync), messagesReturned: syncMessages },
      ...(broadcastFigures ? { broadcast: broadcastFigures } : {}),
      gateway: {
        stageAdmitted: after.stage.admitted - before.stage.admitted,
        stageThrottled: after.stage.throttled - before.stage.throttled,
        posts: after.management.posts - before.management.posts,
        postsThrottled: after.management.throttled - before.management.throttled,
        gone: after.management.gone - before.management.gone,
      },
    };
    return tracked;
  }

  /** POST /v1/push to all, poll the job to done, wait for every socket open at the POST. */
  private async broadcast(atSeconds: number, pollMs: number | null): Promise<BroadcastFigures> {
    const sockets = this.openClients();
    const t0 = nowMs();
    const started = await this.admin('POST', '/v1/push', { to: { all: true }, body: { bench: 'scale', kind: 'broadcast' } });
    const answeredMs = nowMs() - t0;
    if (started.status !== 202) throw new Error(`broadcast: POST /v1/push answered ${started.status} ${JSON.stringify(started.body)}`);
    const { jobId, msgId } = started.body as { jobId: string; msgId: string };
    this.step(`broadcast ${jobId} to ${sockets.length} sockets: 202 after ${answeredMs.toFixed(0)} ms`);
    let polls = 0;
    let job: Frame | undefined;
    let doneMs: number | null = null;
    if (pollMs !== null) {
      for (;;) {
        const polled = await this.admin('GET', `/v1/jobs/${jobId}`);
        polls++;
        if (polled.status === 200) job = polled.body as Frame;
        if (job?.state === 'done' || job?.state === 'failed') {
          doneMs = nowMs() - t0;
          break;
        }
        if (nowMs() - t0 > JOB_TIMEOUT_MS) break;
        await sleep(pollMs);
      }
      await this.waitReceipts(msgId, sockets, 10_000);
    } else {
      // The cost window: no polling (each poll is a signed request with its own units); wait for
      // the frames, drain, then ask once.
      await this.waitReceipts(msgId, sockets, JOB_TIMEOUT_MS);
      await rpc('drain', DRAIN_TIMEOUT_MS);
      const polled = await this.admin('GET', `/v1/jobs/${jobId}`);
      polls++;
      if (polled.status === 200) job = polled.body as Frame;
    }
    const receipts: number[] = [];
    let duplicates = 0;
    for (const client of sockets) {
      const times = client.received.get(msgId);
      if (!times) continue;
      receipts.push(times[0]! - t0);
      duplicates += times.length - 1;
    }
    if (pollMs !== null && receipts.length) this.broadcastWindow = { from: t0, to: t0 + Math.max(...receipts) };
    const stillOpen = sockets.filter((c) => c.open || c.received.has(msgId)).length;
    const figures: BroadcastFigures = {
      sockets: sockets.length,
      atSeconds,
      answeredStatus: started.status,
      answeredMs: Math.round(answeredMs * 100) / 100,
      doneMs: doneMs === null ? null : Math.round(doneMs),
      state: String(job?.state ?? 'unknown'),
      job: { targeted: Number(job?.targeted ?? 0), delivered: Number(job?.delivered ?? 0), gone: Number(job?.gone ?? 0), failed: Number(job?.failed ?? 0) },
      polls,
      received: receipts.length,
      lost: stillOpen - receipts.length,
      duplicates,
      receiptMs: summarize(receipts),
      lastSocketMs: receipts.length ? Math.round(Math.max(...receipts)) : null,
    };
    this.step(`broadcast ${jobId}: ${figures.state}${doneMs === null ? '' : ` at ${(doneMs / 1000).toFixed(1)} s`}, ${figures.received}/${figures.sockets} sockets, last at ${((figures.lastSocketMs ?? 0) / 1000).toFixed(1)} s`);
    return figures;
  }

  private async waitReceipts(msgId: string, sockets: ScaleClient[], timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    while (nowMs() < deadline) {
      if (sockets.every((c) => !c.open || c.received.has(msgId))) return;
      await sleep(100);
    }
  }

  private async waitJob(jobId: string, timeoutMs: number, pollMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    while (nowMs() < deadline) {
      const job = await this.admin('GET', `/v1/jobs/${jobId}`);
      if (job.body?.state === 'done' || job.body?.state === 'failed') return;
      await sleep(pollMs);
    }
  }

  /** Samples ([sent at, ms]) sent while the workload's broadcast ran, and the others. */
  private split(samples: Array<[number, number]>): { during: LatencySummary; outside: LatencySummary } {
    const w = this.broadcastWindow;
    const during = samples.filter(([at]) => w !== undefined && at >= w.from && at <= w.to).map(([, ms]) => ms);
    const outside = samples.filter(([at]) => w === undefined || at < w.from || at > w.to).map(([, ms]) => ms);
    return { during: summarize(during), outside: summarize(outside) };
  }

  // ---- delivery ----

  private missingPairs(tracked: TrackedMessage[]): number {
    let missing = 0;
    for (const m of tracked) for (const i of m.audience) if (this.clients[i]!.open && !this.clients[i]!.received.has(m.msgId)) missing++;
    return missing;
  }

  private async waitForDeliveries(tracked: TrackedMessage[]): Promise<void> {
    let last = this.missingPairs(tracked);
    let lastChange = nowMs();
    while (last > 0 && nowMs() - lastChange < DELIVERY_QUIET_MS) {
      await sleep(250);
      const missing = this.missingPairs(tracked);
      if (missing !== last) lastChange = nowMs();
      last = missing;
    }
    // End to end: first copy on each audience connection.
    for (const m of tracked) {
      for (const i of m.audience) {
        const times = this.clients[i]!.received.get(m.msgId);
        if (times) m.e2e.push([m.sentAtMs, times[0]! - m.sentAtMs]);
      }
    }
    if (this.figures.mixed) {
      const m = this.figures.mixed;
      m.p2p.endToEndMs = summarize(this.e2e.p2p.map(([, ms]) => ms));
      m.group.endToEndMs = summarize(this.e2e.group.map(([, ms]) => ms));
      if (this.broadcastWindow) {
        m.p2p.endToEndSplit = this.split(this.e2e.p2p);
        m.group.endToEndSplit = this.split(this.e2e.group);
      }
    }
  }

  /** The whole inbox of a connection, following `next` from the start. */
  private async inboxOf(client: ScaleClient): Promise<Set<string> | undefined> {
    const ids = new Set<string>();
    let after: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const answer = await client.request({ action: 'sync', limit: 100, ...(after ? { after } : {}) }).catch(() => undefined);
      if (!answer) return undefined;
      if (answer.throttled) {
        await sleep(200);
        page--;
        continue;
      }
      if (answer.frame.type !== 'sync') return undefined;
      for (const m of answer.frame.messages as Array<{ msgId: string }>) ids.add(m.msgId);
      if (!answer.frame.next) return ids;
      after = answer.frame.next as string;
    }
    return undefined;
  }

  private async checkDelivery(tracked: TrackedMessage[]): Promise<DeliveryFigures> {
    const f: DeliveryFigures = {
      messages: tracked.length,
      expected: 0,
      deliveredLive: 0,
      recoveredViaSync: 0,
      lost: 0,
      duplicates: 0,
      unexpected: 0,
      closedRecipients: 0,
      syncChecked: { connections: 0, pairs: 0, missing: 0 },
      lostExamples: [],
    };
    const missing = new Map<number, TrackedMessage[]>();
    const audienceOf = new Map<string, Set<number>>();
    for (const m of tracked) {
      audienceOf.set(m.msgId, new Set(m.audience));
      for (const i of m.audience) {
        const client = this.clients[i]!;
        if (!client.open) {
          f.closedRecipients++;
          continue;
        }
        f.expected++;
        const times = client.received.get(m.msgId);
        if (times) {
          f.deliveredLive++;
          f.duplicates += times.length - 1;
        } else {
          const list = missing.get(i) ?? [];
          list.push(m);
          missing.set(i, list);
        }
      }
    }
    for (const client of this.clients) {
      for (const msgId of client.received.keys()) {
        const audience = audienceOf.get(msgId);
        if (audience && !audience.has(client.index)) f.unexpected++;
      }
    }
    // Missing ones: read those connections' inboxes.
    for (const [i, messages] of missing) {
      const inbox = await this.inboxOf(this.clients[i]!);
      for (const m of messages) {
        if (inbox?.has(m.msgId)) f.recoveredViaSync++;
        else {
          f.lost++;
          if (f.lostExamples.length < 10) f.lostExamples.push(`${m.kind} ${m.msgId} not on connection #${i}${inbox ? '' : ' (its sync failed)'}`);
        }
      }
    }
    // A sample of recipients: every acked message for them must be in their inbox too.
    const recipients = shuffle([...new Set(tracked.flatMap((m) => m.audience))].filter((i) => this.clients[i]!.open)).slice(0, SYNC_CHECK_SAMPLE);
    const forConnection = new Map<number, string[]>();
    for (const m of tracked) for (const i of m.audience) forConnection.get(i)?.push(m.msgId) ?? forConnection.set(i, [m.msgId]);
    const queue = recipients.slice();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
          const inbox = await this.inboxOf(this.clients[i]!);
          f.syncChecked.connections++;
          for (const msgId of forConnection.get(i) ?? []) {
            f.syncChecked.pairs++;
            if (!inbox?.has(msgId)) f.syncChecked.missing++;
          }
        }
      }),
    );
    this.step(
      `delivery: ${f.expected} expected, ${f.deliveredLive} live, ${f.recoveredViaSync} via sync, ${f.lost} LOST, ${f.duplicates} duplicates, ${f.unexpected} unexpected; ` +
        `sync check on ${f.syncChecked.connections} connections: ${f.syncChecked.missing} of ${f.syncChecked.pairs} missing`,
    );
    return f;
  }

  // ---- cost windows ----

  private async costWindows(): Promise<void> {
    const n = this.s.costOps;
    const open = this.openClients();
    const closedLoop = async (count: number, concurrency: number, one: (k: number) => Promise<void>) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let k = next++; k < count; k = next++) await one(k);
        }),
      );
    };
    const measure = async (kind: string, description: string, ops: number, work: () => Promise<void>) => {
      await rpc('drain', DRAIN_TIMEOUT_MS);
      await rpc('meterReset');
      await work();
      await rpc('drain', DRAIN_TIMEOUT_MS);
      const window = await rpc<CostWindow>('meterSnapshot');
      this.pushCost(kind, description, ops, window);
      this.step(`cost window ${kind}: ${ops} ops, ${window.dynamo.readUnits} RRU, ${window.dynamo.writeUnits} WRU, ${window.sqs.requests} SQS requests, ${window.lambda.invocations} invocations`);
    };
    const spread = (k: number) => open[Math.floor((k * open.length) / n) % open.length]!;
    const sent: TrackedMessage[] = [];
    const sendAndTrack = async (from: ScaleClient, to: Frame, audience: ScaleClient[]) => {
      const answer = await from.request({ action: 'send', to, body: { bench: 'scale', kind: 'cost' } }).catch(() => undefined);
      if (answer?.frame.type === 'ack') sent.push({ kind: 'cost', msgId: answer.frame.msgId as string, sentAtMs: answer.sentAtMs, audience: audience.map((c) => c.index), e2e: [] });
    };
    const waitSent = async () => {
      const deadline = nowMs() + 60_000;
      while (this.missingPairs(sent) > 0 && nowMs() < deadline) await sleep(100);
      sent.length = 0;
    };

    await measure('ping', 'ping -> pong', n, () => closedLoop(n, 10, async (k) => void (await spread(k).request({ action: 'ping' }).catch(() => undefined))));
    await measure('send.user', 'send to one user (one connection) -> ack, live delivery, stored', n, async () => {
      await closedLoop(n, 10, async (k) => {
        const from = spread(k);
        const to = this.otherUser(from.userIndex);
        await sendAndTrack(from, { user: userIdOf(to) }, this.byUser.get(to) ?? []);
      });
      await waitSent();
    });
    if (this.groupMembers.length) {
      const groupSends = Math.max(1, Math.round(n / 5));
      await measure('send.group', `send to a group of ${this.s.groupSize} -> ack, live delivery to every member, stored for every member`, groupSends, async () => {
        await closedLoop(groupSends, 4, async (k) => {
          const g = k % this.groupMembers.length;
          const members = this.groupMembers[g]!;
          const from = this.byUser.get(members[k % members.length]!)?.[0];
          if (!from) return;
          await sendAndTrack(from, { group: groupIdOf(g) }, members.flatMap((u) => this.byUser.get(u) ?? []).filter((c) => c !== from));
        });
        await waitSent();
      });
    }
    await measure('sync', 'sync from the connection\'s last cursor (limit 100)', n, () =>
      closedLoop(n, 10, async (k) => {
        const client = spread(k);
        const answer = await client.request({ action: 'sync', limit: 100, ...(client.cursor ? { after: client.cursor } : {}) }).catch(() => undefined);
        if (answer?.frame.type === 'sync' && typeof answer.frame.cursor === 'string') client.cursor = answer.frame.cursor;
      }),
    );
    if (this.s.costBroadcast) {
      let figures: BroadcastFigures | undefined;
      await measure('broadcast', `POST /v1/push to all (${open.length} connections), one GET /v1/jobs at the end`, 1, async () => {
        figures = await this.broadcast(0, null);
      });
      this.figures.costBroadcast = figures;
    }
  }

  // ---- close ----

  private async closeAll(): Promise<void> {
    const open = this.openClients();
    this.step(`closing ${open.length} sockets (500 at a time, waiting for their rows to go)...`);
    const t0 = nowMs();
    for (let i = 0; i < open.length; i += 500) {
      for (const client of open.slice(i, i + 500)) client.close();
      const left = Math.max(0, open.length - i - 500);
      const deadline = nowMs() + 60_000;
      while ((await rpc<number>('connectionRows')) > left && nowMs() < deadline) await sleep(500);
    }
    this.figures.close = { connections: open.length, seconds: Math.round((nowMs() - t0) / 10) / 100 };
    this.step(`closed in ${this.figures.close.seconds} s`);
  }

  terminateAll(): void {
    for (const client of this.clients) client.terminate();
  }
}

interface TrackedMessage {
  kind: string;
  msgId: string;
  sentAtMs: number;
  /** Connection indices that should get it (open when it was acked). */
  audience: number[];
  /** Where its end-to-end samples go: [sent at, ms]. */
  e2e: Array<[number, number]>;
}

interface Op {
  offered: number;
  throttled: number;
  noAnswer: number;
  errors: Record<string, number>;
  latencies: number[];
  /** When each of `latencies` was sent. */
  sentAt: number[];
}

const newOp = (): Op => ({ offered: 0, throttled: 0, noAnswer: 0, errors: {}, latencies: [], sentAt: [] });

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function pickOpen(clients: ScaleClient[]): ScaleClient | undefined {
  for (let attempt = 0; attempt < 20; attempt++) {
    const client = clients[Math.floor(Math.random() * clients.length)];
    if (client?.open) return client;
  }
  return clients.find((c) => c.open);
}

// ---------------------------------------------------------------------------------------------

let current: Run | undefined;
process.on('message', (message: GatewayMessage) => {
  if (message.type === 'rpcReply') {
    const waiter = rpcWaiters.get(message.id);
    rpcWaiters.delete(message.id);
    if (message.ok) waiter?.resolve(message.value);
    else waiter?.reject(new Error(message.error ?? 'rpc failed'));
    return;
  }
  if (message.type === 'start' && !current) {
    const run = (current = new Run(message));
    run.run().then(
      () => send({ type: 'done', figures: run.figures }),
      (err: Error) => send({ type: 'failed', error: err.stack ?? err.message, figures: run.figures }),
    );
  }
});
// The gateway process went away (finished, timed out, crashed): leave with it.
process.on('disconnect', () => {
  current?.terminateAll();
  process.exit(0);
});
