/**
 * What `npm run bench -- --scale` writes (bench/results/scale-latest.json) and prints.
 */
import { formatTable, type MachineInfo } from './report';
import type { PhaseStats } from './scale-monitor';
import type { BroadcastFigures, ClientFigures, CostOperation, CostWindow, LatencySplit, OperationFigures } from './scale-protocol';
import type { ScaleSettings } from './scale-settings';
import type { LatencySummary } from './stats';

export interface ScaleResult {
  startedAt: string;
  durationSeconds: number;
  settings: ScaleSettings;
  machine: MachineInfo;
  openFiles: { before: number | null; after: number | null; note: string };
  /** The gateway ran with its cost meter (loopback proxies in front of DynamoDB Local and fauxqs). */
  meter: boolean;
  gatewayStartSeconds: number;
  javaPid: number | null;
  clientPid: number | null;
  /** Per phase: wall time, RSS and CPU of the three processes, event-loop delay, JVM heap. */
  phases: PhaseStats[];
  /** Right after the gateway started, before any connection. */
  rssAtStartMiB: { gateway: number; java: number };
  peakRssMiB: { gateway: number; clients: number; java: number };
  clients?: ClientFigures;
  problems: string[];
  error?: string;
}

const fixed = (n: number | null | undefined, digits = 2) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
const percent = (share: number | null) => (share === null ? '-' : `${Math.round(share * 100)} %`);
const times = (value: number, unit: number) => (unit > 0 && Number.isFinite(value) ? `${(value / unit).toFixed(2)}` : '-');

function errorsText(op: OperationFigures): string {
  const entries = Object.entries(op.errors);
  return entries.length ? entries.map(([code, n]) => `${code} ${n}`).join(', ') : '0';
}

