import { verifyAdminRequest } from '../../../lambdas/domain/admin-auth';
import { main, type CliIo } from '../../../cli/program';

/**
 * The wxgate CLI in-process against a fake admin API that verifies every signature with the
 * gateway's own verifier: what each subcommand sends, what it prints, and its exit status.
 * (test/integration/cli.test.ts runs the real command against local mode.)
 */
interface Seen {
  method: string;
  path: string;
  query: string;
  body: string;
}

function fakeApi(answer: (seen: Seen) => { status: number; body?: unknown }, keys = new Map([['local', 'local-dev-admin-secret']])) {
  const seen: Seen[] = [];
  const used = new Set<string>();
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const body = typeof init?.body === 'string' ? init.body : '';
    const headers = Object.fromEntries(Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const request = { method: init?.method ?? 'GET', path: url.pathname, query: url.search.slice(1), body };
    try {
      await verifyAdminRequest({ ...request, headers, body: Buffer.from(body) }, keys, { claimNonce: async (_k, n) => !used.has(n) && !!used.add(n) }, Date.now());
    } catch (err) {
      return new Response(JSON.stringify({ error: { code: 'unauthorized', message: (err as Error).message } }), { status: 401 });
    }
    seen.push(request);
    const { status, body: out } = answer(request);
    return new Response(out === undefined ? '' : JSON.stringify(out), { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { seen, fetchImpl };
}

async function run(argv: string[], api: ReturnType<typeof fakeApi>, env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const sleeps: number[] = [];
  let clock = 1_000_000;
  const io: CliIo = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env,
    fetch: api.fetchImpl,
    sleep: async (ms) => void (sleeps.push(ms), (clock += ms)),
    now: () => clock,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr, sleeps, json: () => JSON.parse(stdout) };
}

const ok = (body: unknown) => () => ({ status: 200, body });

describe('wxgate CLI', () => {
  it('token: POST /v1/tokens with device and ttl; prints the answer', async () => {
    const api = fakeApi(ok({ token: 't', expiresAt: 1 }));
    const r = await run(['token', 'alice', '--device', 'phone', '--ttl', '600'], api);
    expect(r.code).toBe(0);
    expect(r.json()).toEqual({ token: 't', expiresAt: 1 });
    expect(api.seen).toEqual([{ method: 'POST', path: '/v1/tokens', query: '', body: '{"userId":"alice","deviceId":"phone","ttlSeconds":600}' }]);
    expect((await run(['token', 'bob'], api)).code).toBe(0);
    expect(api.seen[1]!.body).toBe('{"userId":"bob"}');
  });

  it('push: --user repeatable, --group, --all; the body is sent as given JSON', async () => {
    const api = fakeApi(ok({ msgId: 'm', online: 1, delivered: 1, offline: 1 }));
    expect((await run(['push', '--user', 'a', '--user', 'b:1', '--body', '{"text":"hé"}'], api)).code).toBe(0);
    expect((await run(['push', '--group', 'g1', '--body', '[1,2]'], api)).code).toBe(0);
    expect((await run(['push', '--all', '--body', '"x"'], api)).code).toBe(0);
    expect(api.seen.map((s) => JSON.parse(s.body))).toEqual([
      { to: { users: ['a', 'b:1'] }, body: { text: 'hé' } },
      { to: { group: 'g1' }, body: [1, 2] },
      { to: { all: true }, body: 'x' },
    ]);
  });

  it('push --wait polls the job until done, progress on stderr, the final job on stdout', async () => {
    const states = ['queued', 'running', 'running', 'done'];
    let polls = 0;
    const api = fakeApi((seen) => {
      if (seen.method === 'POST') return { status: 202, body: { jobId: 'j1', msgId: 'm1' } };
      const state = states[Math.min(polls++, states.length - 1)];
      return { status: 200, body: { jobId: 'j1', msgId: 'm1', state, targeted: polls, delivered: polls, gone: 0, failed: 0 } };
    });
    const r = await run(['push', '--all', '--body', '{}', '--wait', '--interval', '100'], api);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ jobId: 'j1', state: 'done' });
    expect(api.seen.slice(1).every((s) => s.method === 'GET' && s.path === '/v1/jobs/j1')).toBe(true);
    expect(r.stderr.trim().split('\n')).toEqual([
      'job j1 started for message m1',
      'job j1 queued: targeted 1, delivered 1, gone 0, failed 0',
      'job j1 running: targeted 2, delivered 2, gone 0, failed 0',
      'job j1 running: targeted 3, delivered 3, gone 0, failed 0',
      'job j1 done: targeted 4, delivered 4, gone 0, failed 0',
    ]);
    expect(r.sleeps).toEqual([100, 100, 100]);
  });

  it('a waited-for job that fails exits 1; without --wait a 202 is printed as is', async () => {
    const api = fakeApi((seen) => (seen.method === 'POST' ? { status: 202, body: { jobId: 'j2', msgId: 'm2' } } : { status: 200, body: { jobId: 'j2', state: 'failed' } }));
    const failed = await run(['push', '--all', '--body', '{}', '--wait'], api);
    expect(failed.code).toBe(1);
    expect(failed.json()).toMatchObject({ state: 'failed' });
    const plain = await run(['push', '--all', '--body', '{}'], api);
    expect(plain.code).toBe(0);
    expect(plain.json()).toEqual({ jobId: 'j2', msgId: 'm2' });
    expect((await run(['job', 'j2'], api)).json()).toMatchObject({ state: 'failed' });
  });

  it('--wait --timeout gives up on a job that stays running: the last job on stdout, exit 1', async () => {
    const api = fakeApi(() => ({ status: 200, body: { jobId: 'j3', msgId: 'm3', state: 'running', targeted: 5, delivered: 4, gone: 0, failed: 0 } }));
    const r = await run(['job', 'j3', '--wait', '--timeout', '2', '--interval', '500'], api);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ state: 'running' });
    expect(r.sleeps).toEqual([500, 500, 500, 500]);
    expect(r.stderr.trim().split('\n')).toEqual(['job j3 running: targeted 5, delivered 4, gone 0, failed 0', 'job j3 is still running after 2 s; stopped waiting']);
  });

  it('members: PUT with --add/--remove, GET with --limit/--after otherwise', async () => {
    const api = fakeApi(ok({}));
    await run(['members', 'g1', '--add', 'a', 'b', '--remove', 'c'], api);
    await run(['members', 'g1', '--add', 'a', '--add', 'b'], api);
    await run(['members', 'g1'], api);
    await run(['members', 'g1', '--limit', '2', '--after', 'a@x'], api);
    expect(api.seen).toEqual([
      { method: 'PUT', path: '/v1/groups/g1/members', query: '', body: '{"add":["a","b"],"remove":["c"]}' },
      { method: 'PUT', path: '/v1/groups/g1/members', query: '', body: '{"add":["a","b"]}' },
      { method: 'GET', path: '/v1/groups/g1/members', query: '', body: '' },
      { method: 'GET', path: '/v1/groups/g1/members', query: 'limit=2&after=a%40x', body: '' },
    ]);
  });

  it('connections, kick, stats, job: the right method and path; ids with : and @ travel unescaped', async () => {
    const api = fakeApi(ok({}));
    for (const argv of [['connections', 'u:1@x'], ['kick', 'u:1@x'], ['stats'], ['job', 'J1']]) expect((await run(argv, api)).code).toBe(0);
    expect(api.seen.map((s) => `${s.method} ${s.path}`)).toEqual(['GET /v1/users/u:1@x/connections', 'DELETE /v1/users/u:1@x/connections', 'GET /v1/stats', 'GET /v1/jobs/J1']);
  });

  it('a non-2xx answer exits 1 with the error JSON on stderr and nothing on stdout', async () => {
    const api = fakeApi(() => ({ status: 404, body: { error: { code: 'not_found', message: 'no job x' } } }));
    const r = await run(['job', 'x'], api);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(JSON.parse(r.stderr)).toEqual({ error: { code: 'not_found', message: 'no job x' } });
  });

  it('uses WXGATE_URL, WXGATE_KEY_ID and WXGATE_KEY_SECRET; a wrong secret is a 401, exit 1', async () => {
    const api = fakeApi(ok({ online: 0, users: 0 }), new Map([['ops', 'ops-secret-0123456789']]));
    const env = { WXGATE_URL: 'https://admin.example.com/prod/', WXGATE_KEY_ID: 'ops', WXGATE_KEY_SECRET: 'ops-secret-0123456789' };
    expect((await run(['stats'], api, env)).code).toBe(0);
    expect(api.seen[0]!.path).toBe('/prod/v1/stats');
    const wrong = await run(['stats'], api, { ...env, WXGATE_KEY_SECRET: 'not-the-secret-000' });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stderr).error.code).toBe('unauthorized');
    const noSecret = await run(['stats'], api, { WXGATE_KEY_ID: 'ops' });
    expect(noSecret).toMatchObject({ code: 2, stdout: '' });
    expect(noSecret.stderr).toMatch(/WXGATE_KEY_SECRET is not set/);
    expect((await run(['stats'], api, { WXGATE_URL: 'ftp://x' })).stderr).toMatch(/WXGATE_URL must be an http\(s\) URL/);
  });

  it('bad usage exits 2 before any request, with the reason on stderr', async () => {
    const api = fakeApi(ok({}));
    const cases: Array<[string[], RegExp]> = [
      [['push', '--body', '{}'], /exactly one of them/],
      [['push', '--user', 'a', '--all', '--body', '{}'], /cannot be used with/],
      [['push', '--group', 'g', '--all', '--body', '{}'], /cannot be used with/],
      [['push', '--all'], /required option '--body <json>' not specified/],
      [['push', '--all', '--body', '{x'], /not valid JSON/],
      [['token'], /missing required argument 'userId'/],
      [['token', 'a', '--ttl', '10'], /--ttl must be an integer from 60/],
      [['members', 'g', '--add', 'a', '--limit', '5'], /do not go with --add/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['stats', '--nope'], /unknown option '--nope'/],
    ];
    for (const [argv, reason] of cases) {
      const r = await run(argv, api);
      expect({ argv, code: r.code, stdout: r.stdout }).toEqual({ argv, code: 2, stdout: '' });
      expect(r.stderr).toMatch(reason);
    }
    expect(api.seen).toEqual([]);
  });

  it('--help on the command and on each subcommand exits 0 with usage on stdout', async () => {
    const api = fakeApi(ok({}));
    for (const argv of [['--help'], ...['token', 'push', 'job', 'connections', 'kick', 'members', 'stats'].map((c) => [c, '--help']), ['help', 'push']]) {
      const r = await run(argv, api);
      expect({ argv, code: r.code }).toEqual({ argv, code: 0 });
      expect(r.stdout).toMatch(/^Usage: wxgate/);
    }
    expect((await run(['--help'], api)).stdout).toMatch(/WXGATE_KEY_SECRET/);
    expect(api.seen).toEqual([]);
  });

  it('an unreachable gateway exits 1 and says where it tried', async () => {
    const io: CliIo = { stdout: () => undefined, stderr: (t) => void (err += t), env: { WXGATE_URL: 'http://127.0.0.1:9' } };
    let err = '';
    expect(await main(['stats'], io)).toBe(1);
    expect(err).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
  });
});
