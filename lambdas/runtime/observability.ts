import { Logger } from '@aws-lambda-powertools/logger';
import { Tracer } from '@aws-lambda-powertools/tracer';

/**
 * Resolves a plain dotted path (`requestContext.requestId`) in the event. The logger's own
 * `@aws-lambda-powertools/logger/correlationId` search needs the optional peer package
 * `@aws-lambda-powertools/jmespath`, which wxgate does not ship; a dotted path is all the
 * correlation id lookup needs.
 */
export const dottedPathSearch = (expression: string, data: unknown): unknown =>
  expression.split('.').reduce<unknown>((value, key) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined), data);

/** One logger and tracer per process; the service name comes from POWERTOOLS_SERVICE_NAME. */
export const logger = new Logger({ serviceName: 'wxgate', correlationIdSearchFn: dottedPathSearch });
export const tracer = new Tracer({ serviceName: 'wxgate' });
