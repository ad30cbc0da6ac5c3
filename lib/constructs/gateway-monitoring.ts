import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { queues as declaredQueues, type FunctionId, type QueueDeclaration, type QueueId } from '../gateway-declaration';
import { constructIdOf, entriesOf } from './declaration-helpers';

/**
 * What makes an alarm fire. Every count is a Sum over one period (`GatewayMonitoringProps.period`,
 * 5 minutes), compared with `>=`; one period over the threshold fires the alarm. docs/operations.md
 * says what each alarm means and what to do.
 */
export interface GatewayAlarmThresholds {
  /**
   * Errors (crashes, timeouts, a whole failed batch) of one function in a period. Handlers turn
   * refused requests into answers, and queue consumers report failed records one by one, so an
   * error is a fault, not a bad request.
   * @default 5
   */
  readonly functionErrors?: number;
  /**
   * Per function, instead of `functionErrors`.
   * @default { wsAuthorizer: 50 } (the authorizer answers a missing or unreadable token by throwing
   * `Unauthorized`, which Lambda counts as an error: clients without a token must not page anyone)
   */
  readonly functionErrorsOf?: Partial<Record<FunctionId, number>>;
  /**
   * Throttled invocations of one function in a period: a route refused (the client sees an
   * error), or a stream consumer held back.
   * @default 1
   */
  readonly functionThrottles?: number;
  /**
   * Age in seconds of a queue's oldest message (Maximum over the period).
   * @default per queue, from the declaration: twice the visibility timeout (a message failed at
   * least twice, or the backlog is that old) plus `maxDelaySeconds` (uplink, fanout and
   * wechatInbound 720 s, wechatOutbound 1,620 s)
   */
  readonly oldestMessageAgeSeconds?: Partial<Record<QueueId, number>>;
  /**
   * Age in seconds of the newest record a table-stream consumer has read (IteratorAge,
   * Maximum): the presence counters lag by that much.
   * @default 300
   */
  readonly streamIteratorAgeSeconds?: number;
  /**
   * WebSocket `IntegrationError` (a route's Lambda failed or answered badly) in a period.
   * @default 5
   */
  readonly webSocketIntegrationErrors?: number;
  /**
   * WebSocket `ExecutionError` (API Gateway could not run the integration) in a period.
   * @default 5
   */
  readonly webSocketExecutionErrors?: number;
  /**
   * HTTP API `5xx` answers in a period (admin API, WeChat callbacks and login; a failed Lambda
   * is a 500, and WeChat retries its callback).
   * @default 5
   */
  readonly httpServerErrors?: number;
  /**
   * Posts that failed after their retries (`liveFailed`, `lateFailed`, `fanoutFailed`, each on
   * its own) in a period: the recipient gets the message only with its next `sync`.
   * @default 10
   */
  readonly deliveryFailures?: number;
  /**
   * `failuresAfterAck`: a send was queued and acked, then a later step (the claim mark, the ack
   * post, live delivery) failed. The message is stored all the same.
   * @default 5
   */
  readonly failuresAfterAck?: number;
  /**
   * `wechatOutbound_failed`: WeChat messages that ended `failed` (a permanent error code, or the
   * retries ran out) in a period.
   * @default 5
   */
  readonly wechatOutboundFailed?: number;
}

/** An API Gateway stage, as its metrics name it (dimensions ApiId and Stage). */
export interface MonitoredStage {
  readonly apiId: string;
  readonly stageName: string;
}

