import { broadcastTasks, createPacer, runFanoutTask, startJob, userTasks, type FanoutDeps, type FanoutTask } from '../../../lambdas/domain/fanout';
import {
  connectionRecord,
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeFanoutQueue,
  FakeJobStore,
  ManualClock,
} from '../../support/fakes';

const T0 = Date.UTC(2026, 0, 1, 12);

async function world(connections: number) {
  const clock = new ManualClock(T0);
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const jobs = new FakeJobStore();
  const queue = new FakeFanoutQueue();
  for (let i = 0; i < connections; i++) await registry.put(connectionRecord(`c${String(i).padStart(4, '0')}`, `u${i % 97}`, T0 - 1000));
  const deps: FanoutDeps = { jobs, queue, registry, delivery: fakeDeliveryDeps(sender, registry), clock };
  /** Runs queued tasks until none is left; `crash` may throw to simulate a dying worker (the task stays queued). */
  const drain = async (crash: (task: FanoutTask, runs: number) => void = () => undefined) => {
    const runs = new Map<string, number>();
    while (queue.tasks.length > 0) {
      const task = queue.tasks.shift()!;
      const n = (runs.get(task.taskId) ?? 0) + 1;
      runs.set(task.taskId, n);
      try {
        jobs.hook = (method) => {
          if (method === 'completeTask') crash(task, n);
        };
        await runFanoutTask(deps, task);
      } catch {
        queue.tasks.push(task); // SQS hands it out again after the visibility timeout
      }
    }
  };
  return { clock, registry, sender, jobs, queue, deps, drain };
}

describe('broadcast jobs', () => {
  it('reach every live connection once over paged parallel scans, and the counters are exact when done', async () => {
    const w = await world(1000);
    await w.registry.put(connectionRecord('expired', 'ux', T0 - 5000, { expiresAt: Math.floor(T0 / 1000) - 1 }));
    await startJob(w.deps, { jobId: 'j1', msgId: 'm1', payload: '{"msgId":"m1"}' }, broadcastTasks('j1'));
    await w.drain();
    const job = (await w.jobs.getJob('j1'))!;
    expect(job).toMatchObject({ state: 'done', targeted: 1000, delivered: 1000, gone: 0, failed: 0, tasksOpen: 0 });
    expect(w.sender.recipients()).toHaveLength(1000);
    expect(w.sender.posts).toHaveLength(1000);
    // 4 segments of pages of at most 100: more than one page per segment.
    expect(w.queue.sent.filter((t) => t.kind === 'scan').length).toBeGreaterThan(4);
  });

  it('counts 410s as gone (rows removed) and exhausted 429s as failed: targeted = delivered + gone + failed', async () => {
    const w = await world(30);
    w.sender.script('c0001', 'gone');
    w.sender.script('c0002', 'retryable', 'retryable', 'retryable', 'retryable');
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, broadcastTasks('j', 2));
    await w.drain();
    expect(await w.jobs.getJob('j')).toMatchObject({ state: 'done', targeted: 30, delivered: 28, gone: 1, failed: 1 });
    expect(w.registry.rows.has('c0001')).toBe(false);
  });

  it('stays exact when workers die after posting or after queueing children, before completing', async () => {
    const w = await world(450);
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, broadcastTasks('j'));
    // Every task's first run dies right before its completion transaction.
    await w.drain((_task, runs) => {
      if (runs === 1) throw new Error('Task timed out');
    });
    const job = (await w.jobs.getJob('j'))!;
    expect(job).toMatchObject({ state: 'done', targeted: 450, delivered: 450, tasksOpen: 0 });
    // Re-posts happened (harmless: frames carry msgId) but were never counted twice.
    expect(w.sender.posts.length).toBe(900);
    expect(w.sender.recipients()).toHaveLength(450);
  });

  it('a child that finishes before its parent completes never ends the job early (children are opened before they are queued)', async () => {
    const w = await world(250);
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, broadcastTasks('j', 1));
    const root = w.queue.tasks.shift()!;
    // The root scan dies right after queueing its children (a Lambda timeout).
    w.jobs.hook = (method) => {
      if (method === 'completeTask') throw new Error('Task timed out');
    };
    await expect(runFanoutTask(w.deps, root)).rejects.toThrow('Task timed out');
    w.jobs.hook = () => undefined;
    // Its post child finishes first: the job must not be done while the next scan page is queued.
    const post = w.queue.tasks.find((t) => t.kind === 'post')!;
    w.queue.tasks.splice(w.queue.tasks.indexOf(post), 1);
    await runFanoutTask(w.deps, post);
    expect((await w.jobs.getJob('j'))!.state).not.toBe('done');
    w.queue.tasks.push(root); // SQS redelivers the root
    await w.drain();
    expect(await w.jobs.getJob('j')).toMatchObject({ state: 'done', targeted: 250, delivered: 250, tasksOpen: 0 });
  });

  it('a duplicate delivery of a completed task changes nothing', async () => {
    const w = await world(10);
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, broadcastTasks('j', 1));
    const first = w.queue.tasks[0]!;
    await w.drain();
    const before = structuredClone(await w.jobs.getJob('j'));
    await expect(runFanoutTask(w.deps, first)).resolves.toMatchObject({ outcome: 'duplicate' });
    expect(await w.jobs.getJob('j')).toEqual(before);
  });

  it('marks the job failed when its tasks cannot be queued', async () => {
    const w = await world(1);
    w.queue.failNextWith = new Error('SQS down');
    await expect(startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, broadcastTasks('j'))).rejects.toThrow('SQS down');
    expect((await w.jobs.getJob('j'))!.state).toBe('failed');
  });
});

