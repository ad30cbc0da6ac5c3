#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { applyNagChecks } from '../lib/nag';
import { WxgateStack } from '../lib/wxgate-stack';

const app = new App();

// No context lookups: `cdk synth` works offline and without credentials. Without
// CDK_DEFAULT_ACCOUNT/REGION the stack is environment-agnostic.
new WxgateStack(app, 'Wxgate', {
  description: 'wxgate: serverless real-time push gateway (WebSocket API, Lambda, DynamoDB, SQS)',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  // `cdk deploy -c reserveConcurrency=false` on an account too small to reserve concurrency from.
  reserveConcurrency: app.node.tryGetContext('reserveConcurrency') !== 'false' && app.node.tryGetContext('reserveConcurrency') !== false,
});

applyNagChecks(app);