export interface GatewayMonitoringProps {
  /** Every function, keyed by declared function id. */
  readonly functions: Record<FunctionId, IFunction>;
  /** Each function's log group: the dashboard's cold-start query reads their REPORT lines. */
  readonly functionLogGroups: Record<FunctionId, logs.ILogGroup>;
  /** The queues, keyed by declared queue id. */
  readonly queues: Record<QueueId, sqs.IQueue>;
  /** The dead-letter queue of each queue. */
  readonly deadLetterQueues: Record<QueueId, sqs.IQueue>;
  /**
   * The queue declarations the age thresholds are derived from.
   * @default the `queues` of `lib/gateway-declaration.ts`
   */
  readonly queueDeclarations?: Record<QueueId, QueueDeclaration>;
  /**
   * Functions that consume a table stream (their IteratorAge is alarmed).
   * @default - none
   */
  readonly streamConsumers?: readonly FunctionId[];
  /** The WebSocket API's stage. */
  readonly webSocket: MonitoredStage;
  /** The HTTP API's stage (`$default`). */
  readonly http: MonitoredStage;
  /**
   * An address that gets every alarm (and its return to OK) by email; AWS sends it a
   * confirmation link first, and nothing arrives until it is followed.
   * @default - no subscription: subscribe to the topic yourself (`AlarmTopicArn` output)
   */
  readonly alarmEmail?: string;
  /**
   * What makes each alarm fire.
   * @default - the defaults documented on `GatewayAlarmThresholds`
   */
  readonly thresholds?: GatewayAlarmThresholds;
  /**
   * Length of one evaluation period of every alarm, and of one point on the dashboard.
   * @default Duration.minutes(5)
   */
  readonly period?: Duration;
  /**
   * Namespace of the metrics the handlers emit (Powertools EMF, lambdas/runtime/observability.ts).
   * @default 'wxgate'
   */
  readonly metricsNamespace?: string;
  /**
   * The `service` dimension those metrics carry (POWERTOOLS_SERVICE_NAME).
   * @default 'wxgate'
   */
  readonly serviceName?: string;
}

/** The delivery-outcome metrics (namespace `wxgate`) that have an alarm, and their threshold. */
const DELIVERY_ALARMS = [
  { metric: 'liveFailed', id: 'LiveDeliveryFailed', threshold: (t: GatewayAlarmThresholds) => t.deliveryFailures ?? 10, what: 'posts inside send (or an admin push) failed after their retries' },
  { metric: 'lateFailed', id: 'LateDeliveryFailed', threshold: (t: GatewayAlarmThresholds) => t.deliveryFailures ?? 10, what: 'posts by the persisters to connections opened after the send failed after their retries' },
  { metric: 'fanoutFailed', id: 'FanoutDeliveryFailed', threshold: (t: GatewayAlarmThresholds) => t.deliveryFailures ?? 10, what: 'fan-out job posts failed after their retries' },
  { metric: 'failuresAfterAck', id: 'FailuresAfterAck', threshold: (t: GatewayAlarmThresholds) => t.failuresAfterAck ?? 5, what: 'sends were acked, then a later step failed (the message is stored all the same)' },
  { metric: 'wechatOutbound_failed', id: 'WechatOutboundFailed', threshold: (t: GatewayAlarmThresholds) => t.wechatOutboundFailed ?? 5, what: 'WeChat messages ended failed' },
] as const;

export type DeliveryAlarmMetric = (typeof DELIVERY_ALARMS)[number]['metric'];

/** The default age threshold of a queue's oldest message, in seconds (see `GatewayAlarmThresholds`). */
export const defaultOldestMessageAgeSeconds = (decl: QueueDeclaration): number => 2 * decl.visibilityTimeoutSeconds + (decl.maxDelaySeconds ?? 0);

const RUNBOOK = 'docs/operations.md';

/**
 * Alarms and one dashboard for the whole gateway. Every alarm notifies one SNS topic (encrypted
 * with its own KMS key, which CloudWatch may use; TLS only), when it fires and when it is OK again:
 *   - each dead-letter queue not empty;
 *   - the age of each queue's oldest message;
 *   - errors and throttles of each function; the IteratorAge of each stream consumer;
 *   - WebSocket IntegrationError and ExecutionError, HTTP API 5xx;
 *   - the delivery outcomes the handlers count (failed posts, failures after the ack, failed
 *     WeChat messages) above a threshold.
 * The dashboard shows connections, messages in and out, delivery outcomes, queue depth and age,
 * errors, latency, concurrency and cold starts (from the functions' REPORT log lines: Lambda
 * publishes no cold-start metric, and the handlers emit none).
 */
