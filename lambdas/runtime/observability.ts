import { Logger } from '@aws-lambda-powertools/logger';
import { search } from '@aws-lambda-powertools/logger/correlationId';
import { Tracer } from '@aws-lambda-powertools/tracer';

/**
 * One logger and tracer per process; the service name comes from POWERTOOLS_SERVICE_NAME.
 * `search` (JMESPath, from @aws-lambda-powertools/jmespath) resolves the correlation id path.
 */
export const logger = new Logger({ serviceName: 'wxgate', correlationIdSearchFn: search });
export const tracer = new Tracer({ serviceName: 'wxgate' });
