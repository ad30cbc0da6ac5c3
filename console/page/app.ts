/**
 * The web console's page (docs/console.md): sign in as a user and device with a token the
 * console's server mints, talk through wxgate/client, and drive the admin API through the
 * console's server, which signs every call (the page never holds an admin key).
 * Every element a test touches has a data-testid.
 */
import { WxgateClient, type Message, type Target, type WxgateError } from '../../client/index';

const byId = <T extends HTMLElement = HTMLElement>(testid: string): T => {
  const found = document.querySelector<T>(`[data-testid="${testid}"]`);
  if (!found) throw new Error(`console: no element ${testid}`);
  return found;
};

// ---- the console's server ----

/** `wxgate console` prints a link whose #session=… proves this page was opened by the person who ran it. */
const SESSION_KEY = 'wxgate-console:session';
const fromLink = new URLSearchParams(location.hash.slice(1)).get('session');
if (fromLink) {
  localStorage.setItem(SESSION_KEY, fromLink);
  history.replaceState(null, '', location.pathname + location.search);
}
const session = localStorage.getItem(SESSION_KEY) ?? 'local';

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A call to the console's server: /config, or an admin API path it signs and forwards. */
async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'x-wxgate-console': session };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/console/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, json?.error?.code ?? 'http', json?.error?.message ?? json?.message ?? text);
  return json as T;
}

const describe = (e: unknown) => (e instanceof ApiError ? `HTTP ${e.status} ${e.code}: ${e.message}` : `${(e as WxgateError)?.code ?? 'error'}: ${(e as Error)?.message ?? e}`);
const pretty = (value: unknown) => JSON.stringify(value, null, 2);
const ids = (text: string) => text.split(/[\s,]+/).filter(Boolean);
const clock = (ms: number) => new Date(ms).toLocaleTimeString([], { hour12: false });
const short = (id: string) => (id.length > 12 ? `…${id.slice(-8)}` : id);

/** Text as `{"text": …}`, unless it is a JSON object or array. */
function bodyOf(text: string): unknown {
  const t = text.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    try {
      return JSON.parse(t);
    } catch {
      // not JSON after all: plain text
    }
  }
  return { text };
}

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// ---- views ----

function show(view: string): void {
  for (const tab of document.querySelectorAll<HTMLButtonElement>('[data-view]')) {
    const on = tab.dataset.view === view;
    tab.setAttribute('aria-selected', String(on));
    document.getElementById(tab.dataset.view!)!.hidden = !on;
  }
  const url = new URL(location.href);
  url.searchParams.set('view', view);
  history.replaceState(null, '', url);
  if (view === 'admin') void refreshStats();
}
for (const tab of document.querySelectorAll<HTMLButtonElement>('[data-view]')) tab.addEventListener('click', () => show(tab.dataset.view!));

// ---- conversation ----

const stateEl = byId('conn-state');
const messagesEl = byId<HTMLOListElement>('messages');
const eventsEl = byId<HTMLOListElement>('events');
const sendButton = byId<HTMLButtonElement>('send-submit');
const MAX_SHOWN = 500;

let wsUrl = '';
let client: WxgateClient | undefined;
let me: { user: string; device: string } | undefined;
let signedInAt = 0;

function event(what: string, detail = '', error = false): void {
  const li = h('li', error ? { class: 'error' } : {}, `${clock(Date.now())} `, h('b', {}, what), detail ? ` ${detail}` : '');
  li.dataset.event = what;
  eventsEl.prepend(li);
  while (eventsEl.childElementCount > 200) eventsEl.lastElementChild!.remove();
}

function setState(state: string): void {
  stateEl.dataset.state = state;
  stateEl.textContent = state;
  sendButton.disabled = !client;
}

function toLabel(to: Message['to']): string {
  if ('user' in to) return `→ ${to.user}`;
  if ('group' in to) return `→ #${to.group}`;
  if ('wechat' in to) return `→ wechat ${to.wechat.openId}`;
  return to.push === 'all' ? '→ everyone' : '→ push';
}

function bodyText(body: unknown): string {
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    if (typeof b.text === 'string' && Object.keys(b).length === 1) return b.text;
  }
  return JSON.stringify(body);
}

