import { DynamoConnectionRegistry } from '../adapters/dynamo-connection-registry';
import { systemClock } from '../domain/clock';
import type { LifecycleDeps } from '../domain/connection-lifecycle';
import { dynamoDocumentClient } from './aws-clients';
import { connectionIdleTtlSeconds, tableName } from './config';

/**
 * Wires adapters to their SDK clients, once per Lambda instance. Handlers call these at
 * invocation time (not import time), so configuration errors surface as failed invocations
 * with a clear message and tests can set the environment first.
 */
const once = <T>(make: () => T): (() => T) => {
  let value: T | undefined;
  return () => (value ??= make());
};

export const connectionRegistry = once(() => new DynamoConnectionRegistry(dynamoDocumentClient(), tableName('connections')));

export const lifecycleDeps = (): LifecycleDeps => ({
  registry: connectionRegistry(),
  clock: systemClock,
  idleTtlSeconds: connectionIdleTtlSeconds(),
});
