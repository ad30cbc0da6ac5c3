import { functions, queues, tables, websocket, type FunctionId, type QueueId, type TableId } from '../../lib/gateway-declaration';
import { logicalIdOf, synthGateway } from './fixture';

const { stack, template } = synthGateway({ alarmEmail: 'ops@example.com' });
const bare = synthGateway();
const tuned = synthGateway({
  alarmThresholds: {
    functionErrors: 3,
    functionErrorsOf: { wsSend: 7 },
    functionThrottles: 4,
    oldestMessageAgeSeconds: { uplink: 60 },
    streamIteratorAgeSeconds: 30,
    webSocketIntegrationErrors: 11,
    webSocketExecutionErrors: 12,
    httpServerErrors: 13,
    deliveryFailures: 14,
    failuresAfterAck: 15,
    wechatOutboundFailed: 16,
  },
});

const functionIds = Object.keys(functions) as FunctionId[];
const queueIds = Object.keys(queues) as QueueId[];
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string }>;
const topicId = logicalIdOf(stack.monitoring.topic);
const alarmIds = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));

interface ExpectedAlarm {
  namespace: string;
  metricName: string;
  dimensions: Array<{ Name: string; Value: unknown }>;
  statistic: string;
  threshold: number;
  comparison: 'GreaterThanThreshold' | 'GreaterThanOrEqualToThreshold';
}

const ref = (construct: Parameters<typeof logicalIdOf>[0]) => ({ Ref: logicalIdOf(construct) });
const queueName = (queue: Parameters<typeof logicalIdOf>[0]) => ({ 'Fn::GetAtt': [logicalIdOf(queue), 'QueueName'] });
const service = [{ Name: 'service', Value: 'wxgate' }];
const wsStage = [
  { Name: 'ApiId', Value: ref(stack.webSocket.api) },
  { Name: 'Stage', Value: websocket.stageName },
];
const httpStage = [
  { Name: 'ApiId', Value: ref(stack.http.api) },
  { Name: 'Stage', Value: '$default' },
];
const streamConsumers = (Object.keys(tables) as TableId[]).flatMap((t) => {
  const decl = tables[t] as { stream?: { consumer: { function: string } } };
  return decl.stream ? [decl.stream.consumer.function as FunctionId] : [];
});

/** Every alarm the stack must have, with what it watches and when it fires (the documented defaults). */
const expected: Record<string, ExpectedAlarm> = {};
for (const q of queueIds) {
  expected[logicalIdOf(stack.monitoring.deadLetterAlarms[q])] = {
    namespace: 'AWS/SQS',
    metricName: 'ApproximateNumberOfMessagesVisible',
    dimensions: [{ Name: 'QueueName', Value: queueName(stack.queues.deadLetterQueues[q]) }],
    statistic: 'Maximum',
    threshold: 0,
    comparison: 'GreaterThanThreshold',
  };
  const decl: { visibilityTimeoutSeconds: number; maxDelaySeconds?: number } = queues[q];
  expected[logicalIdOf(stack.monitoring.oldestMessageAlarms[q])] = {
    namespace: 'AWS/SQS',
    metricName: 'ApproximateAgeOfOldestMessage',
    dimensions: [{ Name: 'QueueName', Value: queueName(stack.queues.queues[q]) }],
    statistic: 'Maximum',
    threshold: 2 * decl.visibilityTimeoutSeconds + (decl.maxDelaySeconds ?? 0),
    comparison: 'GreaterThanOrEqualToThreshold',
  };
}
for (const f of functionIds) {
  const fnDimensions = [{ Name: 'FunctionName', Value: ref(stack.functions[f].function) }];
  expected[logicalIdOf(stack.monitoring.errorAlarms[f])] = {
    namespace: 'AWS/Lambda',
    metricName: 'Errors',
    dimensions: fnDimensions,
    statistic: 'Sum',
    threshold: f === 'wsAuthorizer' ? 50 : 5,
    comparison: 'GreaterThanOrEqualToThreshold',
  };
  expected[logicalIdOf(stack.monitoring.throttleAlarms[f])] = {
    namespace: 'AWS/Lambda',
    metricName: 'Throttles',
    dimensions: fnDimensions,
    statistic: 'Sum',
    threshold: 1,
    comparison: 'GreaterThanOrEqualToThreshold',
  };
}
for (const f of streamConsumers) {
  expected[logicalIdOf(stack.monitoring.iteratorAgeAlarms[f]!)] = {
    namespace: 'AWS/Lambda',
    metricName: 'IteratorAge',
    dimensions: [{ Name: 'FunctionName', Value: ref(stack.functions[f].function) }],
    statistic: 'Maximum',
    threshold: 300_000,
    comparison: 'GreaterThanOrEqualToThreshold',
  };
}
const api = (metricName: string, dimensions: ExpectedAlarm['dimensions']): ExpectedAlarm => ({
  namespace: 'AWS/ApiGateway',
  metricName,
  dimensions,
  statistic: 'Sum',
  threshold: 5,
  comparison: 'GreaterThanOrEqualToThreshold',
});
expected[logicalIdOf(stack.monitoring.apiAlarms.webSocketIntegrationErrors)] = api('IntegrationError', wsStage);
expected[logicalIdOf(stack.monitoring.apiAlarms.webSocketExecutionErrors)] = api('ExecutionError', wsStage);
expected[logicalIdOf(stack.monitoring.apiAlarms.httpServerErrors)] = api('5xx', httpStage);
const emf = (metricName: string, threshold: number): ExpectedAlarm => ({
  namespace: 'wxgate',
  metricName,
  dimensions: service,
  statistic: 'Sum',
  threshold,
  comparison: 'GreaterThanOrEqualToThreshold',
});
for (const [metric, threshold] of [
  ['liveFailed', 10],
  ['lateFailed', 10],
  ['fanoutFailed', 10],
  ['failuresAfterAck', 5],
  ['wechatOutbound_failed', 5],
] as const) {
  expected[logicalIdOf(stack.monitoring.deliveryAlarms[metric])] = emf(metric, threshold);
}

