import { isReservedUserId, isValidId } from './client-token';
import { badRequest, GatewayError } from './errors';
import { assertBodySize } from './frames';
import * as z from './validation';

/** Request bodies of the admin API (docs/admin-api.md). A bad one is a 400 naming the field. */
const id = () => z.string().check(z.refine(isValidId, 'must be 1-128 characters of [A-Za-z0-9_.:@-]'));

export const MAX_PUSH_USERS = 10_000;
/**
 * The listed user ids of one push, as JSON: the list travels on the FIFO uplink queue next to a
 * body of up to 96 KiB escaped (SQS takes 256 KiB) and is frozen in the message's row (DynamoDB
 * takes 400 KB). 100 KiB is 10,000 ids of 7 characters, or about 2,800 of 36.
 */
export const MAX_PUSH_USERS_BYTES = 100 * 1024;
export const MAX_MEMBER_CHANGES = 1_000;
/** Longest client token the API mints: 30 days. */
export const MAX_TOKEN_TTL_SECONDS = 30 * 86_400;

// Schemas are built at their first use (validation.ts, lazySchema), not when this module loads.
const tokenRequest = /* @__PURE__ */ z.lazySchema(() =>
  z.strictObject({
    userId: id().check(z.refine((u) => !isReservedUserId(u), 'must not start with "wechat:" (reserved for WeChat users)')),
    deviceId: z.optional(id()),
    ttlSeconds: z.optional(z.number().check(z.int(), z.gte(60), z.lte(MAX_TOKEN_TTL_SECONDS))),
  }),
);

const pushRequest = /* @__PURE__ */ z.lazySchema(() =>
  z.strictObject({
    to: z.union([
      z.strictObject({ users: z.array(id()).check(z.minLength(1), z.maxLength(MAX_PUSH_USERS)) }),
      z.strictObject({ group: id() }),
      z.strictObject({ all: z.literal(true) }),
    ]),
    body: z.unknown().check(z.refine((value) => value !== undefined, 'body is required')),
  }),
);

const membersRequest = /* @__PURE__ */ z.lazySchema(() =>
  z
    .strictObject({
      add: z.optional(z.array(id()).check(z.maxLength(MAX_MEMBER_CHANGES))),
      remove: z.optional(z.array(id()).check(z.maxLength(MAX_MEMBER_CHANGES))),
    })
    .check(z.refine((r) => (r.add?.length ?? 0) + (r.remove?.length ?? 0) > 0, 'add or remove at least one member')),
);

const schemas = { token: tokenRequest, push: pushRequest, members: membersRequest } as const;
type RequestOf<K extends keyof typeof schemas> = z.infer<ReturnType<(typeof schemas)[K]>>;
export type TokenRequestBody = RequestOf<'token'>;
export type PushRequestBody = RequestOf<'push'>;
export type MembersRequestBody = RequestOf<'members'>;

export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw || 'null');
  } catch {
    throw badRequest('body is not valid JSON');
  }
}

export function parseRequestBody<K extends keyof typeof schemas>(kind: K, raw: string): RequestOf<K> {
  const value = parseJson(raw);
  const result = z.safeParse(schemas[kind](), value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    throw badRequest(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  if (kind === 'push') {
    const push = result.data as PushRequestBody;
    assertBodySize(push.body);
    if ('users' in push.to) {
      const bytes = Buffer.byteLength(JSON.stringify(push.to.users), 'utf8');
      if (bytes > MAX_PUSH_USERS_BYTES) throw badRequest(`to.users: ${Math.ceil(bytes / 1024)} KiB of user ids; one push takes at most ${MAX_PUSH_USERS_BYTES / 1024} KiB (split it into several pushes)`);
    }
  }
  return result.data as RequestOf<K>;
}

/**
 * The group-size limit (docs/architecture.md, "Limits"): a change that could take the group past
 * `max` members is refused with 409. Every listed addition counts as new (no read per user), and
 * concurrent changes are not serialized, so the limit is approximate by at most one request's
 * additions.
 */
export function checkGroupSize(current: number, change: MembersRequestBody, max: number): void {
  const after = current + (change.add?.length ?? 0) - (change.remove?.length ?? 0);
  if (after > max) throw new GatewayError('conflict', `the group would have up to ${after} members; the limit is ${max}`);
}

export function pathId(value: string | undefined, name: string): string {
  if (!isValidId(value)) throw badRequest(`${name} must be 1-128 characters of [A-Za-z0-9_.:@-]`);
  return value;
}

/** `?limit=` of a paged GET: 1..1000, default 100. */
export function pageLimit(raw: string | undefined): number {
  if (raw === undefined) return 100;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('limit must be an integer from 1 to 1000');
  return limit;
}
