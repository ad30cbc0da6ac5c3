import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import {
  env as envNames,
  functions as declaredFunctions,
  httpRoutes,
  queues as declaredQueues,
  tables as declaredTables,
  type FunctionDeclaration,
  type FunctionId,
  type QueueDeclaration,
  type QueueId,
  type TableAccess,
  type TableId,
} from './gateway-declaration';
import { ApiGatewayAccountLogging } from './constructs/api-gateway-account-logging';
import { constructIdOf, entriesOf } from './constructs/declaration-helpers';
import { GatewayFunction } from './constructs/gateway-function';
import { GatewayMonitoring, type GatewayAlarmThresholds } from './constructs/gateway-monitoring';
import { GatewayQueues } from './constructs/gateway-queues';
import { GatewayTables } from './constructs/gateway-tables';
import { HttpGateway } from './constructs/http-gateway';
import { dropRoleDependsOn } from './constructs/template-hygiene';
import { WebSocketGateway } from './constructs/websocket-gateway';
import { nagResourceString } from './nag';

export interface WxgateStackProps extends StackProps {
  /**
   * Removal policy of the stateful resources (tables, client-token secret).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Retention of every function log group and API access log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * WebSocket stage throttling: steady-state requests per second.
   * @default 2000 (the declaration's `stageThrottle`, sized in lib/gateway-declaration.ts)
   */
  readonly webSocketRateLimit?: number;
  /**
   * WebSocket stage throttling: burst.
   * @default 4000 (the declaration's `stageThrottle`)
   */
  readonly webSocketBurstLimit?: number;
  /**
   * HTTP API default stage throttling: steady-state requests per second.
   * @default 200
   */
  readonly httpRateLimit?: number;
  /**
   * HTTP API default stage throttling: burst.
   * @default 400
   */
  readonly httpBurstLimit?: number;
  /**
   * Set the API Gateway account's CloudWatch Logs role (`AWS::ApiGateway::Account`) for this
   * account and Region. It is one setting per account and Region: setting it replaces whatever
   * role any other stack or person set there, for every REST and WebSocket API of the account, so
   * the stack leaves it alone unless asked.
   *
   * The WebSocket stage writes access logs, and API Gateway refuses a stage with access logs
   * until the account has that role. Before the first deploy in an account and Region, check it:
   * `aws apigateway get-account` shows `cloudwatchRoleArn`. If it is set, leave this off. If it is
   * not, either deploy once with this on (`npx cdk deploy -c configureApiGatewayAccountLogging=true`;
   * the role and the setting are kept when the stack is deleted or this is turned off again), or
   * set a role yourself (`aws apigateway update-account --patch-operations
   * op=replace,path=/cloudwatchRoleArn,value=<role ARN>`, a role API Gateway may assume with the
   * managed policy AmazonAPIGatewayPushToCloudWatchLogs). docs/operations.md, "First deploy".
   * @default false
   */
  readonly configureApiGatewayAccountLogging?: boolean;
  /**
   * `CONNECTION_ROW_LIFETIME_SECONDS` (at least 7200, API Gateway's connection limit) for the
   * functions that use the connections table.
   * @default - not set: the Lambda code's default applies (2 h 10 min)
   */
  readonly connectionRowLifetimeSeconds?: number;
  /**
   * `MAX_CONNECTIONS_PER_USER` (`$connect` closes the oldest beyond it) for the functions that use
   * the connections table.
   * @default - not set: the Lambda code's default applies (10)
   */
  readonly maxConnectionsPerUser?: number;
  /**
   * Reserve the concurrency the declaration asks for (the authorizer and `$connect`). Turn off on
   * an account whose concurrency limit is too small to reserve from (new accounts may have 10;
   * Lambda keeps 100 unreserved).
   * @default true
   */
  readonly reserveConcurrency?: boolean;
  /**
   * `INBOX_TTL_DAYS` for the functions that use the messages table.
   * @default - not set: the Lambda code's default applies
   */
  readonly inboxTtlDays?: number;
  /**
   * DynamoDB deletion protection. `false` turns it off on every table: for a throwaway stack with
   * `removalPolicy: RemovalPolicy.DESTROY`, whose deletion it would block.
   * @default - as each table declares: on for messages, groups, admin and wechat, off for connections
   */
  readonly deletionProtection?: boolean;
  /**
   * An email address that gets every alarm (and its return to OK). AWS mails it a confirmation
   * link first; nothing arrives until it is followed. `npx cdk deploy -c alarmEmail=ops@example.com`.
   * @default - none: subscribe to the alarm topic yourself (output `AlarmTopicArn`)
   */
  readonly alarmEmail?: string;
  /**
   * What makes each alarm fire (docs/operations.md lists the alarms).
   * @default - the defaults documented on `GatewayAlarmThresholds` (lib/constructs/gateway-monitoring.ts)
   */
  readonly alarmThresholds?: GatewayAlarmThresholds;
}