export class GatewayMonitoring extends Construct {
  /** Where every alarm goes. */
  public readonly topic: sns.Topic;
  /** The topic's encryption key (a customer managed key: CloudWatch cannot use the AWS managed SNS key). */
  public readonly topicKey: kms.Key;
  /** The one dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** ApproximateNumberOfMessagesVisible > 0 on each dead-letter queue. */
  public readonly deadLetterAlarms: Record<QueueId, cloudwatch.Alarm>;
  /** ApproximateAgeOfOldestMessage of each queue. */
  public readonly oldestMessageAlarms: Record<QueueId, cloudwatch.Alarm>;
  /** Errors of each function. */
  public readonly errorAlarms: Record<FunctionId, cloudwatch.Alarm>;
  /** Throttles of each function. */
  public readonly throttleAlarms: Record<FunctionId, cloudwatch.Alarm>;
  /** IteratorAge of each table-stream consumer. */
  public readonly iteratorAgeAlarms: Partial<Record<FunctionId, cloudwatch.Alarm>>;
  /** WebSocket IntegrationError, WebSocket ExecutionError and HTTP API 5xx. */
  public readonly apiAlarms: { readonly webSocketIntegrationErrors: cloudwatch.Alarm; readonly webSocketExecutionErrors: cloudwatch.Alarm; readonly httpServerErrors: cloudwatch.Alarm };
  /** The counted delivery outcomes, keyed by metric name. */
  public readonly deliveryAlarms: Record<DeliveryAlarmMetric, cloudwatch.Alarm>;
  /** Every alarm above. */
  public readonly alarms: readonly cloudwatch.Alarm[];

  private readonly period: Duration;
  private readonly namespace: string;
  private readonly service: string;

