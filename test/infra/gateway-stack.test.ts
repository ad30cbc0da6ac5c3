import { Match } from 'aws-cdk-lib/assertions';
import {
  env as envNames,
  functions,
  httpRoutes,
  queues,
  tables,
  websocket,
  webSocketTarget,
  type WebSocketRouteDeclaration,
  type FunctionDeclaration,
  type FunctionId,
  type IndexDeclaration,
  type TableDeclaration,
  type QueueId,
  type TableId,
} from '../../lib/gateway-declaration';
import { actionsOf, logicalIdOf, resourcesOf, statementsOfRole, synthGateway, type Statement } from './fixture';

const { stack, template } = synthGateway();
/** The same stack with every optional knob turned (built once, used by several tests). */
const tuned = synthGateway({
  webSocketRateLimit: 50,
  webSocketBurstLimit: 80,
  configureApiGatewayAccountLogging: true,
  connectionRowLifetimeSeconds: 9000,
  maxConnectionsPerUser: 3,
  inboxTtlDays: 7,
});

const functionIds = Object.keys(functions) as FunctionId[];
const tableIds = Object.keys(tables) as TableId[];
const queueIds = Object.keys(queues) as QueueId[];
const decl = (id: FunctionId): FunctionDeclaration => functions[id];

const fnLogicalId = (id: FunctionId) => logicalIdOf(stack.functions[id].function);
const roleLogicalId = (id: FunctionId) => logicalIdOf(stack.functions[id].role);
const tableLogicalId = (id: TableId) => logicalIdOf(stack.tables.tables[id]);
const queueLogicalId = (id: QueueId) => logicalIdOf(stack.queues.queues[id]);
const apiLogicalId = () => logicalIdOf(stack.webSocket.api);
const statements = (id: FunctionId) => statementsOfRole(template, roleLogicalId(id));
const fnProps = (id: FunctionId) => template.toJSON().Resources[fnLogicalId(id)].Properties;

/** Does this resource value (possibly an intrinsic) refer to the resource with this logical id? */
const mentions = (value: unknown, logicalId: string) => JSON.stringify(value).includes(`"${logicalId}"`);
/** Reading a table's stream (the stream event source's grant), checked on its own below. */
const STREAM_ACTIONS = ['dynamodb:ListStreams', 'dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'];
const isStreamStatement = (s: Statement) =>
  actionsOf(s).every((a) => STREAM_ACTIONS.includes(a)) && resourcesOf(s).every((r) => r === '*' || JSON.stringify(r).includes('StreamArn'));
const statementsOn = (id: FunctionId, logicalId: string) =>
  statements(id).filter((s) => !isStreamStatement(s) && resourcesOf(s).some((r) => mentions(r, logicalId)));
const allActions = (ss: Statement[]) => ss.flatMap(actionsOf);

const DYNAMO_WRITE = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'];

/**
 * Every DynamoDB grant of every function, by table (or `table/index/name`): the adapter methods
 * each handler can reach (lambdas/runtime/dependencies.ts), mapped to the commands they send.
 * A change here is a change of what a function may do in production (local mode does not enforce
 * IAM, so a missing action would only show there): review it against the adapters.
 *   connections  put: PutItem · remove, removeStale: DeleteItem · listByUser: Query byUser · scanPage: Scan
 *   messages     claimClientId, markChunkStored: PutItem · getClientIdClaim: GetItem · takeOver/release/
 *                markQueued, beginStore, markStored: UpdateItem · getMessageState, readInbox: Query ·
 *                put/deleteInboxRows: BatchWriteItem
 *   groups       isMember: GetItem · members, membersPage, countMembers: Query · add/removeMembers: BatchWriteItem
 *   admin        claimNonce, createJob: PutItem · getJob, isTaskDone, readStats: GetItem · markRunning/
 *                Failed, finishIfDone, send-rate admit: UpdateItem · openChildren, completeTask: Put+Update
 *                transactions · presence readState: BatchGetItem · applyBatch: Put/Update/Delete/ConditionCheck
 *   wechat       outbound create: PutItem (+ GetItem of an existing record) · get, token read: GetItem ·
 *                claim, settle, tryLease, saveToken, releaseLease: UpdateItem
 */
