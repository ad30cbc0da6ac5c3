/**
 * `wxgate console` as shipped: cli/build.mjs builds the command (with the console's page built
 * in) into a throwaway package that has commander and nothing else, so the command cannot lean
 * on esbuild or the repository's sources. It serves the console on 127.0.0.1 for "a stack" (the
 * local runtime here, reached by URL like a deployed one), signs the admin calls with the key
 * from the environment, refuses calls without the session its link carries, and a real browser
 * opened on that link signs in and sees the stack.
 */
import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, requireChromium, type Browser } from '../support/chromium';
import { childEnv, runChild } from '../support/child-process';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient } from '../support/ws-test-client';

jest.setTimeout(60_000);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let tg: TestGateway;
let scratch: string;
let bin: string;
let child: ChildProcess | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  requireChromium();
  scratch = mkdtempSync(join(tmpdir(), 'wxgate-console-cli-'));
  const pkg = join(scratch, 'wxgate');
  mkdirSync(join(pkg, 'node_modules'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules', 'commander'), join(pkg, 'node_modules', 'commander'), 'dir');
  const built = await runChild(process.execPath, ['cli/build.mjs', join(pkg, 'dist', 'cli')], { cwd: ROOT, timeoutMs: 60_000 });
  if (built.code !== 0) throw new Error(`cli/build.mjs failed: ${built.stderr}`);
  bin = join(pkg, 'dist', 'cli', 'wxgate.js');
  tg = await startTestGateway({ console: false });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  child?.kill('SIGKILL');
  await tg?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Starts `wxgate console …`; resolves with the link it prints on stdout. */
function startConsole(args: string[], env: Record<string, string>): Promise<{ link: string; stderr: () => string; exit: Promise<number | null> }> {
  const proc = spawn(process.execPath, [bin, 'console', ...args], { cwd: scratch, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let out = '';
  let err = '';
  proc.stderr!.on('data', (chunk) => (err += chunk));
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (chunk) => {
      out += chunk;
      const line = /^(http:\/\/127\.0\.0\.1:\d+\/console#session=[\w-]+)\n/m.exec(out);
      if (line) resolve({ link: line[1]!, stderr: () => err, exit });
    });
    void exit.then((code) => reject(new Error(`wxgate console exited (${code}) before printing its link: ${err}`)));
  });
}

it('serves the console for a stack, signs admin calls with the environment key, and only for its session', async () => {
  const { link, stderr, exit } = await startConsole(['--url', tg.gateway.httpUrl, '--ws', tg.gateway.wsUrl, '--port', '0'], {
    WXGATE_KEY_ID: 'local',
    WXGATE_KEY_SECRET: 'local-dev-admin-secret',
  });
  const url = new URL(link);
  const session = new URLSearchParams(url.hash.slice(1)).get('session')!;
  const base = `${url.origin}/console`;

  const page = await fetch(base);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('data-testid="view-admin"');
  expect(page.headers.get('content-security-policy')).toContain(`connect-src 'self' ${tg.gateway.wsUrl};`);
  expect((await fetch(`${base}/console.js`)).status).toBe(200);
  expect((await fetch(`${url.origin}/`, { redirect: 'manual' })).headers.get('location')).toBe('/console');

  // Without the session (another user of the machine), nothing is signed.
  expect((await fetch(`${base}/api/v1/stats`, { headers: { 'x-wxgate-console': 'local' } })).status).toBe(403);
  const headers = { 'x-wxgate-console': session, 'content-type': 'application/json' };
  const stats = await fetch(`${base}/api/v1/stats`, { headers });
  expect(stats.status).toBe(200);
  expect(await stats.json()).toEqual({ online: expect.any(Number), users: expect.any(Number) });
  const config = await (await fetch(`${base}/api/config`, { headers })).json();
  expect(config).toEqual({ wsUrl: tg.gateway.wsUrl, apiUrl: tg.gateway.httpUrl, keyId: 'local', mode: 'local' }); // a loopback API URL

  // A client token minted through the console connects to the stack's WebSocket API.
  const minted = await fetch(`${base}/api/v1/tokens`, { method: 'POST', headers, body: JSON.stringify({ userId: 'cli-user', deviceId: 'probe' }) });
  expect(minted.status).toBe(200);
  const client = await TestClient.connect(tg.gateway.wsUrl, ((await minted.json()) as { token: string }).token);
  await client.close();

  // The link in a browser: the page keeps the session, signs in and reaches the stack.
  browser = await launchChromium();
  const tab = await browser.open(link);
  await tab.waitForSelector('body[data-ready="1"]');
  expect(new URL(tab.url()).hash).toBe('');
  await tab.getByTestId('signin-user').fill('cli-user');
  await tab.getByTestId('signin-submit').click();
  await tab.waitForSelector('[data-testid="conn-state"][data-state="open"][data-synced="1"]');
  await tab.getByTestId('tab-admin').click();
  await tab.getByTestId('connections-user').fill('cli-user');
  await tab.getByTestId('connections-show').click();
  await tab.getByTestId('connection-row').first().waitFor();
  expect(await tab.getByTestId('connection-row').locator('td').first().textContent()).toBe('browser');
  expect(browser.problems).toEqual([]);

  child!.kill('SIGTERM');
  expect(await exit).toBe(0);
  expect(stderr()).toContain(`Admin calls go to ${tg.gateway.httpUrl}, signed here with key "local"`);
});

it('needs the WebSocket URL for a stack that is not local mode', async () => {
  const run = await runChild(process.execPath, [bin, 'console', '--url', 'https://abc123.execute-api.eu-west-1.amazonaws.com'], {
    cwd: scratch,
    env: { WXGATE_KEY_ID: 'ops', WXGATE_KEY_SECRET: 'a-secret-of-enough-length' },
    timeoutMs: 30_000,
  });
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('--ws <url> (or WXGATE_WS_URL) is required');
  const bad = await runChild(process.execPath, [bin, 'console', '--url', 'https://abc123.execute-api.eu-west-1.amazonaws.com', '--ws', 'https://nope'], {
    cwd: scratch,
    env: { WXGATE_KEY_ID: 'ops', WXGATE_KEY_SECRET: 'a-secret-of-enough-length' },
    timeoutMs: 30_000,
  });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('--ws must be a ws:// or wss:// URL');
});