describe('alarms', () => {
  test('exactly the expected alarms exist: per queue (DLQ, age), per function (errors, throttles), per stream consumer, per API, per delivery outcome', () => {
    expect(alarmIds.sort()).toEqual(Object.keys(expected).sort());
    expect(alarmIds).toHaveLength(queueIds.length * 2 + functionIds.length * 2 + streamConsumers.length + 3 + 5);
    expect(stack.monitoring.alarms).toHaveLength(alarmIds.length);
  });

  test.each(Object.entries(expected))('%s: metric, threshold, comparison, one 5-minute period, notifies the topic', (id, want) => {
    const p = resources[id]!.Properties;
    expect(p).toMatchObject({
      Namespace: want.namespace,
      MetricName: want.metricName,
      Statistic: want.statistic,
      Period: 300,
      Threshold: want.threshold,
      ComparisonOperator: want.comparison,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topicId }],
      OKActions: [{ Ref: topicId }],
    });
    expect(p.Dimensions).toEqual(want.dimensions);
    expect(p.AlarmDescription).toMatch(/docs\/operations\.md, "[^"]+"/);
  });

  test('every alarm description names a section that docs/operations.md has', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const headings = new Set([...doc.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.trim()));
    for (const id of alarmIds) {
      const section = /docs\/operations\.md, "([^"]+)"/.exec(String(resources[id]!.Properties.AlarmDescription))![1]!;
      expect({ id, section, found: headings.has(section) }).toEqual({ id, section, found: true });
    }
  });

  test('the age thresholds come from the declaration: twice the visibility timeout, plus the longest delay a sender sets', () => {
    const threshold = (q: QueueId) => resources[logicalIdOf(stack.monitoring.oldestMessageAlarms[q])]!.Properties.Threshold;
    expect(threshold('uplink')).toBe(720);
    expect(threshold('fanout')).toBe(720);
    expect(threshold('wechatInbound')).toBe(720);
    expect(threshold('wechatOutbound')).toBe(720 + 900);
  });

  test('every threshold is a prop', () => {
    const t = tuned.template.toJSON().Resources;
    const m = tuned.stack.monitoring;
    const threshold = (alarm: Parameters<typeof logicalIdOf>[0]) => t[logicalIdOf(alarm)].Properties.Threshold;
    expect(threshold(m.errorAlarms.wsConnect)).toBe(3);
    expect(threshold(m.errorAlarms.wsSend)).toBe(7);
    expect(threshold(m.errorAlarms.wsAuthorizer)).toBe(50); // its own default stays unless overridden
    expect(threshold(m.throttleAlarms.wsPing)).toBe(4);
    expect(threshold(m.oldestMessageAlarms.uplink)).toBe(60);
    expect(threshold(m.oldestMessageAlarms.fanout)).toBe(720);
    expect(threshold(m.iteratorAgeAlarms.presenceCounter!)).toBe(30_000);
    expect(threshold(m.apiAlarms.webSocketIntegrationErrors)).toBe(11);
    expect(threshold(m.apiAlarms.webSocketExecutionErrors)).toBe(12);
    expect(threshold(m.apiAlarms.httpServerErrors)).toBe(13);
    expect(threshold(m.deliveryAlarms.liveFailed)).toBe(14);
    expect(threshold(m.deliveryAlarms.lateFailed)).toBe(14);
    expect(threshold(m.deliveryAlarms.fanoutFailed)).toBe(14);
    expect(threshold(m.deliveryAlarms.failuresAfterAck)).toBe(15);
    expect(threshold(m.deliveryAlarms.wechatOutbound_failed)).toBe(16);
  });
});