const PERSIST_MESSAGES = ['BatchWriteItem', 'PutItem', 'Query', 'UpdateItem'];
const DELIVERY = { connections: ['DeleteItem'], 'connections/index/byUser': ['Query'] };
const EXPECTED_DYNAMO_GRANTS: Record<FunctionId, Record<string, string[]>> = {
  wsAuthorizer: {},
  wsConnect: { connections: ['DeleteItem', 'PutItem'], 'connections/index/byUser': ['Query'] },
  wsDisconnect: { connections: ['DeleteItem'] },
  wsDefault: {},
  wsPing: {},
  wsSend: { ...DELIVERY, messages: ['GetItem', 'PutItem', 'UpdateItem'], groups: ['Query'], admin: ['UpdateItem'] },
  wsSync: { messages: ['Query'], groups: ['GetItem'] },
  uplinkPersister: { ...DELIVERY, messages: PERSIST_MESSAGES, groups: ['Query'], wechat: ['GetItem', 'PutItem'], admin: ['GetItem', 'PutItem'] },
  adminApi: { ...DELIVERY, groups: ['BatchWriteItem', 'Query'], admin: ['GetItem', 'PutItem', 'UpdateItem'], wechat: ['GetItem', 'PutItem'] },
  fanoutWorker: { connections: ['DeleteItem', 'Scan'], 'connections/index/byUser': ['Query'], admin: ['GetItem', 'PutItem', 'UpdateItem'] },
  wechatCallback: {},
  wechatInbound: { ...DELIVERY, messages: PERSIST_MESSAGES, groups: ['Query'] },
  wechatOutbound: { ...DELIVERY, wechat: ['GetItem', 'UpdateItem'] },
  wechatLogin: {},
  presenceCounter: { admin: ['BatchGetItem', 'ConditionCheckItem', 'DeleteItem', 'PutItem', 'UpdateItem'] },
};

/** The resource a DynamoDB statement names: `table`, `table/index/name`, or what else it is. */
function dynamoResourceKey(resource: unknown): string {
  for (const t of tableIds) {
    if (JSON.stringify(resource) === JSON.stringify({ 'Fn::GetAtt': [tableLogicalId(t), 'Arn'] })) return t;
    for (const index of tables[t].indexes as readonly IndexDeclaration[]) {
      const arn = { 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableLogicalId(t), 'Arn'] }, `/index/${index.indexName}`]] };
      if (JSON.stringify(resource) === JSON.stringify(arn)) return `${t}/index/${index.indexName}`;
    }
  }
  return `unexpected resource ${JSON.stringify(resource)}`;
}

/** A function's DynamoDB actions (without the prefix, sorted) per resource, stream reading aside. */
function dynamoGrantsOf(id: FunctionId): Record<string, string[]> {
  const grants: Record<string, Set<string>> = {};
  for (const s of statements(id)) {
    const actions = actionsOf(s).filter((a) => a.startsWith('dynamodb:'));
    if (actions.length === 0 || isStreamStatement(s)) continue;
    expect(s.Effect).toBe('Allow');
    expect((s as { Condition?: unknown }).Condition).toBeUndefined();
    for (const resource of resourcesOf(s)) {
      const key = dynamoResourceKey(resource);
      for (const action of actions) (grants[key] ??= new Set()).add(action.slice('dynamodb:'.length));
    }
  }
  return Object.fromEntries(Object.entries(grants).map(([key, actions]) => [key, [...actions].sort()]));
}

function routeResource(routeKey: string) {
  const routes = template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } });
  const entries = Object.entries(routes);
  expect(entries).toHaveLength(1);
  const [logicalId, resource] = entries[0]!;
  return { logicalId, props: resource.Properties };
}

