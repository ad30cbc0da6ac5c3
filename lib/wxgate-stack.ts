import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, Validations, type StackProps } from 'aws-cdk-lib';
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
  type TableId,
} from './gateway-declaration';
import { ApiGatewayAccountLogging } from './constructs/api-gateway-account-logging';
import { constructIdOf, entriesOf } from './constructs/declaration-helpers';
import { GatewayFunction } from './constructs/gateway-function';
import { GatewayQueues } from './constructs/gateway-queues';
import { GatewayTables } from './constructs/gateway-tables';
import { HttpGateway } from './constructs/http-gateway';
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
   * Set the Region's API Gateway account CloudWatch Logs role (needed once per account and Region
   * before a WebSocket stage can write access logs). Turn off when the account already manages it.
   * @default true
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

  constructor(scope: Construct, id: string, props: WxgateStackProps = {}) {
    super(scope, id, props);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.tables = new GatewayTables(this, 'Tables', { removalPolicy });
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
    if (props.configureApiGatewayAccountLogging ?? true) {
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
    for (const [tableId, access] of entriesOf<TableId, string>(decl.tables ?? {})) {
      const table = this.tables.tables[tableId];
      if (access === 'readWrite') table.grantReadWriteData(fn.role);
      else table.grantReadData(fn.role);
      if (declaredTables[tableId].indexes.length > 0) {
        Validations.of(fn.role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${nagResourceString(this, `${table.tableArn}/index/*`)}]`,
          reason:
            `Access to the declared global secondary indexes (${declaredTables[tableId].indexes.map((i) => i.indexName).join(', ')}) ` +
            `of the ${tableId} table only: DynamoDB index ARNs are table ARN + /index/{name}, and the grant covers ` +
            'that one table\'s indexes, no other table.',
        });
      }
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