function entry(dir: 'in' | 'out', from: string, to: Message['to'], body: unknown, ts: number, state: string, tags: string[]): HTMLLIElement {
  const meta = h('div', { class: 'meta' }, h('b', { 'data-testid': 'message-from' }, from), h('span', {}, toLabel(to)), h('time', {}, clock(ts)));
  for (const tag of tags) meta.append(h('span', { class: 'tag' }, tag));
  const li = h('li', { 'data-testid': 'message', 'data-dir': dir, 'data-from': from, 'data-state': state }, meta, h('div', { class: 'body', 'data-testid': 'message-body' }, bodyText(body)));
  messagesEl.append(li);
  while (messagesEl.childElementCount > MAX_SHOWN) messagesEl.firstElementChild!.remove();
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

function received(m: Message): void {
  const mine = m.from === me?.user;
  const tags = [short(m.msgId)];
  if (m.ts < signedInAt) tags.push('history');
  if (mine) tags.push('other device');
  const li = entry(mine ? 'out' : 'in', m.from, m.to, m.body, m.ts, 'received', tags);
  li.dataset.msgid = m.msgId;
}

function signOut(): void {
  const old = client;
  client = undefined;
  me = undefined;
  old?.close();
  messagesEl.replaceChildren();
  byId('me').textContent = '';
  byId('signout').hidden = true;
  delete stateEl.dataset.synced;
  setState('signed-out');
  stateEl.textContent = 'signed out';
}

function signIn(user: string, device: string): void {
  signOut();
  me = { user, device };
  signedInAt = Date.now();
  byId('me').textContent = `${user} / ${device}`;
  byId('signout').hidden = false;
  // The token provider runs before every (re)connect: a fresh token, minted by the console's server.
  const c = new WxgateClient({
    url: wsUrl,
    token: async () => (await api<{ token: string }>('POST', '/v1/tokens', { userId: user, deviceId: device, ttlSeconds: 3600 })).token,
  });
  client = c;
  c.on('state', (s) => {
    if (client !== c) return;
    setState(s.state);
    event(s.state, [s.reason, s.delayMs === undefined ? '' : `next try in ${s.delayMs} ms`].filter(Boolean).join(', '));
  });
  c.on('message', (m) => client === c && received(m));
  c.on('synced', () => {
    if (client !== c) return;
    stateEl.dataset.synced = '1';
    event('synced');
  });
  c.on('status', (s) => client === c && event('status', `${short(s.msgId)} ${s.state}${s.errcode ? ` (${s.errcode})` : ''}`));
  c.on('error', (e) => client === c && event(e.code, e.message, true));
  c.connect();
}

byId<HTMLFormElement>('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  const user = (form.elements.namedItem('user') as HTMLInputElement).value.trim();
  const device = (form.elements.namedItem('device') as HTMLInputElement).value.trim() || 'browser';
  if (user) signIn(user, device);
});
byId('signout').addEventListener('click', signOut);

byId<HTMLFormElement>('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!client || !me) return;
  const form = e.currentTarget as HTMLFormElement;
  const kind = (form.elements.namedItem('kind') as HTMLSelectElement).value;
  const to = (form.elements.namedItem('to') as HTMLInputElement).value.trim();
  const textInput = form.elements.namedItem('text') as HTMLInputElement;
  const body = bodyOf(textInput.value);
  const target: Target = kind === 'group' ? { group: to } : { user: to };
  textInput.value = '';
  const li = entry('out', me.user, target, body, Date.now(), 'pending', ['sending…']);
  const tag = li.querySelector('.tag')!;
  client.send(target, body).then(
    (ack) => {
      li.dataset.state = 'acked';
      li.dataset.msgid = ack.msgId;
      tag.textContent = `✓ ${short(ack.msgId)}`;
    },
    (err: WxgateError) => {
      li.dataset.state = 'failed';
      tag.textContent = `✗ ${err.code}`;
      li.title = err.message;
      event(`send ${err.code}`, err.message, true);
    },
  );
});

// ---- admin ----

async function refreshStats(): Promise<void> {
  try {
    const stats = await api<{ online: number; users: number }>('GET', '/v1/stats');
    byId('stats-online').textContent = String(stats.online);
    byId('stats-users').textContent = String(stats.users);
    byId('stats-at').textContent = `updated ${clock(Date.now())}`;
  } catch (e) {
    byId('stats-at').textContent = describe(e);
  }
}
byId('stats-refresh').addEventListener('click', () => void refreshStats());
setInterval(() => {
  if (!document.getElementById('admin')!.hidden && document.visibilityState === 'visible') void refreshStats();
}, 5000);

interface Job {
  jobId: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  targeted: number;
  delivered: number;
  gone: number;
  failed: number;
}

