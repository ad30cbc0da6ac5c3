/**
 * The web console (console/, docs/console.md) in a real browser: headless Chromium (Debian's
 * `chromium`, test/support/chromium.ts) against the local runtime, whose HTTP server serves the
 * console as `npm start` does. Three pages: ann and bob in the conversation view, and the admin
 * view. Screenshots of both views go to test-output/console/.
 *
 * Without Chromium this suite fails, saying how to install it (it never skips).
 */
import { jest } from '@jest/globals';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchChromium, requireChromium, TEST_OUTPUT, type Browser } from '../support/chromium';
import { startTestGateway, type TestGateway } from '../support/test-gateway';

// A browser and the local runtime on a shared 2-core machine: steps are slow at times.
jest.setTimeout(60_000);

let tg: TestGateway;
let browser: Browser;
let ann: Page;
let bob: Page;
let admin: Page;

beforeAll(async () => {
  requireChromium();
  tg = await startTestGateway({ pollWaitMs: 50 });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await tg?.stop();
});

interface Shown {
  msgId?: string;
  dir: string;
  from: string;
  state: string;
  text: string;
  tags: string[];
}

/** What a page's message list shows, top to bottom. */
const shown = (page: Page): Promise<Shown[]> =>
  page.$$eval('[data-testid="message"]', (items) =>
    items.map((li) => {
      const msgId = li.getAttribute('data-msgid');
      return {
        ...(msgId ? { msgId } : {}),
        dir: li.getAttribute('data-dir')!,
        from: li.getAttribute('data-from')!,
        state: li.getAttribute('data-state')!,
        text: li.querySelector('[data-testid="message-body"]')!.textContent!,
        tags: [...li.querySelectorAll('.tag')].map((t) => t.textContent!),
      };
    }),
  );

async function openConsole(view?: 'admin'): Promise<Page> {
  const page = await browser.open(`${tg.gateway.consoleUrl}${view ? `?view=${view}` : ''}`);
  await page.waitForSelector('body[data-ready="1"]');
  return page;
}

async function signIn(page: Page, user: string, device: string): Promise<void> {
  await page.getByTestId('signin-user').fill(user);
  await page.getByTestId('signin-device').fill(device);
  await page.getByTestId('signin-submit').click();
  await page.waitForSelector('[data-testid="conn-state"][data-state="open"][data-synced="1"]');
}

/** Sends through the conversation view; resolves with the msgId of the ack the page shows. */
async function send(page: Page, kind: 'user' | 'group', to: string, text: string): Promise<string> {
  await page.getByTestId('send-kind').selectOption(kind);
  await page.getByTestId('send-to').fill(to);
  await page.getByTestId('send-text').fill(text);
  await page.getByTestId('send-submit').click();
  const acked = page.locator('[data-testid="message"][data-dir="out"][data-state="acked"]', { hasText: text });
  await acked.waitFor();
  return (await acked.getAttribute('data-msgid'))!;
}

/** Waits until `page` shows a received message with this text; resolves with it. */
async function received(page: Page, text: string): Promise<Shown> {
  await page.locator('[data-testid="message"][data-state="received"]', { hasText: text }).first().waitFor();
  return (await shown(page)).find((m) => m.state === 'received' && m.text === text)!;
}

const noDuplicates = (list: Shown[]) => {
  const ids = list.flatMap((m) => (m.msgId ? [m.msgId] : []));
  expect(ids.length).toBe(new Set(ids).size);
};

it('two pages signed in as two users exchange messages; history comes through sync', async () => {
  ann = await openConsole();
  await signIn(ann, 'ann', 'laptop');
  // Sent before bob signs in: bob's page finds it in his history.
  const early = await send(ann, 'user', 'bob', 'are you there, bob?');

  bob = await openConsole();
  await signIn(bob, 'bob', 'phone');
  const history = await received(bob, 'are you there, bob?');
  expect(history).toMatchObject({ msgId: early, dir: 'in', from: 'ann' });
  expect(history.tags).toContain('history');

  const hello = await send(bob, 'user', 'ann', 'hi ann, here now');
  expect(await received(ann, 'hi ann, here now')).toMatchObject({ msgId: hello, dir: 'in', from: 'bob' });
  const reply = await send(ann, 'user', 'bob', 'great, 你好 👋');
  expect(await received(bob, 'great, 你好 👋')).toMatchObject({ msgId: reply, from: 'ann' });
  expect((await received(bob, 'great, 你好 👋')).tags).not.toContain('history');

  // Each side shows its own sends once (acked) and the other's once (received).
  expect((await shown(ann)).map((m) => [m.dir, m.state, m.text])).toEqual([
    ['out', 'acked', 'are you there, bob?'],
    ['in', 'received', 'hi ann, here now'],
    ['out', 'acked', 'great, 你好 👋'],
  ]);
  expect((await shown(bob)).map((m) => [m.dir, m.state, m.text])).toEqual([
    ['in', 'received', 'are you there, bob?'],
    ['out', 'acked', 'hi ann, here now'],
    ['in', 'received', 'great, 你好 👋'],
  ]);
});