export function formatScale(r: ScaleResult): string {
  const s = r.settings;
  const c = r.clients;
  const parts: string[] = [];
  parts.push(
    formatTable(
      ['setting', 'value'],
      [
        ['connections (target)', `${s.connections} (${s.devices} per user)`],
        ['connect pacing', `${s.connectRate}/s, ${s.connectConcurrency} in flight at most`],
        ['mixed workload', s.durationSeconds ? `${s.durationSeconds} s` : 'skipped'],
        ['pings', `every connection every ${s.pingIntervalSeconds} s`],
        ['sends to a user / to a group / syncs per second', `${s.p2pRate} / ${s.groupRate} / ${s.syncRate}`],
        ['groups', `${s.groups} of ${s.groupSize} members`],
        ['broadcast during the workload / alone (cost window)', `${s.broadcast ? 'yes' : 'no'} / ${s.costBroadcast && r.meter ? 'yes' : 'no'}`],
        ['cost meter', r.meter ? `on (${s.costOps} operations per cost window)` : 'off: cost units not measured'],
        ['open files (gateway process; the client process inherits it)', r.openFiles.note],
        ['machine', `${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.totalMemoryGiB} GiB, Node ${r.machine.node}, load at start ${r.machine.loadAverageAtStart.join(' ')}`],
      ],
    ),
  );
  if (c?.connect) {
    const k = c.connect;
    parts.push(
      formatTable(
        ['connections', 'value'],
        [
          ['reached / target', `${k.reached} / ${k.target}${k.stopReason ? ` (stopped: ${k.stopReason})` : ''}`],
          ['connection rows', k.rows],
          ['then until the queues and streams (presence counter) were drained (s)', fixed(k.drainSeconds, 1)],
          ['opened in (s) / per second', `${fixed(k.seconds)} / ${fixed(k.perSecond, 1)}`],
          ['connect p50 / p99 / max (ms)', `${fixed(k.latencyMs.p50)} / ${fixed(k.latencyMs.p99)} / ${fixed(k.latencyMs.max)}`],
          ['429 (stage $connect throttle), retried', k.throttled],
          ['failed', `${k.failures}${k.failureExamples.length ? `: ${k.failureExamples.slice(0, 3).join('; ')}` : ''}`],
          ['sockets closed by the gateway during the run (by code)', JSON.stringify(c.unexpectedCloses)],
        ],
      ),
    );
  }
  const m = c?.mixed;
  if (m) {
    const ping = m.ping.latencyMs.p50;
    const row = (name: string, offered: string, op: OperationFigures | undefined, l: LatencySummary) => [
      name,
      offered,
      op ? op.ok : l.count,
      op ? fixed(op.perSecond, 1) : '',
      op ? op.throttled : '',
      op ? errorsText(op) : '',
      op ? op.noAnswer : '',
      fixed(l.p50),
      fixed(l.p99),
      fixed(l.max),
      times(l.p50, ping),
      times(l.p99, ping),
    ];
    const rows: Array<Array<string | number>> = [
      row('ping -> pong (the baseline)', `${m.rates.ping}/s`, m.ping, m.ping.latencyMs),
      row('send to a user -> ack', `${m.rates.p2p}/s`, m.p2p, m.p2p.latencyMs),
      row('  -> message on the recipient', '', undefined, m.p2p.endToEndMs),
      row(`send to a group -> ack`, `${m.rates.group}/s`, m.group, m.group.latencyMs),
      row(`  -> message on each member (${m.group.audience})`, '', undefined, m.group.endToEndMs),
      row('sync -> reply', `${m.rates.sync}/s`, m.sync, m.sync.latencyMs),
    ];
    if (m.broadcast) rows.push(row(`broadcast: POST -> frame on each socket`, `1 at ${m.broadcast.atSeconds} s`, undefined, m.broadcast.receiptMs));
    if (c?.idlePingMs) rows.push(row('ping -> pong, nothing else running (before)', '', undefined, c.idlePingMs));
    parts.push(
      `Mixed workload: ${m.seconds} s over ${c?.connect?.reached ?? '?'} connections (latency in ms; multiples of this workload's ping p50)\n` +
        formatTable(['operation', 'offered', 'ok', 'ok/s', 'throttled', 'errors', 'no answer', 'p50', 'p99', 'max', 'p50/ping', 'p99/ping'], rows),
    );
    const splitRow = (name: string, sp: LatencySplit | undefined) =>
      sp
        ? [name, sp.outside.count, fixed(sp.outside.p50), fixed(sp.outside.p99), sp.during.count, fixed(sp.during.p50), fixed(sp.during.p99), times(sp.during.p50, sp.outside.p50)]
        : undefined;
    const splits = [
      splitRow('ping -> pong', m.ping.split),
      splitRow('send to a user -> ack', m.p2p.split),
      splitRow('  -> message on the recipient', m.p2p.endToEndSplit),
      splitRow('send to a group -> ack', m.group.split),
      splitRow('  -> message on each member', m.group.endToEndSplit),
      splitRow('sync -> reply', m.sync.split),
    ].filter((x): x is Array<string | number> => x !== undefined);
    if (splits.length) {
      parts.push(
        'The same, sent while the broadcast ran (its POST to its last frame) or not (ms)\n' +
          formatTable(['operation', 'outside: n', 'p50', 'p99', 'during: n', 'p50', 'p99', 'p50 during / outside'], splits),
      );
    }
    parts.push(
      formatTable(
        ['during the workload', 'value'],
        [
          ['client frames admitted / throttled by the stage', `${m.gateway.stageAdmitted} / ${m.gateway.stageThrottled}`],
          ['@connections posts / 429 / 410', `${m.gateway.posts} / ${m.gateway.postsThrottled} / ${m.gateway.gone}`],
          ['sync messages returned', m.sync.messagesReturned],
        ],
      ),
    );
  }
  const b = (label: string, x: BroadcastFigures | undefined) =>
    x
      ? [
          label,
          x.sockets,
          x.received,
          x.lost,
          x.duplicates,
          fixed(x.answeredMs, 0),
          x.doneMs === null ? '-' : fixed(x.doneMs / 1000),
          fixed(x.receiptMs.p50 / 1000),
          fixed(x.receiptMs.p99 / 1000),
          x.lastSocketMs === null ? '-' : fixed(x.lastSocketMs / 1000),
          `${x.state}: ${x.job.delivered} delivered, ${x.job.gone} gone, ${x.job.failed} failed (${x.polls} polls)`,
        ]
      : undefined;
  const broadcasts = [b('during the workload', m?.broadcast), b('alone (cost window)', c?.costBroadcast)].filter((x): x is Array<string | number> => x !== undefined);
  if (broadcasts.length) {
    parts.push(formatTable(['broadcast', 'sockets', 'received', 'LOST', 'dups', '202 (ms)', 'job done (s)', 'p50 socket (s)', 'p99 socket (s)', 'last socket (s)', 'job'], broadcasts));
  }
  if (c?.delivery) {
    const d = c.delivery;
    parts.push(
      formatTable(
        ['delivery (acked message x online audience connection)', 'count'],
        [
          ['messages acked (to users and groups)', d.messages],
          ['expected', d.expected],
          ['delivered live', d.deliveredLive],
          ['recovered via sync', d.recoveredViaSync],
          ['LOST', d.lost],
          ['duplicates', d.duplicates],
          ['unexpected (outside the audience)', d.unexpected],
          ['audience connections closed meanwhile (not expected)', d.closedRecipients],
          ['sync check: connections / acked messages for them / missing', `${d.syncChecked.connections} / ${d.syncChecked.pairs} / ${d.syncChecked.missing}`],
        ],
      ),
    );
  }
  if (r.phases.length) {
    const heap = (p: PhaseStats) => (p.java.heapAtEnd ? `${fixed(p.java.heapAtEnd.usedMiB, 0)} / ${fixed(p.java.heapAtEnd.maxMiB, 0)}` : '-');
    parts.push(
      `Memory (MiB, peak RSS sampled every second; at start, before any connection: gateway ${r.rssAtStartMiB.gateway}, Java ${r.rssAtStartMiB.java}; ` +
        `peak over the run: gateway ${r.peakRssMiB.gateway}, clients ${r.peakRssMiB.clients}, Java ${r.peakRssMiB.java}), CPU (cores busy on average), event-loop delay\n` +
        formatTable(
          [
            'phase',
            's',
            'gateway RSS',
            'clients RSS',
            'Java RSS',
            'Java heap used / max',
            'gateway CPU (p90 s, >=0.9)',
            'clients CPU',
            'Java CPU (p90 s, >=0.9)',
            'gateway loop p99 / max (ms)',
            'gateway open files',
            'load 1m',
            'min MemAvailable',
          ],
          r.phases.map((p) => [
            p.phase,
            fixed(p.wallSeconds, 1),
            fixed(p.gateway.peakRssMiB, 0),
            fixed(p.clients.peakRssMiB, 0),
            fixed(p.java.peakRssMiB, 0),
            heap(p),
            `${fixed(p.gateway.cpuCores)} (${fixed(p.gateway.cpuCoresP90)}, ${percent(p.gateway.shareAbove90)})`,
            fixed(p.clients.cpuCores),
            `${fixed(p.java.cpuCores)} (${fixed(p.java.cpuCoresP90)}, ${percent(p.java.shareAbove90)})`,
            `${fixed(p.gateway.eventLoopDelayMs.p99, 1)} / ${fixed(p.gateway.eventLoopDelayMs.max, 0)}`,
            p.gateway.openFiles ?? '-',
            fixed(p.loadAverage1m),
            p.minMemAvailableMiB ?? '-',
          ]),
        ),
    );
  }
  if (c?.costs.length) {
    parts.push(`Cost units per operation, each kind alone over all ${c.connect?.reached ?? '?'} connections (queues drained in each window)\n${formatCosts(c.costs)}`);
  } else if (!r.meter) {
    parts.push('Cost units: not measured (the gateway ran without its cost meter).');
  }
  if (m?.cost) parts.push(`The whole mixed workload's window (${fixed(m.cost.windowMs / 1000, 1)} s, drained): ${windowText(m.cost)}`);
  return parts.join('\n\n');
}