describe('user jobs', () => {
  it('leave connections opened after the message ts to the persister (no second copy)', async () => {
    const w = await world(0);
    await w.registry.put(connectionRecord('early', 'ua', T0 - 1));
    await w.registry.put(connectionRecord('late', 'ua', T0 + 1));
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, userTasks('j', ['ua'], T0));
    await w.drain();
    expect(w.sender.recipients()).toEqual(['early']);
  });

  it('post to every connection of every listed user, 100 users per task', async () => {
    const w = await world(300);
    const users = Array.from({ length: 250 }, (_, i) => `u${i}`); // u97.. have no connection
    const tasks = userTasks('j', users, T0);
    expect(tasks.map((t) => (t.kind === 'users' ? t.userIds.length : 0))).toEqual([100, 100, 50]);
    await startJob(w.deps, { jobId: 'j', msgId: 'm', payload: 'x' }, tasks);
    await w.drain();
    expect(await w.jobs.getJob('j')).toMatchObject({ state: 'done', targeted: 300, delivered: 300 });
  });
});

describe('createPacer', () => {
  it('lets a burst through, then one call per 1/rate seconds', async () => {
    const clock = new ManualClock(T0);
    const sleeps: number[] = [];
    const pace = createPacer(100, clock, async (ms) => {
      sleeps.push(ms);
      clock.advance(ms);
    }, 5);
    for (let i = 0; i < 25; i++) await pace.take();
    expect(clock.nowMs() - T0).toBeGreaterThanOrEqual(200); // 20 beyond the burst at 100/s
    expect(clock.nowMs() - T0).toBeLessThanOrEqual(220);
    expect(sleeps.every((ms) => ms > 0)).toBe(true);
  });

  it('halves its rate on every throttle, never below 1/64 of the budget, and recovers as slots are granted', async () => {
    const clock = new ManualClock(T0);
    const pace = createPacer(640, clock, async (ms) => clock.advance(ms));
    pace.slowDown();
    expect(pace.rate).toBe(320);
    for (let i = 0; i < 20; i++) pace.slowDown();
    expect(pace.rate).toBe(10);
    for (let i = 0; i < 50; i++) await pace.take();
    expect(pace.rate).toBeGreaterThan(300);
  });
});