it('the admin view puts both in a group, and a send to the group reaches the other member', async () => {
  admin = await openConsole('admin');
  await admin.getByTestId('group-id').fill('team');
  await admin.getByTestId('group-users').fill('ann, bob');
  await admin.getByTestId('group-add').click();
  await admin.waitForSelector('[data-testid="group-result"][data-done="add"]');
  expect(JSON.parse((await admin.getByTestId('group-result').textContent())!)).toEqual({ groupId: 'team', members: 2 });

  const msgId = await send(ann, 'group', 'team', 'stand-up in 5');
  const got = await received(bob, 'stand-up in 5');
  expect(got).toMatchObject({ msgId, from: 'ann' });
  expect(await bob.locator(`[data-msgid="${msgId}"] .meta`).textContent()).toContain('→ #team');
});

it('the admin view pushes to one user and to everyone (with the job to done), and shows stats and connections', async () => {
  // To bob only.
  await admin.getByTestId('push-kind').selectOption('users');
  await admin.getByTestId('push-to').fill('bob');
  await admin.getByTestId('push-body').fill('hello bob, from the admin view');
  await admin.getByTestId('push-submit').click();
  await admin.waitForSelector('[data-testid="push-result"][data-msgid]');
  const pushed = (await admin.getByTestId('push-result').getAttribute('data-msgid'))!;
  expect(JSON.parse((await admin.getByTestId('push-result').textContent())!)).toEqual({ msgId: pushed, online: 1, delivered: 1, offline: 0 });
  expect(await received(bob, 'hello bob, from the admin view')).toMatchObject({ msgId: pushed, from: 'admin/local' });

  // To everyone online: a job, followed to the end.
  await admin.getByTestId('push-kind').selectOption('all');
  await admin.getByTestId('push-body').fill('{"text":"maintenance at 22:00","severity":"info"}');
  await admin.getByTestId('push-submit').click();
  await admin.waitForSelector('[data-testid="job-state"][data-state="done"]', { timeout: 30_000 });
  expect(await admin.getByTestId('job-state').textContent()).toMatch(/done: targeted 2, delivered 2, gone 0, failed 0$/);
  for (const page of [ann, bob]) {
    await page.locator('[data-testid="message"]', { hasText: 'maintenance at 22:00' }).waitFor();
  }

  // Stats (the presence counters settle through the table stream) and bob's connections.
  await expectEventually(async () => {
    await admin.getByTestId('stats-refresh').click();
    return [await admin.getByTestId('stats-online').textContent(), await admin.getByTestId('stats-users').textContent()];
  }, ['2', '2']);
  await admin.getByTestId('connections-user').fill('bob');
  await admin.getByTestId('connections-show').click();
  await admin.getByTestId('connection-row').first().waitFor();
  expect(await admin.getByTestId('connection-row').count()).toBe(1);
  expect(await admin.getByTestId('connection-row').locator('td').first().textContent()).toBe('phone');
  await admin.screenshot({ path: join(TEST_OUTPUT, 'admin.png'), fullPage: true });
});

it("a page kicked through the admin API reconnects and shows the messages sent while it was away, each once", async () => {
  // Hold bob's next token request, so he stays away until ann's sends are acked.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let asked!: () => void;
  const tokenAsked = new Promise<void>((resolve) => (asked = resolve));
  let handled!: () => void;
  const passed = new Promise<void>((resolve) => (handled = resolve));
  await bob.route('**/console/api/v1/tokens', async (route) => {
    asked();
    await released;
    await route.continue();
    handled();
  });

  await admin.getByTestId('connections-user').fill('bob');
  await admin.getByTestId('kick').click();
  await admin.waitForSelector('[data-testid="connections-result"][data-closed="1"]');
  await tokenAsked;
  expect(await bob.getByTestId('conn-state').getAttribute('data-state')).toBe('connecting');

  const away: string[] = [];
  for (let n = 1; n <= 5; n++) away.push(await send(ann, 'user', 'bob', `while you were away #${n}`));
  release();
  await passed;
  await bob.unroute('**/console/api/v1/tokens');

  await bob.waitForSelector('[data-testid="conn-state"][data-state="open"]');
  await received(bob, 'while you were away #5');
  // Anything repeated (the resume overlap, a late live push, the catch-up sync) would come now.
  await bob.waitForTimeout(2_000);
  const list = await shown(bob);
  noDuplicates(list);
  const got = list.filter((m) => m.text.startsWith('while you were away'));
  expect(got.map((m) => m.msgId)).toEqual(away);
  expect(got.map((m) => m.text)).toEqual([1, 2, 3, 4, 5].map((n) => `while you were away #${n}`));
  noDuplicates(await shown(ann));

  // The connection log tells the story: open, closed by the kick, reconnecting, open, synced.
  const events = await bob.$$eval('[data-testid="events"] li', (items) => items.map((li) => li.getAttribute('data-event')!).reverse());
  expect(events.slice(events.indexOf('reconnecting'))).toEqual(expect.arrayContaining(['reconnecting', 'connecting', 'open', 'synced']));
  expect(events.filter((e) => e === 'reconnecting')).toHaveLength(1);

  await bob.screenshot({ path: join(TEST_OUTPUT, 'conversation.png'), fullPage: true });
  await ann.screenshot({ path: join(TEST_OUTPUT, 'conversation-ann.png'), fullPage: true });
  expect(browser.problems).toEqual([]);
});

async function expectEventually<T>(probe: () => Promise<T>, expected: T, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (JSON.stringify(last) === JSON.stringify(expected) || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  expect(last).toEqual(expected);
}