describe('alarm topic', () => {
  test('encrypted with its own rotating KMS key, which CloudWatch may use', () => {
    const topic = resources[topicId]!.Properties;
    const keyId = logicalIdOf(stack.monitoring.topicKey);
    expect(topic.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    const key = resources[keyId]!.Properties as { EnableKeyRotation: boolean; KeyPolicy: { Statement: unknown[] } };
    expect(key.EnableKeyRotation).toBe(true);
    expect(key.KeyPolicy.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] }),
    );
  });

  test('refuses publishing without TLS, and lets only this account\'s CloudWatch alarms publish', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: topicId }],
      PolicyDocument: {
        Statement: [
          { Effect: 'Deny', Principal: '*', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } }, Resource: { Ref: topicId }, Sid: 'AllowPublishThroughSSLOnly' },
          {
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: { Ref: topicId },
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':alarm:*']] } },
            },
            Sid: 'CloudWatchAlarmsOfThisAccountPublish',
          },
        ],
        Version: '2012-10-17',
      },
    });
  });

  test('the email subscription exists only when the prop is given', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 1);
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: { Ref: topicId } });
    bare.template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  test('outputs the topic ARN and the dashboard name', () => {
    expect(template.findOutputs('AlarmTopicArn').AlarmTopicArn!.Value).toEqual({ Ref: topicId });
    expect(template.findOutputs('DashboardName').DashboardName!.Value).toEqual({ Ref: logicalIdOf(stack.monitoring.dashboard) });
  });
});

/** The dashboard body with every intrinsic replaced by `<LogicalId>` or `<LogicalId.Attr>`, parsed. */
function dashboardBody(): { widgets: Array<{ type: string; properties: Record<string, unknown> }> } {
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  expect(dashboards).toHaveLength(1);
  const body = dashboards[0]!.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const text = body['Fn::Join'][1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const p = part as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
      if (p.Ref) return `<${p.Ref}>`;
      if (p['Fn::GetAtt']) return `<${p['Fn::GetAtt'].join('.')}>`;
      throw new Error(`unexpected intrinsic in the dashboard body: ${JSON.stringify(part)}`);
    })
    .join('');
  return JSON.parse(text);
}

