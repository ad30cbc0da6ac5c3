import { DynamoSendRateStore } from '../adapters/dynamo-send-rate-store';
import { systemClock } from '../domain/clock';
import type { SendRateDeps } from '../domain/send-rate';
import { dynamoDocumentClient } from './aws-clients';
import { sendRatePerUser, tableName } from './config';

/** The limits that protect the account (docs/architecture.md, "Limits"), wired once per instance. */
let sendRateStore: DynamoSendRateStore | undefined;

export const sendRateDeps = (): SendRateDeps => ({
  store: (sendRateStore ??= new DynamoSendRateStore(dynamoDocumentClient(), tableName('admin'))),
  clock: systemClock,
  perSecond: sendRatePerUser(),
});
