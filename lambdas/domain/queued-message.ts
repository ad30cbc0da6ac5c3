import { z } from 'zod';
import { recipientSchema } from './frames';
import { MAX_CARRIED_AUDIENCE, type QueuedMessage } from './messaging-ports';

/** Validates what comes off the uplink queue; a record that fails this goes to the DLQ, not lost. */
const queuedMessageSchema = z.object({
  msgId: z.string().length(26),
  from: z.string().min(1),
  fromDevice: z.string().min(1),
  fromConnection: z.string(),
  to: z.union([recipientSchema, z.strictObject({ users: z.array(z.string().min(1)).min(1) })]),
  body: z.unknown(),
  ts: z.number().int().positive(),
  origin: z.enum(['admin', 'wechat']).optional(),
  audience: z.array(z.string().min(1)).min(1).max(MAX_CARRIED_AUDIENCE).optional(),
  liveDelivery: z.literal('fanout').optional(),
});

export function parseQueuedMessage(raw: string): QueuedMessage {
  return queuedMessageSchema.parse(JSON.parse(raw)) as QueuedMessage;
}