describe('WebSocket API', () => {
  test('route selection comes from the declaration', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 2); // WebSocket + HTTP
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'WEBSOCKET',
      RouteSelectionExpression: websocket.routeSelectionExpression,
    });
  });

  test('one route per declared route key, and no other', () => {
    const keys = Object.values(template.findResources('AWS::ApiGatewayV2::Route'))
      .filter((r) => JSON.stringify(r.Properties.ApiId) === JSON.stringify({ Ref: apiLogicalId() }))
      .map((r) => r.Properties.RouteKey);
    expect(keys.sort()).toEqual(websocket.routes.map((r) => r.routeKey).sort());
  });

  test('the authorizer reads the token query parameter and runs the declared function', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      IdentitySource: [websocket.authorizer.identitySource],
      AuthorizerUri: Match.objectLike({
        'Fn::Join': ['', Match.arrayWith([{ 'Fn::GetAtt': [fnLogicalId(websocket.authorizer.function), 'Arn'] }])],
      }),
    });
    expect(websocket.authorizer.identitySource).toBe('route.request.querystring.token');
  });

  test('$connect, and only $connect, is behind the authorizer', () => {
    const [authorizerId] = Object.keys(template.findResources('AWS::ApiGatewayV2::Authorizer'));
    for (const route of websocket.routes) {
      const { props } = routeResource(route.routeKey);
      if (route.routeKey === '$connect') {
        expect(props.AuthorizationType).toBe('CUSTOM');
        expect(props.AuthorizerId).toEqual({ Ref: authorizerId });
      } else {
        expect(props.AuthorizationType).toBe('NONE');
        expect(props.AuthorizerId).toBeUndefined();
      }
    }
  });

  test.each(websocket.routes.map((r) => [r.routeKey, r] as const))('route %s integrates the declared function', (_key, route) => {
    const { props } = routeResource(route.routeKey);
    const integrationId = (props.Target['Fn::Join'][1] as unknown[]).find((p) => typeof p === 'object') as { Ref: string };
    const integration = template.toJSON().Resources[integrationId.Ref];
    expect(integration.Type).toBe('AWS::ApiGatewayV2::Integration');
    expect(integration.Properties.IntegrationType).toBe('AWS_PROXY');
    expect(mentions(integration.Properties.IntegrationUri, fnLogicalId(route.function))).toBe(true);
  });

  test('two-way routes have a route response, one-way routes none', () => {
    const responses = Object.values(template.findResources('AWS::ApiGatewayV2::RouteResponse'));
    for (const route of websocket.routes) {
      const { logicalId, props } = routeResource(route.routeKey);
      const own = responses.filter((r) => r.Properties.RouteId?.Ref === logicalId);
      if (route.returnResponse) {
        expect(own).toHaveLength(1);
        expect(own[0]!.Properties.RouteResponseKey).toBe('$default');
        expect(props.RouteResponseSelectionExpression).toBe('$default');
      } else {
        expect(own).toHaveLength(0);
        expect(props.RouteResponseSelectionExpression).toBeUndefined();
      }
    }
  });

  test('API Gateway may invoke each route function and the authorizer', () => {
    const invoked = new Set([...websocket.routes.map((r) => r.function), websocket.authorizer.function]);
    for (const id of invoked) {
      template.hasResourceProperties('AWS::Lambda::Permission', {
        Action: 'lambda:InvokeFunction',
        Principal: 'apigateway.amazonaws.com',
        FunctionName: { 'Fn::GetAtt': [fnLogicalId(id), 'Arn'] },
      });
    }
  });

  test('the stage is named from the declaration, auto-deploys, is throttled and writes JSON access logs', () => {
    const stage = template.toJSON().Resources[logicalIdOf(stack.webSocket.stage)];
    expect(stage.Properties).toMatchObject({
      StageName: websocket.stageName,
      AutoDeploy: true,
      ApiId: { Ref: apiLogicalId() },
      DefaultRouteSettings: { ThrottlingRateLimit: websocket.stageThrottle.rateLimit, ThrottlingBurstLimit: websocket.stageThrottle.burstLimit },
      AccessLogSettings: { DestinationArn: { 'Fn::GetAtt': [logicalIdOf(stack.webSocket.accessLogGroup), 'Arn'] } },
    });
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
    expect(format).toMatchObject({
      requestId: '$context.requestId',
      connectionId: '$context.connectionId',
      routeKey: '$context.routeKey',
      status: '$context.status',
      ip: '$context.identity.sourceIp',
      requestTime: '$context.requestTime',
      eventType: '$context.eventType',
      error: '$context.error.message',
      integrationError: '$context.integrationErrorMessage',
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('each route with a declared throttle has it in RouteSettings, the others none', () => {
    const stage = template.toJSON().Resources[logicalIdOf(stack.webSocket.stage)];
    const expected = Object.fromEntries(
      (websocket.routes as readonly WebSocketRouteDeclaration[]).filter((r) => r.throttle).map((r) => [r.routeKey, { ThrottlingRateLimit: r.throttle!.rateLimit, ThrottlingBurstLimit: r.throttle!.burstLimit }]),
    );
    expect(stage.Properties.RouteSettings).toEqual(expected);
    expect(Object.keys(expected).sort()).toEqual(['$connect', '$default', 'ping', 'send', 'sync']);
  });

  test('the declared throttles fit the documented target and the account limits', () => {
    const t = webSocketTarget;
    const targetRate = t.connections / t.pingIntervalSeconds + t.sendsPerSecond + 2 * (t.connections / (t.reconnectMinutes * 60));
    expect(websocket.stageThrottle.rateLimit).toBeGreaterThanOrEqual(targetRate);
    expect(websocket.stageThrottle.rateLimit).toBeLessThanOrEqual(10_000 / 4); // leaves the account's other APIs most of its 10,000/s
    const route = (key: string) => (websocket.routes as readonly WebSocketRouteDeclaration[]).find((r) => r.routeKey === key)!.throttle!;
    expect(route('ping').rateLimit).toBeGreaterThanOrEqual(t.connections / t.pingIntervalSeconds);
    expect(route('send').rateLimit).toBeGreaterThanOrEqual(t.sendsPerSecond);
    expect(route('$connect').rateLimit).toBeGreaterThanOrEqual(t.connections / (t.reconnectMinutes * 60));
    expect(route('$connect').rateLimit).toBeLessThanOrEqual(500); // the account's new-connection quota
    expect(route('sync').rateLimit).toBeGreaterThanOrEqual(t.connections / (t.reconnectMinutes * 60));
  });

  test('stage throttling is configurable', () => {
    tuned.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: websocket.stageName,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 80 },
    });
  });

  test('the account-wide API Gateway logging role is left alone unless asked for', () => {
    // It is one setting per account and Region: setting it replaces anyone else's.
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
    expect(Object.keys(template.findResources('AWS::IAM::Role')).filter((id) => id.startsWith('ApiGatewayAccountLogging'))).toEqual([]);
  });

  test('asked for, the account CloudWatch role is set before the stage and kept when the stack goes', () => {
    tuned.template.resourceCountIs('AWS::ApiGateway::Account', 1);
    const resources = tuned.template.toJSON().Resources;
    const [accountId, account] = Object.entries(tuned.template.findResources('AWS::ApiGateway::Account'))[0]!;
    expect(resources[logicalIdOf(tuned.stack.webSocket.stage)].DependsOn).toContain(accountId);
    expect(account.DeletionPolicy).toBe('Retain');
    const roleId = (account.Properties.CloudWatchRoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    expect(resources[roleId].DeletionPolicy).toBe('Retain');
    expect(resources[roleId].Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'apigateway.amazonaws.com' } },
    ]);
  });

  test('outputs the wss URL and the Management API callback URL of the stage', () => {
    const joined = (name: string) => JSON.stringify(template.findOutputs(name)[name]!.Value);
    expect(joined('WebSocketUrl')).toMatch(/^\{"Fn::Join":\["",\["wss:\/\/",\{"Ref":"[^"]+"\},".execute-api."/);
    expect(joined('WebSocketUrl')).toContain(`"/${websocket.stageName}"`);
    expect(joined('WebSocketCallbackUrl')).toMatch(/"https:\/\/",\{"Ref":"[^"]+"\},".execute-api."/);
    expect(joined('WebSocketCallbackUrl')).toContain(`"/${websocket.stageName}"`);
    expect(mentions(template.findOutputs('WebSocketUrl'), apiLogicalId())).toBe(true);
  });
});

describe('HTTP API', () => {
  test('one HTTP API with a throttled, access-logged, auto-deployed $default stage and no CORS', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP', CorsConfiguration: Match.absent() });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
    });
  });

  test('has exactly the declared HTTP routes', () => {
    const httpApiId = logicalIdOf(stack.http.api);
    const httpRouteCount = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).filter(
      (r) => r.Properties.ApiId.Ref === httpApiId,
    ).length;
    expect(httpRouteCount).toBe(httpRoutes.length);
  });

  test('the unsigned login route has its own throttle, below the stage it shares with WeChat callbacks; no other route has one', () => {
    const stage = template.toJSON().Resources[logicalIdOf(stack.http.stage)];
    expect(stage.Properties.RouteSettings).toEqual({ 'POST /v1/login/wechat': { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 } });
    expect(stage.Properties.DefaultRouteSettings.ThrottlingRateLimit).toBeGreaterThan(50);
  });

  test('outputs its URL', () => {
    expect(mentions(template.findOutputs('HttpApiUrl'), logicalIdOf(stack.http.api))).toBe(true);
  });
});

