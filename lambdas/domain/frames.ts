import { isValidId } from './client-token';
import { badRequest, tooLarge, type ErrorCode } from './errors';
import * as z from './validation';

/** docs/protocol.md: a serialized `body` may be at most 32 KiB. */
export const MAX_BODY_BYTES = 32 * 1024;
export const DEFAULT_SYNC_LIMIT = 100;
export const MAX_SYNC_LIMIT = 500;
/**
 * Deepest nesting of arrays and objects a frame may have (the frame object itself is level 1).
 * Checked on the raw text before JSON.parse: a 10 KB frame of 5,000 nested arrays would
 * otherwise overflow the stack wherever the value is walked recursively.
 */
export const MAX_FRAME_DEPTH = 64;

const id = () => z.string().check(z.refine(isValidId, 'must be 1-128 characters of [A-Za-z0-9_.:@-]'));
/**
 * A client frame `id`: 1-128 UTF-16 code units of well-formed Unicode. The length is counted the
 * same way everywhere (the echo in error frames too), and a lone surrogate is refused: it cannot
 * be stored as UTF-8, so two different ids could otherwise share one de-duplication key.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const isClientFrameId = (value: unknown): value is string =>
  typeof value === 'string' && value.length >= 1 && value.length <= 128 && !LONE_SURROGATE.test(value);
const clientFrameId = () => z.string().check(z.refine(isClientFrameId, 'must be 1-128 characters of well-formed Unicode'));

// Schemas are built at their first use (validation.ts, lazySchema), not when this module loads.
export const recipientSchema = /* @__PURE__ */ z.lazySchema(() =>
  z.union([
    z.strictObject({ user: id() }),
    z.strictObject({ group: id() }),
    z.strictObject({ wechat: z.strictObject({ accountId: id(), openId: z.string().check(z.minLength(1), z.maxLength(128)) }) }),
  ]),
);
export type Recipient = z.infer<ReturnType<typeof recipientSchema>>;

const sendSchema = /* @__PURE__ */ z.lazySchema(() =>
  z.object({
    action: z.literal('send'),
    id: z.optional(clientFrameId()),
    to: recipientSchema(),
    body: z.unknown().check(z.refine((value) => value !== undefined, 'body is required')),
  }),
);
const syncSchema = /* @__PURE__ */ z.lazySchema(() =>
  z.object({
    action: z.literal('sync'),
    id: z.optional(clientFrameId()),
    after: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
    limit: z.optional(z.number().check(z.int(), z.gte(1), z.lte(MAX_SYNC_LIMIT))),
    /**
     * Another inbox than the caller's own: `wechat:{accountId}`, the account inbox that holds every
     * WeChat message of the account (members of the group `wechat:{accountId}` only).
     */
    inbox: z.optional(z.string().check(z.regex(/^wechat:[A-Za-z0-9_-]{1,64}$/, 'must be "wechat:{accountId}"'))),
  }),
);
const pingSchema = /* @__PURE__ */ z.lazySchema(() => z.object({ action: z.literal('ping'), id: z.optional(clientFrameId()) }));

export type SendFrame = z.infer<ReturnType<typeof sendSchema>>;
export type SyncFrame = z.infer<ReturnType<typeof syncSchema>>;
export type PingFrame = z.infer<ReturnType<typeof pingSchema>>;

const schemas = { send: sendSchema, sync: syncSchema, ping: pingSchema } as const;
type FrameOf<A extends keyof typeof schemas> = z.infer<ReturnType<(typeof schemas)[A]>>;

/** Parses a raw WebSocket frame as JSON; a non-object is a bad request. */
export function parseJsonFrame(raw: string | undefined | null): Record<string, unknown> {
  if (!raw) throw badRequest('empty frame; frames are JSON objects with an "action"');
  if (nestingDepthExceeds(raw, MAX_FRAME_DEPTH)) throw badRequest(`frame nests deeper than ${MAX_FRAME_DEPTH} levels of arrays and objects`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest('frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('frame must be a JSON object');
  return value as Record<string, unknown>;
}

/**
 * Whether JSON text nests arrays/objects deeper than `max`, by one linear scan that skips
 * strings (escapes included). It does not validate the JSON; JSON.parse does that next.
 */
export function nestingDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** The client `id` to echo in a reply, if the frame had a usable one. */
export function frameIdOf(raw: string | undefined | null): string | undefined {
  if (!raw || nestingDepthExceeds(raw, MAX_FRAME_DEPTH)) return undefined;
  try {
    const value = JSON.parse(raw ?? '') as { id?: unknown };
    return isClientFrameId(value?.id) ? value.id : undefined;
  } catch {
    return undefined;
  }
}

export function parseClientFrame<A extends keyof typeof schemas>(action: A, raw: string | undefined | null): FrameOf<A> {
  const result = z.safeParse(schemas[action](), parseJsonFrame(raw));
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'frame';
    throw badRequest(`invalid ${action} frame: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  const frame = result.data as FrameOf<A>;
  if (action === 'send') assertBodySize((frame as SendFrame).body);
  return frame;
}

export function assertBodySize(body: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(body), 'utf8');
  if (bytes > MAX_BODY_BYTES) throw tooLarge(`body is ${bytes} bytes once serialized; the limit is ${MAX_BODY_BYTES}`);
}

// ---- server frames -------------------------------------------------------------------

/** Where a message frame says it went: a client's recipient, or an admin push (`users` or `all`). */
export type FrameTarget = Recipient | { push: 'users' | 'all' };

export interface MessageFrame {
  type: 'message';
  msgId: string;
  from: string;
  to: FrameTarget;
  body: unknown;
  ts: number;
}

export type ServerFrame =
  | { type: 'ack'; id?: string; msgId: string; ts: number }
  | { type: 'pong'; id?: string; ts: number }
  | { type: 'sync'; id?: string; messages: MessageFrame[]; next: string | null; cursor: string }
  | { type: 'error'; id?: string; code: ErrorCode; message: string; retryAfterMs?: number }
  | MessageFrame;

export const errorFrame = (code: ErrorCode, message: string, id?: string, retryAfterMs?: number): ServerFrame => ({
  type: 'error',
  id,
  code,
  message,
  ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
});
