import { RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { websocket as declaredWebSocket, type FunctionId, type ThrottleDeclaration, type WebSocketRouteDeclaration } from '../gateway-declaration';
import { jsonAccessLogFormat } from './access-log';
import { constructIdOf } from './declaration-helpers';

/** The WebSocket part of the declaration (`websocket` in `lib/gateway-declaration.ts`). */
export interface WebSocketDeclaration {
  readonly routeSelectionExpression: string;
  readonly stageName: string;
  readonly authorizer: { readonly function: FunctionId; readonly identitySource: string };
  readonly stageThrottle?: ThrottleDeclaration;
  readonly routes: readonly WebSocketRouteDeclaration[];
}

export interface WebSocketGatewayProps {
  /** The Lambda function behind each declared function id (routes and authorizer look them up here). */
  readonly functions: Record<FunctionId, IFunction>;
  /**
   * Routes, route selection, stage name and authorizer.
   * @default the `websocket` declaration of `lib/gateway-declaration.ts`
   */
  readonly declaration?: WebSocketDeclaration;
  /**
   * Steady-state requests per second allowed on the stage (all routes).
   * @default the declaration's `stageThrottle.rateLimit` (2,000), else 500
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst of requests allowed on the stage.
   * @default the declaration's `stageThrottle.burstLimit` (4,000), else 1,000
   */
  readonly throttleBurstLimit?: number;
  /**
   * Retention of the stage's access log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly accessLogRetention?: logs.RetentionDays;
  /**
   * What happens to the access log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly accessLogRemovalPolicy?: RemovalPolicy;
}

/**
 * The client-facing WebSocket API: one route per declared route, the JWT REQUEST authorizer
 * on `$connect` only, route responses for two-way routes, and one auto-deployed, throttled
 * stage with JSON access logs.
 */
export class WebSocketGateway extends Construct {
  /** The WebSocket API. */
  public readonly api: apigwv2.WebSocketApi;
  /** The stage clients connect to (`wss://.../{stageName}`). */
  public readonly stage: apigwv2.WebSocketStage;
  /** The `$connect` authorizer. */
  public readonly authorizer: WebSocketLambdaAuthorizer;
  /** The routes, keyed by route key. */
  public readonly routes: Record<string, apigwv2.WebSocketRoute>;
  /** The stage's access log group. */
  public readonly accessLogGroup: logs.LogGroup;
  /** `https://{apiId}.execute-api.{region}.{suffix}/{stage}`: the Management API endpoint for this stage. */
  public readonly callbackUrl: string;
  /** ARN pattern of this stage's connections in the Management API: `{api}/{stage}/{any method}/@connections/{any id}`. */
  public readonly connectionsArn: string;

  constructor(scope: Construct, id: string, props: WebSocketGatewayProps) {
    super(scope, id);
    const decl = props.declaration ?? declaredWebSocket;

    this.api = new apigwv2.WebSocketApi(this, 'Api', {
      description: 'wxgate client WebSocket API',
      routeSelectionExpression: decl.routeSelectionExpression,
    });

    this.authorizer = new WebSocketLambdaAuthorizer('ConnectAuthorizer', props.functions[decl.authorizer.function], {
      identitySource: [decl.authorizer.identitySource],
    });

    this.routes = {};
    for (const route of decl.routes) {
      const isConnect = route.routeKey === '$connect';
      const integrationId = `${constructIdOf(route.routeKey.replace(/^\$/, ''))}Integration`;
      const created = this.api.addRoute(route.routeKey, {
        integration: new WebSocketLambdaIntegration(integrationId, props.functions[route.function]),
        authorizer: isConnect ? this.authorizer : undefined,
        returnResponse: route.returnResponse,
      });
      this.routes[route.routeKey] = created;
      if (!isConnect) {
        Validations.of(created).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason:
            'API Gateway WebSocket APIs can only authorize the $connect route. The connection was authorized ' +
            'there by the client-JWT REQUEST authorizer; this route only ever runs on that authenticated ' +
            'connection, and its handler reads the user id the authorizer put in the request context.',
        });
      }
    }

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.accessLogRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName: decl.stageName,
      autoDeploy: true,
      throttle: {
        rateLimit: props.throttleRateLimit ?? decl.stageThrottle?.rateLimit ?? 500,
        burstLimit: props.throttleBurstLimit ?? decl.stageThrottle?.burstLimit ?? 1000,
      },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: jsonAccessLogFormat('websocket'),
      },
    });

    // Route throttles (the L2 stage has no property for them).
    const routes: readonly WebSocketRouteDeclaration[] = decl.routes;
    const routeSettings = Object.fromEntries(
      routes.flatMap((route) => (route.throttle ? [[route.routeKey, { ThrottlingRateLimit: route.throttle.rateLimit, ThrottlingBurstLimit: route.throttle.burstLimit }]] : [])),
    );
    if (Object.keys(routeSettings).length > 0) (this.stage.node.defaultChild as apigwv2.CfnStage).addPropertyOverride('RouteSettings', routeSettings);

    this.callbackUrl = this.stage.callbackUrl;
    const apiArn = Stack.of(this).formatArn({ service: 'execute-api', resource: this.api.apiId });
    this.connectionsArn = `${apiArn}/${this.stage.stageName}/*/@connections/*`;
  }

  /**
   * Lets `grantee` post to, read and delete this stage's connections (execute-api:ManageConnections
   * on `{api}/{stage}/{any method}/@connections/{any id}` only: no other stage, API or action).
   */
  public grantManageConnections(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:ManageConnections'],
      resourceArns: [this.connectionsArn],
    });
  }
}