  constructor(scope: Construct, id: string, props: GatewayMonitoringProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const t = props.thresholds ?? {};
    this.period = props.period ?? Duration.minutes(5);
    this.namespace = props.metricsNamespace ?? 'wxgate';
    this.service = props.serviceName ?? 'wxgate';
    const queueDecls: Record<QueueId, QueueDeclaration> = props.queueDeclarations ?? declaredQueues;
    const functionIds = Object.keys(props.functions) as FunctionId[];

    // CloudWatch publishes to an encrypted topic only with a key whose policy lets it: the AWS
    // managed alias/aws/sns key's policy cannot be changed, so the topic has its own key.
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'wxgate: encrypts the alarm topic (CloudWatch may use it to publish alarms)',
      enableKeyRotation: true,
      // It protects notifications in flight only; nothing stays encrypted under it.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublishToTheEncryptedTopic',
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'wxgate alarms',
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    // A topic policy replaces SNS's default one, so CloudWatch's right to publish is explicit:
    // alarms of this account and Region only.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisAccountPublish',
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
        },
      }),
    );
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const alarms: cloudwatch.Alarm[] = [];
    const action = new SnsAction(this.topic);
    const alarm = (alarmId: string, metric: cloudwatch.IMetric, threshold: number, description: string, comparison = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD) => {
      const created = new cloudwatch.Alarm(this, alarmId, {
        metric,
        threshold,
        comparisonOperator: comparison,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        // No data is no traffic (or an idle queue, whose metrics SQS stops after 6 hours): not a fault.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      created.addAlarmAction(action);
      created.addOkAction(action);
      alarms.push(created);
      return created;
    };
    const minutes = this.period.toMinutes();

    // Queues.
    const deadLetterAlarms: Partial<Record<QueueId, cloudwatch.Alarm>> = {};
    const oldestMessageAlarms: Partial<Record<QueueId, cloudwatch.Alarm>> = {};
    for (const [queueId, decl] of entriesOf<QueueId, QueueDeclaration>(queueDecls)) {
      const dlq = props.deadLetterQueues[queueId];
      deadLetterAlarms[queueId] = alarm(
        `${constructIdOf(queueId)}DeadLetterNotEmpty`,
        dlq.metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, period: this.period }),
        0,
        `wxgate: the ${queueId} dead-letter queue holds messages that failed ${decl.maxReceiveCount} times. ` +
          `Look at them and redrive: ${RUNBOOK}, "A dead-letter queue is not empty".`,
        cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      );
      const age = t.oldestMessageAgeSeconds?.[queueId] ?? defaultOldestMessageAgeSeconds(decl);
      oldestMessageAlarms[queueId] = alarm(
        `${constructIdOf(queueId)}OldestMessageAge`,
        props.queues[queueId].metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: this.period }),
        age,
        `wxgate: a message has waited ${age} s or more on the ${queueId} queue (its consumer fails, is throttled or cannot keep up). ` +
          `${RUNBOOK}, "A queue's oldest message is old".`,
      );
    }
    this.deadLetterAlarms = deadLetterAlarms as Record<QueueId, cloudwatch.Alarm>;
    this.oldestMessageAlarms = oldestMessageAlarms as Record<QueueId, cloudwatch.Alarm>;

    // Functions.
    const errorsOf: Partial<Record<FunctionId, number>> = { wsAuthorizer: 50, ...t.functionErrorsOf };
    const errorAlarms: Partial<Record<FunctionId, cloudwatch.Alarm>> = {};
    const throttleAlarms: Partial<Record<FunctionId, cloudwatch.Alarm>> = {};
    for (const functionId of functionIds) {
      const fn = props.functions[functionId];
      const errors = errorsOf[functionId] ?? t.functionErrors ?? 5;
      errorAlarms[functionId] = alarm(
        `${constructIdOf(functionId)}Errors`,
        fn.metricErrors({ statistic: cloudwatch.Stats.SUM, period: this.period }),
        errors,
        `wxgate: ${functionId} failed ${errors} or more times in ${minutes} minutes. ${RUNBOOK}, "A function fails".`,
      );
      const throttles = t.functionThrottles ?? 1;
      throttleAlarms[functionId] = alarm(
        `${constructIdOf(functionId)}Throttles`,
        fn.metricThrottles({ statistic: cloudwatch.Stats.SUM, period: this.period }),
        throttles,
        `wxgate: ${functionId} was throttled ${throttles} or more times in ${minutes} minutes (its reserved concurrency or the account's is used up). ` +
          `${RUNBOOK}, "A function is throttled".`,
      );
    }
    this.errorAlarms = errorAlarms as Record<FunctionId, cloudwatch.Alarm>;
    this.throttleAlarms = throttleAlarms as Record<FunctionId, cloudwatch.Alarm>;

    this.iteratorAgeAlarms = {};
    const iteratorAge = t.streamIteratorAgeSeconds ?? 300;
    for (const functionId of props.streamConsumers ?? []) {
      this.iteratorAgeAlarms[functionId] = alarm(
        `${constructIdOf(functionId)}IteratorAge`,
        this.lambdaMetric('IteratorAge', props.functions[functionId], cloudwatch.Stats.MAXIMUM),
        iteratorAge * 1000,
        `wxgate: ${functionId} is ${iteratorAge} s or more behind its table stream (the presence counters lag). ${RUNBOOK}, "The presence stream falls behind".`,
      );
    }

    // API Gateway.
    this.apiAlarms = {
      webSocketIntegrationErrors: alarm(
        'WebSocketIntegrationErrors',
        this.apiMetric(props.webSocket, 'IntegrationError'),
        t.webSocketIntegrationErrors ?? 5,
        `wxgate: WebSocket routes answered ${t.webSocketIntegrationErrors ?? 5} or more integration errors in ${minutes} minutes (a route's function failed). ` +
          `${RUNBOOK}, "API Gateway errors".`,
      ),
      webSocketExecutionErrors: alarm(
        'WebSocketExecutionErrors',
        this.apiMetric(props.webSocket, 'ExecutionError'),
        t.webSocketExecutionErrors ?? 5,
        `wxgate: API Gateway failed to run WebSocket routes ${t.webSocketExecutionErrors ?? 5} or more times in ${minutes} minutes. ${RUNBOOK}, "API Gateway errors".`,
      ),
      httpServerErrors: alarm(
        'HttpServerErrors',
        this.apiMetric(props.http, '5xx'),
        t.httpServerErrors ?? 5,
        `wxgate: the HTTP API (admin API, WeChat callbacks, login) answered 5xx ${t.httpServerErrors ?? 5} or more times in ${minutes} minutes. ${RUNBOOK}, "API Gateway errors".`,
      ),
    };

    // Delivery outcomes the handlers count.
    const deliveryAlarms: Partial<Record<DeliveryAlarmMetric, cloudwatch.Alarm>> = {};
    for (const d of DELIVERY_ALARMS) {
      const threshold = d.threshold(t);
      deliveryAlarms[d.metric] = alarm(
        d.id,
        this.appMetric(d.metric),
        threshold,
        `wxgate: ${threshold} or more ${d.what} in ${minutes} minutes (metric ${this.namespace}/${d.metric}). ${RUNBOOK}, "Delivery failures".`,
      );
    }
    this.deliveryAlarms = deliveryAlarms as Record<DeliveryAlarmMetric, cloudwatch.Alarm>;
    this.alarms = alarms;

    this.dashboard = this.buildDashboard(props, functionIds, queueDecls);
  }

  /** A count the handlers emit (EMF, namespace `wxgate`, dimension `service`), summed per period. */
  private appMetric(name: string, label?: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: name,
      dimensionsMap: { service: this.service },
      statistic: cloudwatch.Stats.SUM,
      period: this.period,
      label,
    });
  }

  /** An AWS/ApiGateway metric of one stage (dimensions ApiId and Stage), summed per period unless a statistic is given. */
  private apiMetric(stage: MonitoredStage, name: string, statistic: string = cloudwatch.Stats.SUM, label?: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/ApiGateway',
      metricName: name,
      dimensionsMap: { ApiId: stage.apiId, Stage: stage.stageName },
      statistic,
      period: this.period,
      label,
    });
  }

  private lambdaMetric(name: string, fn: IFunction, statistic: string, label?: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: name,
      dimensionsMap: { FunctionName: fn.functionName },
      statistic,
      period: this.period,
      label,
    });
  }

  private buildDashboard(props: GatewayMonitoringProps, functionIds: FunctionId[], queueDecls: Record<QueueId, QueueDeclaration>): cloudwatch.Dashboard {
    const queueIds = Object.keys(queueDecls) as QueueId[];
    const graph = (title: string, left: cloudwatch.IMetric[], extra: Partial<cloudwatch.GraphWidgetProps> = {}) =>
      new cloudwatch.GraphWidget({ title, left, width: 12, height: 6, period: this.period, ...extra });
    const perFunction = (name: string, statistic: string) =>
      functionIds.map((id) => this.lambdaMetric(name, props.functions[id], statistic, id));
    const app = (...names: string[]) => names.map((n) => this.appMetric(n));
    const logGroupNames = functionIds.map((id) => props.functionLogGroups[id].logGroupName);

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
    });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          '# wxgate\nEvery alarm, what it means and what to do: `docs/operations.md`. Counts are sums per ' +
          `${this.period.toMinutes()} minutes; the presence counters themselves are \`GET /v1/stats\` (they are kept in DynamoDB, not emitted as a metric).`,
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...this.alarms], width: 24, height: 6 }));
    dashboard.addWidgets(
      graph('Connections opened and closed', [
        this.apiMetric(props.webSocket, 'ConnectCount', cloudwatch.Stats.SUM, 'connects (ConnectCount)'),
        this.lambdaMetric('Invocations', props.functions.wsDisconnect, cloudwatch.Stats.SUM, 'disconnects ($disconnect invocations)'),
        this.appMetric('presenceCounted', 'presence changes counted (presenceCounted)'),
      ]),
      graph('Messages in', [
        this.apiMetric(props.webSocket, 'MessageCount', cloudwatch.Stats.SUM, 'WebSocket frames and posts (MessageCount)'),
        ...app('messagesQueued', 'sendRetriesDeduplicated', 'sendsRefused', 'adminPushes', 'adminPushJobs', 'wechatCallbacks', 'wechatOutboundSubmitted'),
      ]),
    );
    dashboard.addWidgets(
      graph('Messages stored and out', app('messagesStored', 'wechatMessagesStored', 'redeliveriesSkipped', 'liveDelivered', 'lateDelivered', 'fanoutDelivered', 'fanoutTasks', 'wechatOutbound_sent')),
      graph(
        'Delivery problems',
        app('liveFailed', 'lateFailed', 'fanoutFailed', 'failuresAfterAck', 'wechatOutbound_failed', 'wechatOutbound_retrying', 'liveGone', 'lateGone', 'fanoutGone', 'presenceClamped'),
      ),
    );
    dashboard.addWidgets(
      graph('Queue depth (visible messages; DLQ: dead-letter)', [
        ...queueIds.map((q) => props.queues[q].metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, period: this.period, label: q })),
        ...queueIds.map((q) => props.deadLetterQueues[q].metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, period: this.period, label: `${q} DLQ` })),
      ]),
      graph(
        'Age of the oldest message (s)',
        queueIds.map((q) => props.queues[q].metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: this.period, label: q })),
        { leftAnnotations: queueIds.map((q) => ({ value: (props.thresholds?.oldestMessageAgeSeconds?.[q] ?? defaultOldestMessageAgeSeconds(queueDecls[q])), label: `${q} alarm` })) },
      ),
    );
    dashboard.addWidgets(
      graph('Function errors', perFunction('Errors', cloudwatch.Stats.SUM)),
      graph('Function throttles', perFunction('Throttles', cloudwatch.Stats.SUM)),
    );
    dashboard.addWidgets(
      graph('API Gateway errors', [
        this.apiMetric(props.webSocket, 'IntegrationError', cloudwatch.Stats.SUM, 'WebSocket IntegrationError'),
        this.apiMetric(props.webSocket, 'ExecutionError', cloudwatch.Stats.SUM, 'WebSocket ExecutionError'),
        this.apiMetric(props.webSocket, 'ClientError', cloudwatch.Stats.SUM, 'WebSocket ClientError (4xx, throttling included)'),
        this.apiMetric(props.http, '5xx', cloudwatch.Stats.SUM, 'HTTP 5xx'),
        this.apiMetric(props.http, '4xx', cloudwatch.Stats.SUM, 'HTTP 4xx'),
      ]),
      graph('API Gateway latency, p99 (ms)', [
        this.apiMetric(props.webSocket, 'IntegrationLatency', cloudwatch.Stats.p(99), 'WebSocket IntegrationLatency p99'),
        this.apiMetric(props.http, 'Latency', cloudwatch.Stats.p(99), 'HTTP Latency p99'),
        this.apiMetric(props.http, 'IntegrationLatency', cloudwatch.Stats.p(99), 'HTTP IntegrationLatency p99'),
      ]),
    );
    dashboard.addWidgets(
      graph('Function duration, p99 (ms)', perFunction('Duration', cloudwatch.Stats.p(99))),
      graph('Concurrent executions (max)', perFunction('ConcurrentExecutions', cloudwatch.Stats.MAXIMUM)),
    );
    // Cold starts: Lambda has no metric for them. Each cold start's REPORT line carries its Init
    // Duration, which Logs Insights reads as @initDuration (each view of the dashboard runs these
    // queries, billed by the log data they scan).
    dashboard.addWidgets(
      new cloudwatch.LogQueryWidget({
        title: 'Cold starts (REPORT lines with an Init Duration)',
        logGroupNames,
        view: cloudwatch.LogQueryVisualizationType.LINE,
        queryLines: ['filter @type = "REPORT" and ispresent(@initDuration)', `stats count(*) as coldStarts by bin(${this.period.toMinutes()}m)`],
        width: 12,
        height: 6,
      }),
      new cloudwatch.LogQueryWidget({
        title: 'Cold starts by function: count and Init Duration (ms)',
        logGroupNames,
        view: cloudwatch.LogQueryVisualizationType.TABLE,
        queryLines: [
          'filter @type = "REPORT" and ispresent(@initDuration)',
          'stats count(*) as coldStarts, pct(@initDuration, 50) as p50InitMs, max(@initDuration) as maxInitMs by @log',
          'sort coldStarts desc',
        ],
        width: 12,
        height: 6,
      }),
    );
    return dashboard;
  }
}