const per = (value: number, ops: number) => (ops > 0 ? Math.round((value / ops) * 1000) / 1000 : Number.NaN);

function windowText(w: CostWindow): string {
  const fns = Object.entries(w.lambda.byFunction)
    .map(([id, n]) => `${id} ${n}`)
    .join(', ');
  return (
    `${w.dynamo.readUnits} read units, ${w.dynamo.writeUnits} write units, ${w.sqs.requests} SQS requests (${w.sqs.fifoRequests} FIFO), ` +
    `${w.lambda.invocations} invocations (${fns}), ${w.management.posts} @connections posts, ${w.httpRequests} HTTP API requests`
  );
}

export function formatCosts(costs: CostOperation[]): string {
  return formatTable(
    ['operation', 'ops', 'read units/op', 'write units/op', 'SQS requests/op', 'invocations/op', '@connections posts/op', 'invocations by function (per op)'],
    costs.map((c) => [
      c.kind,
      c.ops,
      fixed(per(c.window.dynamo.readUnits, c.ops), 3),
      fixed(per(c.window.dynamo.writeUnits, c.ops), 3),
      fixed(per(c.window.sqs.requests, c.ops), 3),
      fixed(per(c.window.lambda.invocations, c.ops), 3),
      fixed(per(c.window.management.posts, c.ops), 3),
      Object.entries(c.window.lambda.byFunction)
        .map(([id, n]) => `${id} ${Math.round((n / c.ops) * 1000) / 1000}`)
        .join(', '),
    ]),
  );
}

/** Worth a non-zero exit: a lost, duplicated or misrouted message, a send without an answer, a broadcast that missed a socket or did not finish. */
export function scaleProblems(r: ScaleResult): string[] {
  const problems: string[] = [];
  const c = r.clients;
  const d = c?.delivery;
  if (d) {
    if (d.lost > 0) problems.push(`${d.lost} acked deliveries lost: ${d.lostExamples.join('; ')}`);
    if (d.duplicates > 0) problems.push(`${d.duplicates} duplicate frames`);
    if (d.unexpected > 0) problems.push(`${d.unexpected} frames outside the audience`);
    if (d.syncChecked.missing > 0) problems.push(`${d.syncChecked.missing} acked messages missing from their recipients' sync`);
  }
  const m = c?.mixed;
  if (m) {
    for (const [name, op] of [
      ['send to a user', m.p2p],
      ['send to a group', m.group],
    ] as const) {
      const errors = Object.entries(op.errors).filter(([code]) => code !== 'rate_limited');
      if (op.noAnswer > 0 || errors.length > 0) problems.push(`${name}: ${op.noAnswer} without an answer, errors ${JSON.stringify(Object.fromEntries(errors))}`);
    }
  }
  for (const [name, x] of [
    ['broadcast during the workload', m?.broadcast],
    ['broadcast alone', c?.costBroadcast],
  ] as const) {
    if (!x) continue;
    if (x.lost > 0) problems.push(`${name}: ${x.lost} of ${x.sockets} open sockets never got the frame`);
    if (x.duplicates > 0) problems.push(`${name}: ${x.duplicates} duplicate frames`);
    if (x.state !== 'done') problems.push(`${name}: job ${x.state}, not done`);
    if (x.job.failed > 0) problems.push(`${name}: job counted ${x.job.failed} failed posts`);
  }
  return problems;
}