describe('DynamoDB tables', () => {
  test('one table per declared table', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', tableIds.length);
  });

  test.each(tableIds)('%s: on demand, encrypted, retained, deletion protection and PITR, keys and TTL as declared', (id) => {
    const t: TableDeclaration = tables[id];
    const resource = template.toJSON().Resources[tableLogicalId(id)];
    expect(resource.DeletionPolicy).toBe('Retain');
    expect(resource.UpdateReplacePolicy).toBe('Retain');
    const p = resource.Properties;
    expect(p.BillingMode).toBe('PAY_PER_REQUEST');
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: t.pointInTimeRecovery });
    expect(p.DeletionProtectionEnabled).toBe(t.deletionProtection);
    expect(p.SSESpecification).toEqual({ SSEEnabled: true });
    const keySchema: Array<{ AttributeName: string; KeyType: string }> = [{ AttributeName: t.partitionKey.name, KeyType: 'HASH' }];
    if (t.sortKey) keySchema.push({ AttributeName: t.sortKey.name, KeyType: 'RANGE' });
    expect(p.KeySchema).toEqual(keySchema);
    if (t.ttlAttribute) {
      expect(p.TimeToLiveSpecification).toEqual({ AttributeName: t.ttlAttribute, Enabled: true });
    } else {
      expect(p.TimeToLiveSpecification).toBeUndefined();
    }
  });

  test.each(tableIds)('%s: the declared GSIs (their declared projection, else ALL) and no others', (id) => {
    const p = template.toJSON().Resources[tableLogicalId(id)].Properties;
    const expected = tables[id].indexes.map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
        ...('sortKey' in index && index.sortKey ? [{ AttributeName: index.sortKey.name, KeyType: 'RANGE' }] : []),
      ],
      Projection:
        'projection' in index && index.projection ? { ProjectionType: 'INCLUDE', NonKeyAttributes: [...index.projection] } : { ProjectionType: 'ALL' },
    }));
    expect(p.GlobalSecondaryIndexes ?? []).toEqual(expected);
    const attributes = new Map((p.AttributeDefinitions as Array<{ AttributeName: string; AttributeType: string }>).map((a) => [a.AttributeName, a.AttributeType]));
    for (const index of tables[id].indexes as readonly IndexDeclaration[]) {
      expect(attributes.get(index.partitionKey.name)).toBe(index.partitionKey.type);
      if (index.sortKey) expect(attributes.get(index.sortKey.name)).toBe(index.sortKey.type);
    }
  });

  test('the tables that hold data are protected from deletion; PITR where an older copy is worth restoring; connections neither', () => {
    const protectedTables = tableIds.filter((id) => template.toJSON().Resources[tableLogicalId(id)].Properties.DeletionProtectionEnabled === true);
    expect(protectedTables.sort()).toEqual(['admin', 'groups', 'messages', 'wechat']);
    const restorable = tableIds.filter((id) => template.toJSON().Resources[tableLogicalId(id)].Properties.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled);
    expect(restorable.sort()).toEqual(['groups', 'messages', 'wechat']);
  });

  test('deletionProtection: false turns it off on every table (a throwaway stack)', () => {
    const { stack: bare, template: bareTemplate } = synthGateway({ deletionProtection: false });
    for (const id of tableIds) {
      expect(bareTemplate.toJSON().Resources[logicalIdOf(bare.tables.tables[id])].Properties.DeletionProtectionEnabled).toBe(false);
    }
  });

  test('connections has the byUser index on userId / connectedAt, copying only what delivery reads', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'connectionId', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byUser',
          KeySchema: [
            { AttributeName: 'userId', KeyType: 'HASH' },
            { AttributeName: 'connectedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['deviceId', 'expiresAt'] },
        },
      ],
      AttributeDefinitions: Match.arrayWith([{ AttributeName: 'connectedAt', AttributeType: 'N' }]),
    });
  });
});