let watching = 0;
async function watchJob(jobId: string): Promise<void> {
  const run = ++watching;
  const box = byId('job');
  const bar = byId<HTMLProgressElement>('job-progress');
  const label = byId('job-state');
  box.hidden = false;
  const deadline = Date.now() + 10 * 60_000;
  while (run === watching) {
    try {
      const job = await api<Job>('GET', `/v1/jobs/${encodeURIComponent(jobId)}`);
      const handled = job.delivered + job.gone + job.failed;
      bar.max = Math.max(1, job.targeted);
      bar.value = job.state === 'done' ? bar.max : handled;
      label.dataset.state = job.state;
      label.textContent = `job ${short(job.jobId)} ${job.state}: targeted ${job.targeted}, delivered ${job.delivered}, gone ${job.gone}, failed ${job.failed}`;
      if (job.state === 'done' || job.state === 'failed') return void refreshStats();
    } catch (e) {
      label.textContent = describe(e);
    }
    if (Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const pushKind = byId<HTMLSelectElement>('push-kind');
pushKind.addEventListener('change', () => {
  const to = byId<HTMLInputElement>('push-to');
  to.disabled = pushKind.value === 'all';
  to.placeholder = pushKind.value === 'group' ? 'team' : pushKind.value === 'all' ? 'every online connection (not stored)' : 'alice, bob';
});

byId<HTMLFormElement>('push-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  const kind = (form.elements.namedItem('kind') as HTMLSelectElement).value;
  const to = (form.elements.namedItem('to') as HTMLInputElement).value.trim();
  const body = bodyOf((form.elements.namedItem('body') as HTMLTextAreaElement).value);
  const result = byId('push-result');
  const target = kind === 'all' ? { all: true } : kind === 'group' ? { group: to } : { users: ids(to) };
  watching++;
  byId('job').hidden = true;
  result.textContent = 'pushing…';
  try {
    const answer = await api<{ msgId: string; jobId?: string }>('POST', '/v1/push', { to: target, body });
    result.textContent = pretty(answer);
    result.dataset.msgid = answer.msgId;
    if (answer.jobId) void watchJob(answer.jobId);
  } catch (err) {
    result.textContent = describe(err);
  }
});

const connectionsUser = () => byId<HTMLInputElement>('connections-user').value.trim();

async function showConnections(user: string): Promise<void> {
  const rows = byId('connections');
  try {
    const { connections } = await api<{ connections: Array<{ connectionId: string; deviceId: string; connectedAt: number }> }>(
      'GET',
      `/v1/users/${encodeURIComponent(user)}/connections`,
    );
    rows.replaceChildren(
      ...connections.map((c) =>
        h('tr', { 'data-testid': 'connection-row' }, h('td', {}, c.deviceId), h('td', {}, h('code', {}, c.connectionId)), h('td', {}, clock(c.connectedAt))),
      ),
    );
    byId('connections-result').textContent = `${user}: ${connections.length} connection${connections.length === 1 ? '' : 's'}`;
  } catch (e) {
    byId('connections-result').textContent = describe(e);
  }
}

byId<HTMLFormElement>('connections-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void showConnections(connectionsUser());
});
byId('kick').addEventListener('click', async () => {
  const user = connectionsUser();
  const result = byId('connections-result');
  if (!user) return;
  try {
    const { closed } = await api<{ closed: number }>('DELETE', `/v1/users/${encodeURIComponent(user)}/connections`);
    byId('connections').replaceChildren();
    result.textContent = `kicked ${user}: closed ${closed}`;
    result.dataset.closed = String(closed);
    void refreshStats();
  } catch (err) {
    result.textContent = describe(err);
  }
});

async function changeGroup(change: 'add' | 'remove'): Promise<void> {
  const group = byId<HTMLInputElement>('group-id').value.trim();
  const users = ids(byId<HTMLInputElement>('group-users').value);
  const result = byId('group-result');
  if (!group || !users.length) return void (result.textContent = 'a group id and at least one user');
  try {
    result.textContent = pretty(await api('PUT', `/v1/groups/${encodeURIComponent(group)}/members`, { [change]: users }));
    result.dataset.done = change;
  } catch (e) {
    result.textContent = describe(e);
  }
}
byId<HTMLFormElement>('group-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void changeGroup('add');
});
byId('group-remove').addEventListener('click', () => void changeGroup('remove'));
byId('group-list').addEventListener('click', async () => {
  const group = byId<HTMLInputElement>('group-id').value.trim();
  const result = byId('group-result');
  try {
    const page = await api<{ members: string[]; next?: string | null }>('GET', `/v1/groups/${encodeURIComponent(group)}/members?limit=100`);
    result.textContent = `${page.members.join(', ') || '(no members)'}${page.next ? `\nmore after ${page.next}` : ''}`;
  } catch (e) {
    result.textContent = describe(e);
  }
});

// ---- start ----

async function start(): Promise<void> {
  const view = new URLSearchParams(location.search).get('view');
  show(view === 'admin' ? 'admin' : 'conversation');
  try {
    const config = await api<{ wsUrl: string; apiUrl: string; keyId: string; mode: string }>('GET', '/config');
    wsUrl = config.wsUrl;
    byId('target').textContent = `${config.mode} · ${config.wsUrl} · key ${config.keyId}`;
    byId<HTMLButtonElement>('signin-submit').disabled = false;
    document.body.dataset.ready = '1';
  } catch (e) {
    byId('target').textContent = describe(e);
    byId<HTMLButtonElement>('signin-submit').disabled = true;
  }
}
void start();
