import type { DynamoDBStreamEvent } from 'aws-lambda';
import { connectionChangeOf } from '../adapters/dynamo-presence-store';
import { countPresence } from '../domain/presence';
import { presenceDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, logger, withMetrics } from '../runtime/observability';

/**
 * Connections table stream consumer (NEW_AND_OLD_IMAGES): moves the presence counters exactly
 * once per insert and removal (domain/presence.ts says why). Any failure throws, so the event
 * source mapping retries the whole batch; changes counted before the failure are recognised by
 * their markers and not counted again.
 */
export const handler = observed<DynamoDBStreamEvent, void>(async (event) => {
  const report = await countPresence(presenceDeps(), event.Records.map(connectionChangeOf));
  countMetric('presenceCounted', report.counted);
  countMetric('presenceAlreadyCounted', report.alreadyCounted);
  countMetric('presenceConflicts', report.conflicts);
  if (report.clamped.length > 0) {
    countMetric('presenceClamped', report.clamped.length);
    logger.warn('presence: removals of users already at 0 were not counted (a row older than the stream, or a lost record)', {
      clamped: report.clamped,
    });
  }
  logger.debug('presence counted', { ...report, clamped: report.clamped.length });
}).use(withMetrics());
