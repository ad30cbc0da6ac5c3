import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { httpRoutes as declaredRoutes, type FunctionId, type HttpRouteDeclaration } from '../gateway-declaration';
import { jsonAccessLogFormat } from './access-log';

export interface HttpGatewayProps {
  /** The Lambda function behind each declared function id. */
  readonly functions: Record<FunctionId, IFunction>;
  /**
   * The HTTP routes (admin API and WeChat callbacks).
   * @default the `httpRoutes` declaration of `lib/gateway-declaration.ts`
   */
  readonly routes?: readonly HttpRouteDeclaration[];
  /**
   * Steady-state requests per second allowed on the default stage.
   * @default 200
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst of requests allowed on the default stage.
   * @default 400
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
 * The HTTP API for the admin API and WeChat callbacks: one Lambda-proxy route per declared
 * HTTP route, an auto-deployed, throttled `$default` stage with JSON access logs, no CORS.
 * Requests are authenticated by the handlers (HMAC-signed admin requests, WeChat signatures).
 */
export class HttpGateway extends Construct {
  /** The HTTP API. */
  public readonly api: apigwv2.HttpApi;
  /** The `$default` stage. */
  public readonly stage: apigwv2.HttpStage;
  /** The routes, keyed by `METHOD path`. */
  public readonly routes: Record<string, apigwv2.HttpRoute>;
  /** The stage's access log group. */
  public readonly accessLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: HttpGatewayProps) {
    super(scope, id);

    this.api = new apigwv2.HttpApi(this, 'Api', {
      description: 'wxgate admin API and WeChat callbacks',
      createDefaultStage: false,
    });

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.accessLogRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: {
        rateLimit: props.throttleRateLimit ?? 200,
        burstLimit: props.throttleBurstLimit ?? 400,
      },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: jsonAccessLogFormat('http'),
      },
    });

    this.routes = {};
    const routeSettings: Record<string, { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }> = {};
    for (const route of props.routes ?? declaredRoutes) {
      const key = `${route.method} ${route.path}`;
      const [created] = this.api.addRoutes({
        path: route.path,
        methods: [apigwv2.HttpMethod[route.method]],
        integration: new HttpLambdaIntegration(`${route.function}${key.replace(/[^A-Za-z0-9]/g, '')}`, props.functions[route.function]),
      });
      if (!created) throw new Error(`no route was created for ${key}`);
      this.routes[key] = created;
      if (route.throttle) routeSettings[key] = { ThrottlingRateLimit: route.throttle.rateLimit, ThrottlingBurstLimit: route.throttle.burstLimit };
      Validations.of(created).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'Authentication happens in the handler, per docs/protocol.md: /v1/* admin requests carry an HMAC-SHA256 ' +
          'signature with timestamp and nonce (replay-protected), and /wechat/* callbacks carry the WeChat ' +
          'signature; API Gateway IAM or JWT authorizers cannot verify either scheme.',
      });
    }
    // Route throttles (the L2 stage has no property for them).
    if (Object.keys(routeSettings).length > 0) (this.stage.node.defaultChild as apigwv2.CfnStage).addPropertyOverride('RouteSettings', routeSettings);
  }

  /** The URL of the default stage. */
  public get url(): string {
    return this.stage.url;
  }
}
