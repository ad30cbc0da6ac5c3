import { parseClientFrame } from '../domain/frames';
import { admitSend } from '../domain/send-rate';
import { sendMessage } from '../domain/send-message';
import { sendRateDeps } from '../runtime/limit-dependencies';
import { sendDeps } from '../runtime/dependencies';
import { wsRoute } from '../runtime/ws-route';
import { countMetric, logger, recordDelivery, withMetrics } from '../runtime/observability';
import { callerOf } from '../runtime/ws-event';

/**
 * `send`: the user's send rate is checked first (`rate_limited` with `retryAfterMs`); the ack is posted to the sender as soon as the message is queued, before live
 * delivery, so it does not wait for the fan-out. Errors come back as error frames.
 */
export const handler = wsRoute(async (event) => {
  try {
    const frame = parseClientFrame('send', event.body);
    const caller = callerOf(event);
    await admitSend(sendRateDeps(), caller.userId);
    const { msgId, delivery, duplicate, afterAckFailures } = await sendMessage(sendDeps(), caller, frame);
    countMetric(duplicate ? 'sendRetriesDeduplicated' : 'messagesQueued');
    logger.debug('message queued', { msgId, duplicate });
    if (delivery) recordDelivery('live', delivery);
    for (const { step, error } of afterAckFailures) {
      // The message is queued and acked; this is for operators, never an error frame.
      countMetric('failuresAfterAck');
      logger.warn('failure after the ack (the message is queued and will be stored)', { msgId, step, error: error as Error });
    }
    return undefined;
  } catch (err) {
    countMetric('sendsRefused'); // and the invocation always has a metric to flush
    throw err;
  }
}).use(withMetrics());
