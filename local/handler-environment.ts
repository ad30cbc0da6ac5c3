import { env, queues, tables, type QueueId, type TableId } from '../lib/gateway-declaration';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './local-names';

export interface HandlerEnvironmentInput {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  managementEndpoint: string;
  jwtSecret: string;
  /** `keyId:secret,...` for the admin API. */
  adminKeys: string;
  tableNames: Record<TableId, string>;
  queueUrls: Record<QueueId, string>;
  extra?: Record<string, string>;
}

/**
 * What the handlers find in process.env in local mode. The AWS SDK v3 reads the
 * service-specific endpoint variables (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS), so the
 * handler code has no local special case. Everything runs in this one process, so this is
 * applied to process.env before the first handler module is imported.
 */
export function handlerEnvironment(input: HandlerEnvironmentInput): Record<string, string> {
  const vars: Record<string, string> = {
    AWS_REGION: LOCAL_REGION,
    AWS_DEFAULT_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: input.dynamoEndpoint,
    AWS_ENDPOINT_URL_SQS: input.sqsEndpoint,
    [env.managementEndpoint]: input.managementEndpoint,
    [env.jwtSecretValue]: input.jwtSecret,
    [env.adminKeysValue]: input.adminKeys,
    POWERTOOLS_TRACE_ENABLED: 'false',
    POWERTOOLS_SERVICE_NAME: 'wxgate',
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    POWERTOOLS_METRICS_DISABLED: 'true',
  };
  for (const [id, table] of Object.entries(tables)) vars[table.envVar] = input.tableNames[id as TableId];
  for (const [id, queue] of Object.entries(queues)) vars[queue.envVar] = input.queueUrls[id as QueueId];
  return { ...vars, ...(input.extra ?? {}) };
}

export function applyHandlerEnvironment(vars: Record<string, string>): void {
  // Real credentials from the developer's shell must not mix with the fake local keys.
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  for (const [name, value] of Object.entries(vars)) process.env[name] = value;
}
