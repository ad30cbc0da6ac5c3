import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRegistry, ScanKey } from './connection-registry';
import { connectionsOf, deliver, emptyReport, type DeliveryDeps, type DeliveryReport, type DeliveryTarget } from './delivery';

/**
 * Fan-out jobs: broadcasts to every online connection, and admin pushes and client group sends
 * to audiences too large to post inside the 29 s request (docs/architecture.md, "Fan-out jobs").
 *
 * A job is a tree of small idempotent tasks on the fan-out queue:
 * - `scan`: read one page of one segment of a parallel scan of the connections table, and queue
 *   a `post` task for the page and the `scan` task for the next page;
 * - `post`: post the job's frame to a page of connections (paced, 429s backed off, 410 rows
 *   removed);
 * - `users`: the same for the connections of a page of user ids.
 * Every task ends with one transaction: its completion marker (conditional, so a task retried
 * after a crash never counts twice), the job's counters, and `tasksOpen` += children - 1. The
 * job is `done` when `tasksOpen` reaches 0, and then `targeted = delivered + gone + failed`.
 * A task retried after it posted but before it completed posts again: frames carry `msgId`, so
 * clients drop the copy, and the counters still count it once.
 */
export type FanoutTask =
  | { jobId: string; taskId: string; kind: 'scan'; segment: number; totalSegments: number; page: number; startKey?: ScanKey }
  | { jobId: string; taskId: string; kind: 'post'; targets: DeliveryTarget[] }
  | { jobId: string; taskId: string; kind: 'users'; userIds: string[]; ts?: number; skipConnection?: string };

export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface JobCounters {
  targeted: number;
  delivered: number;
  gone: number;
  failed: number;
}

export interface JobRecord extends JobCounters {
  jobId: string;
  msgId: string;
  state: JobState;
  tasksOpen: number;
  createdAt: number;
  /** The frame to post, as sent. */
  payload: string;
}

export interface JobStore {
  createJob(job: { jobId: string; msgId: string; payload: string; tasksOpen: number; createdAt: number; expiresAt: number }): Promise<void>;
  getJob(jobId: string): Promise<JobRecord | undefined>;
  /** queued -> running (no-op otherwise). */
  markRunning(jobId: string): Promise<void>;
  markFailed(jobId: string): Promise<void>;
  isTaskDone(jobId: string, taskId: string): Promise<boolean>;
  /**
   * tasksOpen += `count` for the children of `taskId`, once (a conditional marker in the same
   * transaction): children are counted open BEFORE they are queued, so a child that finishes
   * first can never bring tasksOpen to 0 while its siblings are still queued.
   */
  openChildren(jobId: string, taskId: string, count: number, expiresAt: number): Promise<void>;
  /**
   * One transaction: the task's completion marker (only if absent), the counters, and
   * tasksOpen += opened - 1. False when the task had already completed (nothing changed).
   */
  completeTask(jobId: string, taskId: string, counts: JobCounters, opened: number, expiresAt: number): Promise<boolean>;
  /** running/queued -> done when tasksOpen = 0; returns whether this call finished it. */
  finishIfDone(jobId: string): Promise<boolean>;
}

export interface FanoutQueue {
  enqueue(tasks: readonly FanoutTask[]): Promise<void>;
}

export interface FanoutDeps {
  jobs: JobStore;
  queue: FanoutQueue;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  clock: Clock;
}

export const fanoutSettings = {
  /** Parallel scan segments of a broadcast (scan tasks that run at once). */
  scanSegments: 4,
  /** Connections read per scan page, so one post task stays far from its timeout. */
  scanPageSize: 100,
  /** User ids per `users` task. */
  usersPerTask: 100,
  /** Job rows and task markers are kept this long. */
  jobTtlSeconds: 7 * 86_400,
} as const;

export function broadcastTasks(jobId: string, segments: number = fanoutSettings.scanSegments): FanoutTask[] {
  return Array.from({ length: segments }, (_, segment) => ({ jobId, taskId: `s${segment}.0`, kind: 'scan', segment, totalSegments: segments, page: 0 }));
}

/**
 * `ts`: the pushed message's ts, when connections opened after it are the persister's (no second
 * copy); absent, every connection of the users. `skipConnection`: one that must not get the
 * frame (the sending connection, which got the ack).
 */
export function userTasks(jobId: string, userIds: readonly string[], ts?: number, skipConnection?: string, perTask: number = fanoutSettings.usersPerTask): FanoutTask[] {
  const tasks: FanoutTask[] = [];
  for (let i = 0; i < userIds.length; i += perTask) tasks.push({ jobId, taskId: `u${i / perTask}`, kind: 'users', userIds: userIds.slice(i, i + perTask), ts, skipConnection });
  return tasks;
}

/** Creates the job row (counting its first tasks as open) and queues them. */
export async function startJob(deps: Pick<FanoutDeps, 'jobs' | 'queue' | 'clock'>, job: { jobId: string; msgId: string; payload: string }, tasks: FanoutTask[]): Promise<void> {
  const now = deps.clock.nowMs();
  await deps.jobs.createJob({ ...job, tasksOpen: tasks.length, createdAt: now, expiresAt: epochSeconds(now) + fanoutSettings.jobTtlSeconds });
  try {
    await deps.queue.enqueue(tasks);
  } catch (err) {
    await deps.jobs.markFailed(job.jobId).catch(() => undefined);
    throw err;
  }
}