describe('SQS queues', () => {
  test('one queue and one dead-letter queue per declared queue', () => {
    template.resourceCountIs('AWS::SQS::Queue', queueIds.length * 2);
  });

  test.each(queueIds)('%s: FIFO high throughput, SSE, timeouts as declared, redrive to its DLQ', (id) => {
    const q = queues[id];
    const p = template.toJSON().Resources[queueLogicalId(id)].Properties;
    const dlqId = logicalIdOf(stack.queues.deadLetterQueues[id]);
    expect(p).toMatchObject({
      SqsManagedSseEnabled: true,
      VisibilityTimeout: q.visibilityTimeoutSeconds,
      MessageRetentionPeriod: q.retentionDays * 86_400,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: q.maxReceiveCount },
    });
    if (q.fifo) {
      expect(p).toMatchObject({
        FifoQueue: true,
        ContentBasedDeduplication: false,
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
      });
    }
    const dlq = template.toJSON().Resources[dlqId].Properties;
    expect(dlq).toEqual({
      ...(q.fifo ? { FifoQueue: true } : {}),
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
  });

  test.each(queueIds)('%s and its DLQ are retained on stack deletion and replacement exactly when declared', (id) => {
    const resources = template.toJSON().Resources;
    for (const queue of [stack.queues.queues[id], stack.queues.deadLetterQueues[id]]) {
      const resource = resources[logicalIdOf(queue)];
      const policy = queues[id].retain ? 'Retain' : 'Delete';
      expect([resource.DeletionPolicy, resource.UpdateReplacePolicy]).toEqual([policy, policy]);
    }
  });

  test('the queues holding acknowledged messages are retained: uplink, WeChat inbound and outbound; not fan-out', () => {
    expect(queueIds.filter((id) => queues[id].retain).sort()).toEqual(['uplink', 'wechatInbound', 'wechatOutbound']);
  });

  test('uplink is FIFO and moves a message to its DLQ after 5 receives', () => {
    expect(queues.uplink.fifo).toBe(true);
    template.hasResourceProperties('AWS::SQS::Queue', {
      FifoQueue: true,
      RedrivePolicy: { maxReceiveCount: 5, deadLetterTargetArn: Match.anyValue() },
    });
  });

  test.each(queueIds)('%s and its DLQ refuse requests without TLS', (id) => {
    for (const queue of [stack.queues.queues[id], stack.queues.deadLetterQueues[id]]) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalIdOf(queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sqs:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });
});

describe('Lambda functions', () => {
  test('one function per declared function', () => {
    template.resourceCountIs('AWS::Lambda::Function', functionIds.length);
  });

  test.each(functionIds)('%s: nodejs22.x, arm64, active tracing, declared timeout and memory', (id) => {
    expect(fnProps(id)).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Handler: 'index.handler',
      Timeout: decl(id).timeoutSeconds,
      MemorySize: decl(id).memoryMb,
      Role: { 'Fn::GetAtt': [roleLogicalId(id), 'Arn'] },
    });
  });

  test.each(functionIds)('%s: logs to its own log group with one month retention', (id) => {
    const logGroupId = logicalIdOf(stack.functions[id].logGroup);
    expect(fnProps(id).LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
    const logGroup = template.toJSON().Resources[logGroupId];
    expect(logGroup.Properties.RetentionInDays).toBe(30);
    expect(logGroup.DeletionPolicy).toBe('Retain');
  });

  test.each(functionIds)('%s: environment has exactly what its declaration uses', (id) => {
    const d = decl(id);
    const expected = new Set<string>(['POWERTOOLS_SERVICE_NAME', 'NODE_OPTIONS']);
    for (const t of Object.keys(d.tables ?? {}) as TableId[]) expected.add(tables[t].envVar);
    for (const q of Object.keys(d.queues ?? {}) as QueueId[]) expected.add(queues[q].envVar);
    if (d.manageConnections) expected.add(envNames.managementEndpoint);
    if (d.jwtSecret) expected.add(envNames.jwtSecretArn);
    if ('adminKeys' in d && d.adminKeys) expected.add(envNames.adminKeysArn);
    if ('wechatAccounts' in d && d.wechatAccounts) expected.add(envNames.wechatAccountsArn);
    const variables = fnProps(id).Environment.Variables as Record<string, unknown>;
    expect(new Set(Object.keys(variables))).toEqual(expected);
    expect(variables.POWERTOOLS_SERVICE_NAME).toBe('wxgate');
    expect(variables.NODE_OPTIONS).toBe('--enable-source-maps');
    for (const t of Object.keys(d.tables ?? {}) as TableId[]) expect(variables[tables[t].envVar]).toEqual({ Ref: tableLogicalId(t) });
    for (const q of Object.keys(d.queues ?? {}) as QueueId[]) expect(variables[queues[q].envVar]).toEqual({ Ref: queueLogicalId(q) });
    if (d.jwtSecret) expect(variables[envNames.jwtSecretArn]).toEqual({ Ref: logicalIdOf(stack.clientTokenSecret) });
    if (d.manageConnections) {
      const endpoint = JSON.stringify(variables[envNames.managementEndpoint]);
      expect(endpoint).toMatch(/^\{"Fn::Join":\["",\["https:\/\/",\{"Ref":"[^"]+"\},".execute-api.",\{"Ref":"AWS::Region"\}/);
      expect(endpoint).toContain(`"/${websocket.stageName}"`);
      expect(mentions(variables[envNames.managementEndpoint], apiLogicalId())).toBe(true);
    }
  });

  test.each(functionIds)('%s: reserved concurrency exactly as declared (the authorizer and $connect), none otherwise', (id) => {
    const declared = 'reservedConcurrency' in decl(id) ? (decl(id) as { reservedConcurrency: number }).reservedConcurrency : undefined;
    expect(fnProps(id).ReservedConcurrentExecutions).toBe(declared);
  });

  test('the routes no one may starve have reserved concurrency, and reserveConcurrency: false leaves it out', () => {
    expect(fnProps('wsAuthorizer').ReservedConcurrentExecutions).toBeGreaterThan(0);
    expect(fnProps('wsConnect').ReservedConcurrentExecutions).toBeGreaterThan(0);
    const { stack: small, template: smallTemplate } = synthGateway({ reserveConcurrency: false });
    const reserved = Object.values(smallTemplate.findResources('AWS::Lambda::Function')).filter((r) => r.Properties.ReservedConcurrentExecutions !== undefined);
    expect(reserved).toEqual([]);
    expect(Object.keys(small.functions)).toEqual(functionIds);
  });

  test('the local-only secret value variable is never set in AWS', () => {
    for (const id of functionIds) expect(fnProps(id).Environment.Variables[envNames.jwtSecretValue]).toBeUndefined();
  });

  test('TTL and connection-limit variables are set only when given, and only where the table is used', () => {
    const vars = (id: FunctionId) =>
      tuned.template.toJSON().Resources[logicalIdOf(tuned.stack.functions[id].function)].Properties.Environment.Variables;
    for (const id of functionIds) {
      const d = decl(id);
      expect(vars(id)[envNames.connectionRowLifetimeSeconds]).toBe(d.tables && 'connections' in d.tables ? '9000' : undefined);
      expect(vars(id)[envNames.maxConnectionsPerUser]).toBe(d.tables && 'connections' in d.tables ? '3' : undefined);
      expect(vars(id)[envNames.inboxTtlDays]).toBe(d.tables && 'messages' in d.tables ? '7' : undefined);
    }
    // $connect writes the rows and enforces the limit; without the props nobody gets them.
    expect(vars('wsConnect')).toMatchObject({ [envNames.connectionRowLifetimeSeconds]: '9000', [envNames.maxConnectionsPerUser]: '3' });
    for (const id of functionIds) {
      expect(fnProps(id).Environment.Variables[envNames.connectionRowLifetimeSeconds]).toBeUndefined();
      expect(fnProps(id).Environment.Variables[envNames.maxConnectionsPerUser]).toBeUndefined();
    }
  });

  test('ping reaches no table (a ping writes nothing); $connect may close connections (the per-user limit)', () => {
    expect(allActions(statements('wsPing')).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
    expect(fnProps('wsPing').Environment.Variables[tables.connections.envVar]).toBeUndefined();
    expect(allActions(statements('wsConnect'))).toContain('execute-api:ManageConnections');
  });

  test('each queue consumer has an SQS event source mapping with partial batch failures and its declared maximum concurrency', () => {
    for (const id of queueIds) {
      const consumer: { function: string; batchSize: number; maxConcurrency?: number } = queues[id].consumer;
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [queueLogicalId(id), 'Arn'] },
        FunctionName: { Ref: fnLogicalId(consumer.function as FunctionId) },
        BatchSize: consumer.batchSize,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ...(consumer.maxConcurrency ? { ScalingConfig: { MaximumConcurrency: consumer.maxConcurrency } } : {}),
      });
    }
  });

  test('each declared table stream has its consumer reading it from the trim horizon, and the table streams new and old images', () => {
    const streamed = tableIds.filter((t) => 'stream' in tables[t]);
    expect(streamed).toEqual(['connections']);
    for (const t of streamed) {
      const consumer = (tables[t] as { stream: { consumer: { function: string; batchSize: number } } }).stream.consumer;
      template.hasResourceProperties('AWS::DynamoDB::Table', { StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' } });
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [tableLogicalId(t), 'StreamArn'] },
        FunctionName: { Ref: fnLogicalId(consumer.function as FunctionId) },
        BatchSize: consumer.batchSize,
        StartingPosition: 'TRIM_HORIZON',
      });
    }
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', queueIds.length + streamed.length);
  });
});

describe('least privilege', () => {
  test.each(functionIds)('%s: role is for Lambda only, with no managed policies', (id) => {
    const role = template.toJSON().Resources[roleLogicalId(id)].Properties;
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
  });

  test.each(functionIds)('%s: Resource "*" only for the X-Ray write actions (and dynamodb:ListStreams for a stream consumer)', (id) => {
    const streamConsumer = tableIds.some((t) => 'stream' in tables[t] && (tables[t] as { stream: { consumer: { function: string } } }).stream.consumer.function === id);
    for (const s of statements(id)) {
      // ListStreams has no resource-level permissions: CDK's stream event source grants it on "*".
      if (resourcesOf(s).includes('*') && streamConsumer && actionsOf(s).join() === 'dynamodb:ListStreams') continue;
      if (resourcesOf(s).includes('*')) expect(actionsOf(s).sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
      for (const action of actionsOf(s)) expect(action).not.toContain('*');
    }
  });

  test.each(functionIds)('%s: writes logs only to its own log group', (id) => {
    const logStatements = statements(id).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
    expect(logStatements).toEqual([
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: { 'Fn::GetAtt': [logicalIdOf(stack.functions[id].logGroup), 'Arn'] },
      },
    ]);
  });

  test.each(functionIds)('%s: exactly the DynamoDB actions listed below, on exactly these tables and indexes', (id) => {
    expect(dynamoGrantsOf(id)).toEqual(EXPECTED_DYNAMO_GRANTS[id]);
  });

  test.each(functionIds)('%s: the declaration lists exactly those grants (the table above is reviewed by hand)', (id) => {
    const declared: Record<string, string[]> = {};
    for (const [t, actions] of Object.entries(decl(id).tables ?? {}) as Array<[TableId, readonly string[]]>) {
      for (const action of actions) {
        const key = action.startsWith('Query:') ? `${t}/index/${action.slice('Query:'.length)}` : t;
        (declared[key] ??= []).push(action.startsWith('Query:') ? 'Query' : action);
      }
    }
    for (const key of Object.keys(declared)) declared[key]!.sort();
    expect(declared).toEqual(EXPECTED_DYNAMO_GRANTS[id]);
  });

  test('nothing scans but the fan-out worker (the connection scan of a broadcast); nobody batch-writes connections', () => {
    const scanners = functionIds.filter((id) => Object.values(dynamoGrantsOf(id)).some((actions) => actions.includes('Scan')));
    expect(scanners).toEqual(['fanoutWorker']);
    expect(dynamoGrantsOf('fanoutWorker')).toMatchObject({ connections: expect.arrayContaining(['Scan']) });
    for (const id of functionIds) expect(dynamoGrantsOf(id).connections ?? []).not.toContain('BatchWriteItem');
  });

  test('connections are queried through the byUser index only, never the table itself', () => {
    for (const id of functionIds) expect(dynamoGrantsOf(id).connections ?? []).not.toContain('Query');
  });

  test.each(functionIds)('%s: reads a table stream only as that stream’s declared consumer, and only that stream', (id) => {
    const streams = statements(id).filter((s) => isStreamStatement(s) && !resourcesOf(s).includes('*'));
    const consumed = tableIds.filter((t) => 'stream' in tables[t] && (tables[t] as { stream: { consumer: { function: string } } }).stream.consumer.function === id);
    if (consumed.length === 0) {
      expect(statements(id).filter(isStreamStatement)).toEqual([]);
      return;
    }
    expect(streams.length).toBeGreaterThan(0);
    for (const s of streams) {
      expect(resourcesOf(s)).toEqual(consumed.map((t) => ({ 'Fn::GetAtt': [tableLogicalId(t), 'StreamArn'] })));
      expect(actionsOf(s).sort()).toEqual(['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator']);
    }
  });

  test.each(functionIds)('%s: SQS send only where declared, receive only for the queue consumer', (id) => {
    const sqsActions = allActions(statements(id)).filter((a) => a.startsWith('sqs:'));
    for (const q of queueIds) {
      const onQueue = allActions(statementsOn(id, queueLogicalId(q)));
      const sends = (decl(id).queues as Partial<Record<QueueId, string>> | undefined)?.[q] === 'send';
      const consumes = queues[q].consumer.function === id;
      expect(onQueue.includes('sqs:SendMessage')).toBe(sends);
      expect(onQueue.includes('sqs:ReceiveMessage')).toBe(consumes);
      expect(onQueue.includes('sqs:DeleteMessage')).toBe(consumes);
    }
    if (!decl(id).queues && !queueIds.some((q) => queues[q].consumer.function === id)) expect(sqsActions).toEqual([]);
    // Nobody may touch a dead-letter queue.
    for (const q of queueIds) expect(statementsOn(id, logicalIdOf(stack.queues.deadLetterQueues[q]))).toEqual([]);
  });

  test.each(functionIds)('%s: ManageConnections only if declared, on this stage\'s @connections/* only', (id) => {
    const manage = statements(id).filter((s) => actionsOf(s).some((a) => a.startsWith('execute-api:')));
    if (!decl(id).manageConnections) {
      expect(manage).toEqual([]);
      return;
    }
    expect(manage).toHaveLength(1);
    expect(actionsOf(manage[0]!)).toEqual(['execute-api:ManageConnections']);
    const resources = resourcesOf(manage[0]!);
    expect(resources).toHaveLength(1);
    const parts = (resources[0] as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    expect(parts).toContainEqual({ Ref: apiLogicalId() });
    expect(parts[parts.length - 1]).toBe(`/${websocket.stageName}/*/@connections/*`);
  });

  test.each(functionIds)('%s: reads the client-token, admin-keys and WeChat-accounts secrets only if declared', (id) => {
    const secretActions = statements(id).filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
    const d = decl(id);
    const read = (secret: object) => ({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: { Ref: logicalIdOf(secret as never) } });
    const expected = [
      ...(d.jwtSecret ? [read(stack.clientTokenSecret)] : []),
      ...('adminKeys' in d && d.adminKeys ? [read(stack.adminKeysSecret)] : []),
      ...('wechatAccounts' in d && d.wechatAccounts ? [read(stack.wechatAccountsSecret)] : []),
    ];
    expect(secretActions).toEqual(expected);
  });

  test('the authorizer has no DynamoDB or SQS access and reads only the secret', () => {
    const actions = allActions(statements('wsAuthorizer'));
    expect(actions.filter((a) => a.startsWith('dynamodb:') || a.startsWith('sqs:') || a.startsWith('execute-api:'))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('secretsmanager:')).sort()).toEqual([
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
    ]);
  });

  test('wsSync only reads the messages table and sends nothing', () => {
    const actions = allActions(statements('wsSync'));
    expect(actions).not.toContain('sqs:SendMessage');
    expect(actions.filter((a) => DYNAMO_WRITE.includes(a))).toEqual([]);
    expect(allActions(statementsOn('wsSync', tableLogicalId('messages')))).toContain('dynamodb:Query');
    expect(statementsOn('wsSync', tableLogicalId('connections'))).toEqual([]);
  });

  test('wsSend may send to the uplink queue', () => {
    expect(allActions(statementsOn('wsSend', queueLogicalId('uplink')))).toEqual(
      expect.arrayContaining(['sqs:SendMessage', 'sqs:GetQueueAttributes']),
    );
  });
});

describe('client-token secret', () => {
  test('64 generated characters without punctuation, retained, ARN output', () => {
    const secret = template.toJSON().Resources[logicalIdOf(stack.clientTokenSecret)];
    expect(secret.Properties.GenerateSecretString).toEqual({ PasswordLength: 64, ExcludePunctuation: true });
    expect(secret.DeletionPolicy).toBe('Retain');
    expect(template.findOutputs('ClientTokenSecretArn').ClientTokenSecretArn!.Value).toEqual({
      Ref: logicalIdOf(stack.clientTokenSecret),
    });
  });
});
