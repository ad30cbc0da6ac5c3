import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { GATEWAY_BUNDLING, GATEWAY_NODE_OPTIONS } from './gateway-bundling';

/** Repository root (this file lives in `lib/constructs/`). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The Lambda runtime every wxgate function runs on. */
export const GATEWAY_RUNTIME = Runtime.NODEJS_22_X;

export interface GatewayFunctionProps {
  /** Handler module relative to the repository root (it exports `handler`), e.g. `lambdas/handlers/ws-ping.ts`. */
  readonly entry: string;
  /** Function description shown in the console. */
  readonly description: string;
  /**
   * Function timeout.
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;
  /**
   * Memory size in MB.
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Environment variables, in addition to the ones every wxgate function gets
   * (`POWERTOOLS_SERVICE_NAME`, `NODE_OPTIONS`).
   * @default - none
   */
  readonly environment?: Record<string, string>;
  /**
   * How long the function's log group keeps its events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the function's log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Concurrent executions reserved for this function out of the account's pool.
   * @default - none: the function shares the unreserved pool
   */
  readonly reservedConcurrency?: number;
  /**
   * Powertools service name (`POWERTOOLS_SERVICE_NAME`).
   * @default 'wxgate'
   */
  readonly serviceName?: string;
}

/**
 * The one way wxgate builds a Lambda function: Node.js 22 on arm64, bundled locally with
 * esbuild (no Docker) into minified ESM with source maps (gateway-bundling.ts), X-Ray active tracing, an explicit
 * log group with retention, and its own role that may write only to that log group.
 * Access to tables, queues and the Management API is granted by the caller.
 */
export class GatewayFunction extends Construct {
  /** The Lambda function. */
  public readonly function: NodejsFunction;
  /** The function's execution role (starts with log-group write access and X-Ray only). */
  public readonly role: iam.Role;
  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GatewayFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // An explicit role instead of the AWSLambdaBasicExecutionRole managed policy:
    // the function may write to its own log group and nothing else until the caller grants more.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${props.entry}`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: path.join(REPO_ROOT, props.entry),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: GATEWAY_RUNTIME,
      architecture: Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(10),
      memorySize: props.memorySize ?? 256,
      reservedConcurrentExecutions: props.reservedConcurrency,
      tracing: Tracing.ACTIVE,
      logGroup: this.logGroup,
      role: this.role,
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? 'wxgate',
        NODE_OPTIONS: GATEWAY_NODE_OPTIONS,
        ...props.environment,
      },
      // One definition shared with the bundle-size test and the cold-start bench (gateway-bundling.ts).
      bundling: GATEWAY_BUNDLING,
    });

    const cfnFunction = this.function.node.defaultChild;
    if (cfnFunction) {
      Validations.of(cfnFunction).acknowledge({
        id: 'AwsSolutions-L1',
        reason:
          'Node.js 22 (nodejs22.x) is pinned on purpose: it is a supported LTS runtime and matches the ' +
          'Node version the handlers are developed, bundled (esbuild target node22) and tested against. ' +
          'Moving to a newer runtime is a deliberate, tested change, not an automatic one.',
      });
    }
    // Tracing.ACTIVE adds xray:PutTraceSegments / xray:PutTelemetryRecords on "*".
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only the X-Ray write actions added by active tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) ' +
        'use Resource "*": X-Ray does not support resource-level permissions for them. ' +
        'The infra tests assert that no other statement of a function role uses "*".',
    });
  }
}
