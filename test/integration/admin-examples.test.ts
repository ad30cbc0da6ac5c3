import { jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChild } from '../support/child-process';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { eventually, TestClient, type Frame } from '../support/ws-test-client';

/**
 * The admin API examples of docs/admin-api.md, run as a backend developer would run them, against
 * the real local runtime: examples/admin/push.sh (curl + sign.sh), push.mjs, push.py, Push.java.
 * Each must reproduce the contract's worked-example signature, mint a token that really connects
 * as the user, push a message that a connected WebSocket client of that user receives, and fail
 * (exit 1, the 401 printed) with a wrong secret. The curl snippet of the doc itself runs too.
 * Needs curl, openssl, python3 and a JDK on PATH (.ci/run installs them on a fresh machine).
 */
// A JDK compiles Push.java on every run: seconds on a busy machine.
jest.setTimeout(120_000);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = join(ROOT, 'examples', 'admin');
const WORKED_EXAMPLE_SIGNATURE = '1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b';
const CHILD_TIMEOUT_MS = 90_000;

const run = (command: string, args: string[], env: Record<string, string> = {}, cwd = EXAMPLES) => runChild(command, args, { env, cwd, timeoutMs: CHILD_TIMEOUT_MS });

/** `METHOD PATH -> STATUS BODY` lines, as every example prints them. */
function answers(stdout: string): Array<{ call: string; status: number; body: any }> {
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^(\S+ \S+) -> (\d{3}) (.*)$/.exec(line);
      if (!m) throw new Error(`unexpected output line: ${JSON.stringify(line)}`);
      return { call: m[1]!, status: Number(m[2]), body: JSON.parse(m[3]!) };
    });
}

const examples = [
  { name: 'curl', command: 'sh', args: ['push.sh'], tools: ['sh', 'curl', 'openssl'], hello: 'hello from curl' },
  { name: 'node', command: process.execPath, args: ['push.mjs'], tools: [], hello: 'hello from node' },
  { name: 'python', command: 'python3', args: ['push.py'], tools: ['python3'], hello: 'hello from python' },
  { name: 'java', command: 'java', args: ['Push.java'], tools: ['java'], hello: 'hello from java' },
] as const;

const INSTALL_HINT: Record<string, string> = { curl: 'curl', openssl: 'openssl', python3: 'python3', java: 'openjdk-17-jdk-headless', sh: 'dash' };

describe('admin API examples against local mode', () => {
  let gw: TestGateway;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    const missing: string[] = [];
    for (const tool of new Set(examples.flatMap((e) => e.tools))) {
      if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0) missing.push(tool);
    }
    if (missing.length) {
      throw new Error(`not on PATH: ${missing.join(', ')} (Debian: apt-get install ${missing.map((t) => INSTALL_HINT[t]).join(' ')})`);
    }
    gw = await startTestGateway();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
  }, 60_000);

  const connect = async (userId: string, deviceId: string) => {
    const client = await TestClient.as(gw.gateway.wsUrl, userId, deviceId);
    clients.push(client);
    return client;
  };

  it.each(examples)('$name reproduces the worked example signature (--selftest)', async ({ command, args }) => {
    const r = await run(command, [args[0], '--selftest']);
    expect({ code: r.code, stdout: r.stdout.trim(), stderr: r.stderr }).toEqual({ code: 0, stdout: WORKED_EXAMPLE_SIGNATURE, stderr: '' });
  });

  it('sign.sh alone reproduces the worked example signature', async () => {
    const r = await run('sh', ['sign.sh', '--selftest']);
    expect(r.stdout.trim()).toBe(WORKED_EXAMPLE_SIGNATURE);
  });

  it.each(examples)(
    '$name mints a token and pushes to that user; a connected client receives the message',
    async ({ name, command, args, hello }) => {
      const user = `example-${name}`;
      const listener = await connect(user, 'listening-device');
      const r = await run(command, [...args], { WXGATE_URL: gw.gateway.httpUrl, WXGATE_USER: user });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });

      const [token, push, ...rest] = answers(r.stdout);
      expect(rest).toEqual([]);
      expect(token).toMatchObject({ call: 'POST /v1/tokens', status: 200, body: { token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) } });
      expect(token!.body.expiresAt).toBeGreaterThan(Date.now() / 1000);
      expect(push).toEqual({ call: 'POST /v1/push', status: 200, body: { msgId: expect.any(String), online: 1, delivered: 1, offline: 0 } });

      const frame = await listener.waitFor((f) => f.type === 'message' && f.msgId === push!.body.msgId, 10_000, `the pushed message on ${user}'s socket`);
      expect(frame).toEqual({ type: 'message', msgId: push!.body.msgId, from: 'admin/local', to: { push: 'users' }, body: { text: hello }, ts: expect.any(Number) });

      // The minted token is a working token for that user: it connects, and its inbox holds the push.
      const device = await TestClient.connect(gw.gateway.wsUrl, token!.body.token);
      clients.push(device);
      const synced = await eventually(
        () => device.request({ action: 'sync' }),
        (reply: Frame) => reply.messages?.some((m: Frame) => m.msgId === push!.body.msgId),
        15_000,
        `the push in ${user}'s inbox`,
      );
      expect(synced.messages.find((m: Frame) => m.msgId === push!.body.msgId).body).toEqual({ text: hello });
    },
    CHILD_TIMEOUT_MS + 30_000,
  );

  it.each(examples)(
    '$name exits 1 and prints the 401 when the secret is wrong',
    async ({ command, args }) => {
      const r = await run(command, [...args], { WXGATE_URL: gw.gateway.httpUrl, WXGATE_KEY_SECRET: 'not-the-right-secret' });
      expect(r.code).toBe(1);
      expect(answers(r.stdout)).toEqual([{ call: 'POST /v1/tokens', status: 401, body: { error: { code: 'unauthorized', message: 'signature does not match' } } }]);
    },
    CHILD_TIMEOUT_MS + 30_000,
  );

  it('the curl snippet of docs/admin-api.md runs as written', async () => {
    const doc = readFileSync(join(ROOT, 'docs', 'admin-api.md'), 'utf8');
    const snippet = /<!-- tested by test\/integration\/admin-examples\.test\.ts -->\s*```sh\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(snippet).toBeDefined();
    const listener = await connect('snippet-user', 'd1');
    const r = await run('sh', ['-c', `set -e\n${snippet}`], { WXGATE_URL: gw.gateway.httpUrl }, ROOT);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const [token, push, changed, page, ...rest] = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(rest).toEqual([]);
    expect(token).toEqual({ token: expect.any(String), expiresAt: expect.any(Number) });
    expect(push).toEqual({ msgId: expect.any(String), online: 1, delivered: 1, offline: 0 });
    expect(changed).toEqual({ groupId: 'snippet-group', members: 2 });
    expect(page).toEqual({ members: ['snippet-friend'], next: 'snippet-friend' });
    await listener.waitFor((f) => f.type === 'message' && f.msgId === push.msgId);
  }, 60_000);
});