describe('dashboard', () => {
  const body = dashboardBody();
  const byTitle = (title: string) => {
    const widget = body.widgets.find((w) => w.properties.title === title);
    expect({ title, found: widget !== undefined }).toEqual({ title, found: true });
    return widget!.properties;
  };
  /** The metric arrays of a graph widget as `namespace/name` plus its dimension values. */
  const metricsOf = (title: string) => (byTitle(title).metrics as unknown[][]).map((m) => m.filter((x) => typeof x === 'string').join(' '));

  test('one dashboard, with the alarm status of every alarm', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const alarms = byTitle('Alarms').alarms as string[];
    expect(alarms.sort()).toEqual(alarmIds.map((id) => `<${id}.Arn>`).sort());
  });

  test('connections: ConnectCount of the stage, $disconnect invocations, presence changes', () => {
    const metrics = metricsOf('Connections opened and closed');
    expect(metrics).toContainEqual(`AWS/ApiGateway ConnectCount ApiId <${logicalIdOf(stack.webSocket.api)}> Stage ${websocket.stageName}`);
    expect(metrics).toContainEqual(`AWS/Lambda Invocations FunctionName <${logicalIdOf(stack.functions.wsDisconnect.function)}>`);
    expect(metrics).toContainEqual('wxgate presenceCounted service wxgate');
  });

  test('messages in and out: MessageCount and the counts the handlers emit', () => {
    expect(metricsOf('Messages in')).toEqual(
      expect.arrayContaining([
        `AWS/ApiGateway MessageCount ApiId <${logicalIdOf(stack.webSocket.api)}> Stage ${websocket.stageName}`,
        'wxgate messagesQueued service wxgate',
        'wxgate adminPushes service wxgate',
        'wxgate wechatCallbacks service wxgate',
      ]),
    );
    expect(metricsOf('Messages stored and out')).toEqual(
      expect.arrayContaining(['wxgate messagesStored service wxgate', 'wxgate liveDelivered service wxgate', 'wxgate lateDelivered service wxgate', 'wxgate fanoutDelivered service wxgate', 'wxgate wechatOutbound_sent service wxgate']),
    );
    expect(metricsOf('Delivery problems')).toEqual(
      expect.arrayContaining(['wxgate liveFailed service wxgate', 'wxgate lateFailed service wxgate', 'wxgate fanoutFailed service wxgate', 'wxgate failuresAfterAck service wxgate', 'wxgate liveGone service wxgate']),
    );
  });

  test('queue depth of every queue and dead-letter queue, and the age of every queue\'s oldest message', () => {
    const depth = metricsOf('Queue depth (visible messages; DLQ: dead-letter)');
    const age = metricsOf('Age of the oldest message (s)');
    for (const q of queueIds) {
      expect(depth).toContainEqual(`AWS/SQS ApproximateNumberOfMessagesVisible QueueName <${logicalIdOf(stack.queues.queues[q])}.QueueName>`);
      expect(depth).toContainEqual(`AWS/SQS ApproximateNumberOfMessagesVisible QueueName <${logicalIdOf(stack.queues.deadLetterQueues[q])}.QueueName>`);
      expect(age).toContainEqual(`AWS/SQS ApproximateAgeOfOldestMessage QueueName <${logicalIdOf(stack.queues.queues[q])}.QueueName>`);
    }
  });

  test('errors: every function\'s errors and throttles, and both APIs\' errors', () => {
    for (const f of functionIds) {
      const fn = `FunctionName <${logicalIdOf(stack.functions[f].function)}>`;
      expect(metricsOf('Function errors')).toContainEqual(`AWS/Lambda Errors ${fn}`);
      expect(metricsOf('Function throttles')).toContainEqual(`AWS/Lambda Throttles ${fn}`);
    }
    const api = metricsOf('API Gateway errors');
    const ws = `ApiId <${logicalIdOf(stack.webSocket.api)}> Stage ${websocket.stageName}`;
    const http = `ApiId <${logicalIdOf(stack.http.api)}> Stage $default`;
    expect(api).toEqual(
      expect.arrayContaining([`AWS/ApiGateway IntegrationError ${ws}`, `AWS/ApiGateway ExecutionError ${ws}`, `AWS/ApiGateway ClientError ${ws}`, `AWS/ApiGateway 5xx ${http}`, `AWS/ApiGateway 4xx ${http}`]),
    );
  });

  test('cold starts: Logs Insights over every function\'s REPORT lines with an Init Duration (Lambda has no cold-start metric)', () => {
    const logWidgets = body.widgets.filter((w) => w.type === 'log');
    expect(logWidgets).toHaveLength(2);
    for (const w of logWidgets) {
      const query = String(w.properties.query);
      expect(query).toContain('filter @type = "REPORT" and ispresent(@initDuration)');
      for (const f of functionIds) expect(query).toContain(`SOURCE '<${logicalIdOf(stack.functions[f].logGroup)}>'`);
    }
  });
});

describe('template hygiene', () => {
  test.each(functionIds)('%s depends on its role\'s policy, not on the role it references already (cfn-lint W3005)', (f) => {
    const fn = resources[logicalIdOf(stack.functions[f].function)] as { DependsOn?: string[] };
    const roleId = logicalIdOf(stack.functions[f].role);
    expect(fn.DependsOn).not.toContain(roleId);
    const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([, p]) =>
      (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId),
    );
    expect(policies.length).toBeGreaterThan(0);
    for (const [policyId] of policies) expect(fn.DependsOn).toContain(policyId);
  });
});
