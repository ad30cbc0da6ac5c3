import { jest } from '@jest/globals';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChild, type Run } from '../support/child-process';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { eventually, TestClient } from '../support/ws-test-client';

/**
 * The `wxgate` command against the real local runtime, as shipped: cli/build.mjs builds it into a
 * throwaway copy of the package, the command run is the file package.json's "bin" names, and a
 * throwaway consumer project imports `wxgate/sign` through package.json's "exports". One run goes
 * through tsx from the source too (`npm run wxgate`).
 */
// Each test runs several child processes, slow on a busy machine.
jest.setTimeout(60_000);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKED_EXAMPLE_SIGNATURE = '1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b';

const run = (command: string, args: string[], env: Record<string, string> = {}, cwd = ROOT) => runChild(command, args, { env, cwd, timeoutMs: 60_000 });

describe('wxgate CLI against local mode', () => {
  let gw: TestGateway;
  let scratch: string;
  let bin: string;
  const clients: TestClient[] = [];

  /** The built command, with WXGATE_URL pointing at the test gateway. */
  const wxgate = (args: string[], env: Record<string, string> = {}) => run(process.execPath, [bin, ...args], { WXGATE_URL: gw.gateway.httpUrl, ...env });
  const json = (r: Run) => {
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    return JSON.parse(r.stdout);
  };
  const connect = async (userId: string, deviceId: string) => {
    const client = await TestClient.as(gw.gateway.wsUrl, userId, deviceId);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    // A copy of the package as a dependency would see it: package.json + the built dist/cli.
    scratch = mkdtempSync(join(tmpdir(), 'wxgate-cli-'));
    const pkg = join(scratch, 'wxgate');
    mkdirSync(pkg);
    cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    const built = await run(process.execPath, ['cli/build.mjs', join(pkg, 'dist', 'cli')]);
    if (built.code !== 0) throw new Error(`cli/build.mjs failed: ${built.stderr}`);
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    bin = join(pkg, manifest.bin.wxgate!);
    // The CLI's one npm dependency, where Node looks for it from the package.
    mkdirSync(join(pkg, 'node_modules'));
    symlinkSync(join(ROOT, 'node_modules', 'commander'), join(pkg, 'node_modules', 'commander'), 'dir');
    // A consumer project that depends on it.
    mkdirSync(join(scratch, 'consumer', 'node_modules'), { recursive: true });
    symlinkSync(pkg, join(scratch, 'consumer', 'node_modules', 'wxgate'), 'dir');
    gw = await startTestGateway();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  it("a consumer project imports signRequest from 'wxgate/sign'", async () => {
    const code = `import { signRequest } from 'wxgate/sign';
      const h = signRequest({ keyId: 'local', secret: 'local-dev-admin-secret', method: 'POST', url: '/v1/push?a=1', body: '{"x":1}', timestamp: 1700000000, nonce: 'abcdefabcdefabcdef' });
      console.log(h['X-Wxgate-Signature']);`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code], {}, join(scratch, 'consumer'));
    expect({ code: r.code, stdout: r.stdout.trim(), stderr: r.stderr }).toEqual({ code: 0, stdout: WORKED_EXAMPLE_SIGNATURE, stderr: '' });
  });

  it('token mints a client token that connects as that user', async () => {
    const answer = json(await wxgate(['token', 'cli-alice', '--device', 'phone', '--ttl', '600']));
    expect(answer).toEqual({ token: expect.any(String), expiresAt: expect.any(Number) });
    expect(Math.abs(answer.expiresAt - (Date.now() / 1000 + 600))).toBeLessThan(30);
    const client = await TestClient.connect(gw.gateway.wsUrl, answer.token);
    clients.push(client);
    const connections = json(await wxgate(['connections', 'cli-alice']));
    expect(connections).toEqual({ connections: [{ connectionId: expect.any(String), deviceId: 'phone', connectedAt: expect.any(Number) }] });
  });

  it('push --user answers with exact counts and the user receives the message', async () => {
    const bob = await connect('cli-bob', 'd1');
    const answer = json(await wxgate(['push', '--user', 'cli-bob', '--user', 'cli-nobody', '--body', '{"text":"hi bob"}']));
    expect(answer).toEqual({ msgId: expect.any(String), online: 1, delivered: 1, offline: 1 });
    const frame = await bob.waitFor((f) => f.type === 'message' && f.msgId === answer.msgId);
    expect(frame).toMatchObject({ from: 'admin/local', to: { push: 'users' }, body: { text: 'hi bob' } });
  });

  it('members adds, lists in pages and removes; push --group reaches the members', async () => {
    const dora = await connect('cli-dora', 'd1');
    expect(json(await wxgate(['members', 'cli-team', '--add', 'cli-dora', 'cli-erin', 'cli-finn']))).toEqual({ groupId: 'cli-team', members: 3 });
    const first = json(await wxgate(['members', 'cli-team', '--limit', '2']));
    expect(first).toEqual({ members: ['cli-dora', 'cli-erin'], next: expect.any(String) });
    expect(json(await wxgate(['members', 'cli-team', '--after', first.next]))).toEqual({ members: ['cli-finn'], next: null });
    expect(json(await wxgate(['members', 'cli-team', '--remove', 'cli-finn']))).toEqual({ groupId: 'cli-team', members: 2 });

    const answer = json(await wxgate(['push', '--group', 'cli-team', '--body', '{"text":"team"}']));
    expect(answer).toEqual({ msgId: expect.any(String), online: 1, delivered: 1, offline: 1 });
    expect(await dora.waitFor((f) => f.type === 'message' && f.msgId === answer.msgId)).toMatchObject({ to: { group: 'cli-team' }, body: { text: 'team' } });
  });

  it('push --all --wait follows the job to done, progress on stderr, and every connection gets it', async () => {
    const gina = await connect('cli-gina', 'd1');
    const r = await wxgate(['push', '--all', '--body', '{"text":"everyone"}', '--wait', '--interval', '200']);
    expect(r.code).toBe(0);
    const job = JSON.parse(r.stdout);
    expect(job).toEqual({ jobId: expect.any(String), msgId: expect.any(String), state: 'done', targeted: expect.any(Number), delivered: expect.any(Number), gone: 0, failed: 0 });
    const open = clients.filter((c) => c.isOpen).length;
    expect(job).toMatchObject({ targeted: open, delivered: open });
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`job ${job.jobId} started for message ${job.msgId}`);
    expect(lines.at(-1)).toBe(`job ${job.jobId} done: targeted ${open}, delivered ${open}, gone 0, failed 0`);
    expect(await gina.waitFor((f) => f.type === 'message' && f.msgId === job.msgId)).toMatchObject({ from: 'admin/local', to: { push: 'all' }, body: { text: 'everyone' } });

    expect(json(await wxgate(['job', job.jobId]))).toEqual(job);
  });

  it('stats answers the presence counters', async () => {
    expect(json(await wxgate(['stats']))).toEqual({ online: expect.any(Number), users: expect.any(Number) });
  });

  it('kick closes every connection of the user', async () => {
    const one = await connect('cli-hank', 'd1');
    const two = await connect('cli-hank', 'd2');
    expect(json(await wxgate(['kick', 'cli-hank']))).toEqual({ closed: 2 });
    await Promise.all([one.whenClosed(), two.whenClosed()]);
    await eventually(async () => json(await wxgate(['connections', 'cli-hank'])), (a) => a.connections.length === 0, 10_000, 'cli-hank without connections');
  });

  it('a non-2xx answer exits 1 with the error JSON on stderr', async () => {
    const missing = await wxgate(['job', 'NO-SUCH-JOB']);
    expect({ code: missing.code, stdout: missing.stdout }).toEqual({ code: 1, stdout: '' });
    expect(JSON.parse(missing.stderr)).toEqual({ error: { code: 'not_found', message: 'no job NO-SUCH-JOB' } });

    const wrongKey = await wxgate(['stats'], { WXGATE_KEY_SECRET: 'not-the-local-secret' });
    expect(wrongKey.code).toBe(1);
    expect(JSON.parse(wrongKey.stderr)).toEqual({ error: { code: 'unauthorized', message: 'signature does not match' } });

    const tooBig = await wxgate(['push', '--user', 'cli-bob', '--body', JSON.stringify({ text: 'x'.repeat(33 * 1024) })]);
    expect(tooBig.code).toBe(1);
    expect(JSON.parse(tooBig.stderr).error.code).toBe('too_large');

    const badId = await wxgate(['connections', 'not a valid id']);
    expect(badId.code).toBe(1);
    expect(JSON.parse(badId.stderr).error.code).toBe('bad_request');
  });

  it('bad usage exits 2 and --help exits 0', async () => {
    const usage = await wxgate(['push', '--body', '{}']);
    expect({ code: usage.code, stdout: usage.stdout }).toEqual({ code: 2, stdout: '' });
    expect(usage.stderr).toMatch(/--user \(repeatable\), --group or --all/);
    const help = await wxgate(['members', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: wxgate members \[options\] <groupId>/);
  });

  it('runs from the source through tsx too (npm run wxgate)', async () => {
    const r = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), ['cli/wxgate.ts', 'stats'], { WXGATE_URL: gw.gateway.httpUrl });
    expect(json(r)).toEqual({ online: expect.any(Number), users: expect.any(Number) });
  });
});
