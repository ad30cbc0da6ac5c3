#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { applyNagChecks } from '../lib/nag';
import { WxgateStack } from '../lib/wxgate-stack';

const app = new App();
/** A `-c name=value` flag: the CLI passes strings, cdk.json may hold booleans. */
const flag = (name: string): boolean => [true, 'true'].includes(app.node.tryGetContext(name));
const alarmEmail = app.node.tryGetContext('alarmEmail') as string | undefined;

// No context lookups: `cdk synth` works offline and without credentials. Without
// CDK_DEFAULT_ACCOUNT/REGION the stack is environment-agnostic.
new WxgateStack(app, 'Wxgate', {
  description: 'wxgate: serverless real-time push gateway (WebSocket API, Lambda, DynamoDB, SQS)',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  // `cdk deploy -c reserveConcurrency=false` on an account too small to reserve concurrency from.
  reserveConcurrency: app.node.tryGetContext('reserveConcurrency') !== 'false' && app.node.tryGetContext('reserveConcurrency') !== false,
  // `-c configureApiGatewayAccountLogging=true` sets the account's API Gateway logging role
  // (account- and Region-wide; see the prop and docs/operations.md, "First deploy").
  configureApiGatewayAccountLogging: flag('configureApiGatewayAccountLogging'),
  // `-c alarmEmail=ops@example.com` subscribes that address to every alarm.
  ...(alarmEmail ? { alarmEmail } : {}),
});

applyNagChecks(app);
