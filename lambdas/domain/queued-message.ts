import { recipientSchema } from './frames';
import { MAX_CARRIED_AUDIENCE, type QueuedMessage } from './messaging-ports';
import * as z from './validation';

/** Validates what comes off the uplink queue; a record that fails this goes to the DLQ, not lost. */
const nonEmpty = () => z.string().check(z.minLength(1));
const queuedMessageSchema = /* @__PURE__ */ z.lazySchema(() =>
  z.object({
    msgId: z.string().check(z.length(26)),
    from: nonEmpty(),
    fromDevice: nonEmpty(),
    fromConnection: z.string(),
    to: z.union([recipientSchema(), z.strictObject({ users: z.array(nonEmpty()).check(z.minLength(1)) })]),
    body: z.unknown(),
    ts: z.number().check(z.int(), z.gt(0)),
    origin: z.optional(z.enum(['admin', 'wechat'])),
    audience: z.optional(z.array(nonEmpty()).check(z.minLength(1), z.maxLength(MAX_CARRIED_AUDIENCE))),
    liveDelivery: z.optional(z.literal('fanout')),
  }),
);

export function parseQueuedMessage(raw: string): QueuedMessage {
  return z.parse(queuedMessageSchema(), JSON.parse(raw)) as QueuedMessage;
}
