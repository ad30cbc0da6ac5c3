import { parseClientFrame } from '../domain/frames';
import { sendMessage } from '../domain/send-message';
import { sendDeps } from '../runtime/dependencies';
import { wsRoute } from '../runtime/middleware';
import { countMetric, recordDelivery, withMetrics } from '../runtime/observability';
import { callerOf } from '../runtime/ws-event';

/**
 * `send`: the ack is posted to the sender as soon as the message is queued, before live
 * delivery, so it does not wait for the fan-out. Errors come back as error frames.
 */
export const handler = wsRoute(async (event) => {
  const frame = parseClientFrame('send', event.body);
  const caller = callerOf(event);
  const { delivery, duplicate } = await sendMessage(sendDeps(), caller, frame);
  countMetric(duplicate ? 'sendRetriesDeduplicated' : 'messagesQueued');
  if (delivery) recordDelivery('live', delivery);
  return undefined;
}).use(withMetrics());