/**
 * Starts a job for a caller that is retried until it succeeds (the uplink persister): the job id
 * is derived from the message, so a job row that is already there for the same msgId is this
 * caller's own earlier start (its answer lost, or the caller died after it). Its tasks are queued
 * again, since the earlier start may have died before queueing them all: a task already completed
 * does nothing, one still queued may post twice (frames carry msgId). A queue failure fails the
 * caller, which is retried, rather than the job.
 */
export async function startJobOnce(deps: Pick<FanoutDeps, 'jobs' | 'queue' | 'clock'>, job: { jobId: string; msgId: string; payload: string }, tasks: FanoutTask[]): Promise<void> {
  const now = deps.clock.nowMs();
  try {
    await deps.jobs.createJob({ ...job, tasksOpen: tasks.length, createdAt: now, expiresAt: epochSeconds(now) + fanoutSettings.jobTtlSeconds });
  } catch (err) {
    // The store's conditional create refuses an existing id; anything else is not ours to hide.
    const existing = await deps.jobs.getJob(job.jobId).catch(() => undefined);
    if (existing?.msgId !== job.msgId) throw err;
  }
  await deps.queue.enqueue(tasks);
}

export type TaskOutcome = 'completed' | 'duplicate';

export async function runFanoutTask(deps: FanoutDeps, task: FanoutTask): Promise<{ outcome: TaskOutcome; report: DeliveryReport }> {
  if (await deps.jobs.isTaskDone(task.jobId, task.taskId)) return { outcome: 'duplicate', report: emptyReport() };
  const job = await deps.jobs.getJob(task.jobId);
  if (!job) throw new Error(`fan-out task ${task.taskId} names unknown job ${task.jobId}`);
  await deps.jobs.markRunning(task.jobId);

  let report = emptyReport();
  let children: FanoutTask[] = [];
  if (task.kind === 'scan') {
    const { segment, totalSegments, page } = task;
    const { records, nextKey } = await deps.registry.scanPage(segment, totalSegments, task.startKey, fanoutSettings.scanPageSize, deps.clock.nowMs());
    const base = `s${segment}.${page}`;
    if (records.length > 0) {
      children.push({ jobId: task.jobId, taskId: `${base}p`, kind: 'post', targets: records.map(({ connectionId, userId }) => ({ connectionId, userId })) });
    }
    if (nextKey) children.push({ jobId: task.jobId, taskId: `s${segment}.${page + 1}`, kind: 'scan', segment, totalSegments, page: page + 1, startKey: nextKey });
    // Counted open first, then queued, then this task completes: a crash in between queues them
    // again under the same task ids (their markers keep them from counting twice), and no child
    // can finish the job while a sibling is still queued.
    if (children.length > 0) {
      await deps.jobs.openChildren(task.jobId, task.taskId, children.length, epochSeconds(deps.clock.nowMs()) + fanoutSettings.jobTtlSeconds);
      await deps.queue.enqueue(children);
    }
  } else {
    const targets =
      task.kind === 'post'
        ? task.targets
        : await connectionsOf(
            deps.registry,
            task.userIds,
            deps.clock.nowMs(),
            (c) => c.connectionId === task.skipConnection,
            // Connections opened after ts are not read at all (a key condition): the persister's.
            task.ts === undefined ? undefined : { notAfter: task.ts },
          );
    report = await deliver(deps.delivery, targets, job.payload);
    children = [];
  }

  const expiresAt = epochSeconds(deps.clock.nowMs()) + fanoutSettings.jobTtlSeconds;
  const counted = await deps.jobs.completeTask(task.jobId, task.taskId, report, 0, expiresAt);
  await deps.jobs.finishIfDone(task.jobId);
  return { outcome: counted ? 'completed' : 'duplicate', report };
}

/**
 * A pacer for fan-out posts: at most `perSecond` calls of `take()` per second on average, with
 * bursts of at most `burst`. It adapts like TCP's congestion control: every throttled post
 * (`slowDown()`) halves the current rate, and each granted slot wins back 1 % of the budget,
 * so workers that meet the account-wide @connections throttle settle just under what is left
 * of it instead of burning their retries. Fan-out workers share the budget: each instance gets
 * budget / maxConcurrency (runtime/dependencies.ts).
 */
export interface Pacer {
  take(): Promise<void>;
  slowDown(): void;
  /** The current rate, posts per second. */
  readonly rate: number;
}

export function createPacer(perSecond: number, clock: Clock, sleep: (ms: number) => Promise<void>, burst = Math.max(1, Math.ceil(perSecond / 10))): Pacer {
  const floor = Math.max(1, perSecond / 64);
  let rate = perSecond;
  let tokens = burst;
  let last = clock.nowMs();
  let chain: Promise<void> = Promise.resolve();
  const takeOne = async () => {
    for (;;) {
      const now = clock.nowMs();
      tokens = Math.min(burst, tokens + ((now - last) * rate) / 1000);
      last = now;
      if (tokens >= 1) {
        tokens -= 1;
        rate = Math.min(perSecond, rate + perSecond / 100);
        return;
      }
      await sleep(Math.ceil(((1 - tokens) * 1000) / rate));
    }
  };
  return {
    // Serialised, so concurrent posts take slots one after another.
    take: () => (chain = chain.then(takeOne)),
    slowDown: () => {
      rate = Math.max(floor, rate / 2);
      tokens = Math.min(tokens, 0);
    },
    get rate() {
      return rate;
    },
  };
}