/**
 * wxgate in one stack, derived entirely from `lib/gateway-declaration.ts`: tables, queues,
 * the client-token secret, one function per declared function (with exactly the access and
 * environment its declaration lists), the WebSocket API and the HTTP API.
 */
export class WxgateStack extends Stack {
  public readonly tables: GatewayTables;
  public readonly queues: GatewayQueues;
  /** HS256 key that signs client JWTs. */
  public readonly clientTokenSecret: secretsmanager.Secret;
  /** Admin API keys: JSON `{"keyId":"secret",...}`; several at once for rotation (docs/admin-api.md). */
  public readonly adminKeysSecret: secretsmanager.Secret;
  /** WeChat accounts (docs/wechat.md), filled in by the operator. */
  public readonly wechatAccountsSecret: secretsmanager.Secret;
  /** One function per declared function id. */
  public readonly functions: Record<FunctionId, GatewayFunction>;
  public readonly webSocket: WebSocketGateway;
  public readonly http: HttpGateway;
  /** Alarms, their SNS topic and the dashboard. */
  public readonly monitoring: GatewayMonitoring;

  constructor(scope: Construct, id: string, props: WxgateStackProps = {}) {
    super(scope, id, props);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.tables = new GatewayTables(this, 'Tables', { removalPolicy, deletionProtection: props.deletionProtection });
    this.queues = new GatewayQueues(this, 'Queues');

    /** A secret whose rotation is an operator's manual step (why: `rotation`), kept like the tables. */
    const operatorSecret = (id: string, secretProps: secretsmanager.SecretProps, rotation: string) => {
      const secret = new secretsmanager.Secret(this, id, { ...secretProps, removalPolicy });
      Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: rotation });
      return secret;
    };
    this.clientTokenSecret = operatorSecret(
      'ClientTokenSecret',
      {
        description: 'wxgate: HS256 key that signs and verifies client WebSocket tokens (JWT)',
        generateSecretString: { passwordLength: 64, excludePunctuation: true },
      },
      'The client-token HS256 key is not rotated automatically: rotating it invalidates every issued client ' +
        'token at once unless the authorizer verifies against the previous key during a grace period, which ' +
        'needs a custom rotation function. Rotation is a manual, announced operation until that exists.',
    );
    this.adminKeysSecret = operatorSecret(
      'AdminKeys',
      {
        description: 'wxgate: admin API keys as JSON {"keyId":"secret",...}; requests are HMAC-signed with a secret',
        generateSecretString: { secretStringTemplate: '{}', generateStringKey: 'default', passwordLength: 48, excludePunctuation: true },
      },
      'Admin keys are rotated by the operator, not a rotation Lambda: add a new keyId, move the backends to it, ' +
        'then remove the old one (several keys are valid at once; handlers re-read the secret every 5 minutes).',
    );
    this.wechatAccountsSecret = operatorSecret(
      'WechatAccounts',
      {
        description: 'wxgate: WeChat accounts as JSON {"<accountId>":{"kind":"oa"|"wecom","token","encodingAESKey","receiveId","appSecret"}}',
        // No accounts until the operator adds them (docs/wechat.md); `{}` is no secret.
        secretStringValue: SecretValue.unsafePlainText('{}'),
      },
      'WeChat tokens, EncodingAESKeys and app secrets are issued by WeChat and rotated in the WeChat console; the ' +
        'operator then updates this secret (docs/wechat.md). A rotation Lambda cannot obtain new values.',
    );

    // One function per declaration entry, with the environment its declaration implies.
    const functions: Partial<Record<FunctionId, GatewayFunction>> = {};
    for (const [functionId, decl] of entriesOf<FunctionId, FunctionDeclaration>(declaredFunctions)) {
      functions[functionId] = new GatewayFunction(this, constructIdOf(functionId), {
        entry: decl.entry,
        description: decl.description,
        timeout: Duration.seconds(decl.timeoutSeconds),
        memorySize: decl.memoryMb,
        reservedConcurrency: (props.reserveConcurrency ?? true) && 'reservedConcurrency' in decl ? decl.reservedConcurrency : undefined,
        logRetention: props.logRetention,
        environment: this.environmentFor(decl, props),
      });
      dropRoleDependsOn(functions[functionId].function);
    }
    this.functions = functions as Record<FunctionId, GatewayFunction>;
    const lambdas = {} as Record<FunctionId, IFunction>;
    for (const [functionId, fn] of entriesOf(this.functions)) lambdas[functionId] = fn.function;

    this.webSocket = new WebSocketGateway(this, 'WebSocket', {
      functions: lambdas,
      throttleRateLimit: props.webSocketRateLimit,
      throttleBurstLimit: props.webSocketBurstLimit,
      accessLogRetention: props.logRetention,
    });
    if (props.configureApiGatewayAccountLogging ?? false) {
      const accountLogging = new ApiGatewayAccountLogging(this, 'ApiGatewayAccountLogging');
      // The stage's access log settings are refused until the account role is in place.
      this.webSocket.stage.node.addDependency(accountLogging.account);
    }

    this.http = new HttpGateway(this, 'Http', {
      functions: lambdas,
      routes: httpRoutes,
      throttleRateLimit: props.httpRateLimit,
      throttleBurstLimit: props.httpBurstLimit,
      accessLogRetention: props.logRetention,
    });

    for (const [functionId, decl] of entriesOf<FunctionId, FunctionDeclaration>(declaredFunctions)) {
      this.grantDeclaredAccess(this.functions[functionId], decl);
    }

    // Each queue's declared consumer reads it through an event source mapping (partial batch failures on).
    for (const [queueId, decl] of entriesOf<QueueId, QueueDeclaration>(declaredQueues)) {
      const consumer = this.functions[decl.consumer.function as FunctionId];
      if (!consumer) throw new Error(`queue ${queueId}: consumer ${decl.consumer.function} is not a declared function`);
      consumer.function.addEventSource(
        new SqsEventSource(this.queues.queues[queueId], {
          batchSize: decl.consumer.batchSize,
          reportBatchItemFailures: true,
          ...('maxConcurrency' in decl.consumer ? { maxConcurrency: decl.consumer.maxConcurrency } : {}),
        }),
      );
    }

    // A table's declared stream consumer reads every change in order per shard; a failed batch is
    // retried until it succeeds (the consumer is idempotent per shard sequence number).
    for (const [tableId, decl] of entriesOf<TableId, (typeof declaredTables)[TableId]>(declaredTables)) {
      if (!('stream' in decl) || !decl.stream) continue;
      const consumer = this.functions[decl.stream.consumer.function as FunctionId];
      if (!consumer) throw new Error(`table ${tableId}: stream consumer ${decl.stream.consumer.function} is not a declared function`);
      consumer.function.addEventSource(
        new DynamoEventSource(this.tables.tables[tableId], { startingPosition: StartingPosition.TRIM_HORIZON, batchSize: decl.stream.consumer.batchSize }),
      );
    }

    const functionLogGroups = {} as Record<FunctionId, logs.ILogGroup>;
    for (const [functionId, fn] of entriesOf(this.functions)) functionLogGroups[functionId] = fn.logGroup;
    this.monitoring = new GatewayMonitoring(this, 'Monitoring', {
      functions: lambdas,
      functionLogGroups,
      queues: this.queues.queues,
      deadLetterQueues: this.queues.deadLetterQueues,
      streamConsumers: entriesOf<TableId, (typeof declaredTables)[TableId]>(declaredTables).flatMap(([, decl]) =>
        'stream' in decl && decl.stream ? [decl.stream.consumer.function as FunctionId] : [],
      ),
      webSocket: { apiId: this.webSocket.api.apiId, stageName: this.webSocket.stage.stageName },
      http: { apiId: this.http.api.apiId, stageName: this.http.stage.stageName },
      alarmEmail: props.alarmEmail,
      thresholds: props.alarmThresholds,
    });

    new CfnOutput(this, 'WebSocketUrl', { value: this.webSocket.stage.url, description: 'Clients connect here (?token=JWT)' });
    new CfnOutput(this, 'WebSocketCallbackUrl', {
      value: this.webSocket.callbackUrl,
      description: 'API Gateway Management API endpoint of the WebSocket stage',
    });
    new CfnOutput(this, 'HttpApiUrl', { value: this.http.url, description: 'Admin API and WeChat callbacks' });
    new CfnOutput(this, 'ClientTokenSecretArn', {
      value: this.clientTokenSecret.secretArn,
      description: 'Secrets Manager secret holding the client-token HS256 key',
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.monitoring.topic.topicArn,
      description: 'SNS topic every alarm notifies (subscribe to it; docs/operations.md)',
    });
    new CfnOutput(this, 'DashboardName', {
      value: this.monitoring.dashboard.dashboardName,
      description: 'CloudWatch dashboard of the gateway',
    });
  }

  /**
   * Exactly the declared DynamoDB actions: `dynamodb:{action}` on the table's ARN, and
   * `dynamodb:Query` on the ARN of each index declared as `Query:{indexName}` (that index only).
   * Nothing on the table's stream: its consumer's event source mapping grants that.
   */
  private grantTableActions(fn: GatewayFunction, tableId: TableId, actions: readonly string[]): void {
    const table = this.tables.tables[tableId];
    const declaredIndexes: readonly string[] = declaredTables[tableId].indexes.map((i) => i.indexName);
    const onTable = actions.filter((a) => !a.startsWith('Query:'));
    const queriedIndexes = actions.filter((a) => a.startsWith('Query:')).map((a) => a.slice('Query:'.length));
    for (const index of queriedIndexes) {
      if (!declaredIndexes.includes(index)) throw new Error(`table ${tableId} has no index ${index} to query`);
    }
    if (new Set(actions).size !== actions.length) throw new Error(`table ${tableId}: an action is listed twice (${actions.join(', ')})`);
    if (onTable.length > 0) {
      fn.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: onTable.map((a) => `dynamodb:${a}`), resources: [table.tableArn] }));
    }
    if (queriedIndexes.length > 0) {
      fn.role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['dynamodb:Query'], resources: queriedIndexes.map((index) => `${table.tableArn}/index/${index}`) }),
      );
    }
  }

  /** Environment variables for what the declaration says the function uses, and nothing else. */
  private environmentFor(decl: FunctionDeclaration, props: WxgateStackProps): Record<string, string> {
    const environment: Record<string, string> = {};
    for (const tableId of Object.keys(decl.tables ?? {}) as TableId[]) {
      environment[declaredTables[tableId].envVar] = this.tables.tables[tableId].tableName;
    }
    // Senders get the queue URL; a queue's consumer gets its records from the event source mapping instead.
    for (const queueId of Object.keys(decl.queues ?? {}) as QueueId[]) {
      environment[declaredQueues[queueId].envVar] = this.queues.queues[queueId].queueUrl;
    }
    if (decl.jwtSecret) environment[envNames.jwtSecretArn] = this.clientTokenSecret.secretArn;
    if (decl.adminKeys) environment[envNames.adminKeysArn] = this.adminKeysSecret.secretArn;
    if (decl.wechatAccounts) environment[envNames.wechatAccountsArn] = this.wechatAccountsSecret.secretArn;
    if (decl.tables?.connections && props.connectionRowLifetimeSeconds !== undefined) {
      environment[envNames.connectionRowLifetimeSeconds] = String(props.connectionRowLifetimeSeconds);
    }
    if (decl.tables?.connections && props.maxConnectionsPerUser !== undefined) {
      environment[envNames.maxConnectionsPerUser] = String(props.maxConnectionsPerUser);
    }
    if (decl.tables?.messages && props.inboxTtlDays !== undefined) {
      environment[envNames.inboxTtlDays] = String(props.inboxTtlDays);
    }
    return environment;
  }

  /** Grants exactly the access the declaration lists (and adds the env vars that depend on the WebSocket stage). */
  private grantDeclaredAccess(fn: GatewayFunction, decl: FunctionDeclaration): void {
    for (const [tableId, actions] of entriesOf<TableId, NonNullable<TableAccess[TableId]>>(decl.tables ?? {})) {
      this.grantTableActions(fn, tableId, actions);
    }

    for (const queueId of Object.keys(decl.queues ?? {}) as QueueId[]) {
      this.queues.queues[queueId].grantSendMessages(fn.role);
    }

    if (decl.manageConnections) {
      this.webSocket.grantManageConnections(fn.role);
      fn.function.addEnvironment(envNames.managementEndpoint, this.webSocket.callbackUrl);
      Validations.of(fn.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagResourceString(this, this.webSocket.connectionsArn)}]`,
        reason:
          'execute-api:ManageConnections addresses connections as {api}/{stage}/{method}/@connections/{connectionId}; ' +
          'connection ids are created at runtime by API Gateway, so the ARN must end in @connections/*. It is ' +
          'scoped to this API and this one stage.',
      });
    }

    if (decl.jwtSecret) this.clientTokenSecret.grantRead(fn.role);
    if (decl.adminKeys) this.adminKeysSecret.grantRead(fn.role);
    if (decl.wechatAccounts) this.wechatAccountsSecret.grantRead(fn.role);
  }
}
