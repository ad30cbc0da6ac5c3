/**
 * The one declaration of wxgate's routes, tables, queues and functions.
 *
 * Plain data, no CDK or SDK imports: the CDK stack (`lib/`), the local runtime (`local/`)
 * and the Lambda code (`lambdas/runtime/config.ts`, for environment variable names) all read
 * it, so a route, table or queue is described exactly once. Add a route here and it exists
 * both in AWS and in local mode.
 */

export type AttributeType = 'S' | 'N';

export interface KeyDeclaration {
  readonly name: string;
  readonly type: AttributeType;
}

export interface IndexDeclaration {
  readonly indexName: string;
  readonly partitionKey: KeyDeclaration;
  readonly sortKey?: KeyDeclaration;
  /**
   * Non-key attributes the index copies (INCLUDE); omitted: every attribute (ALL). An index
   * write costs by the size it copies, so copy only what its readers use.
   */
  readonly projection?: readonly string[];
}

export interface TableDeclaration {
  readonly description: string;
  readonly partitionKey: KeyDeclaration;
  readonly sortKey?: KeyDeclaration;
  /** Epoch-seconds attribute DynamoDB TTL deletes on. Reads must still filter: deletion lags. */
  readonly ttlAttribute?: string;
  readonly indexes: readonly IndexDeclaration[];
  /** Environment variable that carries the physical table name to functions that use it. */
  readonly envVar: string;
  /**
   * A DynamoDB stream (NEW_AND_OLD_IMAGES) read by this consumer, e.g. presence counting, which
   * must also see the deletions TTL makes.
   */
  readonly stream?: { readonly consumer: { readonly function: string; readonly batchSize: number } };
  /**
   * DynamoDB deletion protection: the table cannot be deleted (console, CLI, or CloudFormation)
   * until it is turned off. On every table whose rows are not rebuilt by themselves.
   */
  readonly deletionProtection: boolean;
  /**
   * Point-in-time recovery (35 days of restorable history, billed per GB-month of table size):
   * where an older copy of the data is worth restoring.
   */
  readonly pointInTimeRecovery: boolean;
}

export const tables = {
  connections: {
    description: 'One row per open WebSocket connection: connection id -> user, device, times, TTL.',
    partitionKey: { name: 'connectionId', type: 'S' },
    ttlAttribute: 'expiresAt',
    indexes: [
      // Every connection of a user (multi-device delivery), oldest first.
      { indexName: 'byUser', partitionKey: { name: 'userId', type: 'S' }, sortKey: { name: 'connectedAt', type: 'N' }, projection: ['deviceId', 'expiresAt'] },
    ],
    envVar: 'CONNECTIONS_TABLE',
    // Every insert and removal (TTL's included) moves the presence counters (GET /v1/stats).
    stream: { consumer: { function: 'presenceCounter', batchSize: 50 } },
    // Rebuilds itself: every row is gone 2 h 10 min after its connection opened, and clients
    // reconnect. A lost table costs one reconnect per client, so neither protection nor backups.
    deletionProtection: false,
    pointInTimeRecovery: false,
  },
  messages: {
    description:
      'Messages and per-user inboxes: msg#{msgId} rows, inbox#{userId} rows sorted by storage position, ' +
      'and dedup#{userId}#{clientId} rows for client retries.',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    ttlAttribute: 'expiresAt',
    indexes: [],
    envVar: 'MESSAGES_TABLE',
    // Every stored message and every inbox (the only copy `sync` reads): protected and restorable.
    deletionProtection: true,
    pointInTimeRecovery: true,
  },
  groups: {
    description: 'Group membership: (groupId, userId) rows.',
    partitionKey: { name: 'groupId', type: 'S' },
    sortKey: { name: 'userId', type: 'S' },
    indexes: [],
    envVar: 'GROUPS_TABLE',
    // Membership exists nowhere else (written by the admin API, no TTL): protected and restorable.
    deletionProtection: true,
    pointInTimeRecovery: true,
  },
  admin: {
    description:
      'Admin API state: nonce#{keyId}#{nonce} rows (replay protection, TTL), job#{jobId} rows with their ' +
      'task#{taskId} completion markers (exact fan-out counters), and presence counters.',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    ttlAttribute: 'expiresAt',
    indexes: [],
    envVar: 'ADMIN_TABLE',
    // Running fan-out jobs and their counters, replay protection, presence counters: losing them
    // mid-flight breaks jobs and reopens the nonce window, so protected. Not restorable on
    // purpose: every row expires within days (nonces in minutes) or is repaired by a recount,
    // and an old copy of counters or nonces is wrong, not useful.
    deletionProtection: true,
    pointInTimeRecovery: false,
  },
  wechat: {
    description:
      'WeChat API state: token#{accountId} rows (the cached access token, its expiry and the refresh lease), ' +
      'out#{outboundId} rows (each outbound message and its delivery state) and client#{accountId}#{clientMsgId} ' +
      'rows (idempotent submissions).',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    ttlAttribute: 'expiresAt',
    indexes: [],
    envVar: 'WECHAT_TABLE',
    // Outbound records are the only copy of a submitted (202) WeChat message until it is sent,
    // and of its state: protected and restorable.
    deletionProtection: true,
    pointInTimeRecovery: true,
  },
} as const satisfies Record<string, TableDeclaration>;

export type TableId = keyof typeof tables;

export interface QueueConsumerDeclaration {
  /** Function id in `functions`; checked at compile time below. */
  readonly function: string;
  /** Records per invocation (an SQS event source mapping's batch size). */
  readonly batchSize: number;
  /** At most this many concurrent invocations (the event source mapping's maximum concurrency, >= 2). */
  readonly maxConcurrency?: number;
}

export interface QueueDeclaration {
  readonly description: string;
  readonly fifo: boolean;
  readonly visibilityTimeoutSeconds: number;
  readonly retentionDays: number;
  /** Receives before a message moves to the queue's dead-letter queue. */
  readonly maxReceiveCount: number;
  /**
   * Longest DelaySeconds its senders set on purpose (a retry that waits in the queue). The alarm
   * on the age of the queue's oldest message allows for it.
   */
  readonly maxDelaySeconds?: number;
  readonly envVar: string;
  readonly consumer: QueueConsumerDeclaration;
  /**
   * The queue and its dead-letter queue stay when the stack is deleted or the queue replaced
   * (DeletionPolicy and UpdateReplacePolicy Retain): for queues holding messages someone was
   * already told were taken, which exist nowhere else.
   */
  readonly retain: boolean;
}

export const queues = {
  uplink: {
    description: 'Client uplinks, FIFO per conversation; a message is acked to its sender once it is here.',
    fifo: true,
    // Six times the consumer's timeout, as AWS advises for event source mappings.
    visibilityTimeoutSeconds: 360,
    retentionDays: 14,
    maxReceiveCount: 5,
    envVar: 'UPLINK_QUEUE_URL',
    // Bounded, so a burst of conversations cannot take the concurrency the routes need.
    consumer: { function: 'uplinkPersister', batchSize: 10, maxConcurrency: 20 },
    // Acked to the sender (or answered 200/202 to an admin push) and not yet stored.
    retain: true,
  },
  fanout: {
    description: 'Fan-out tasks of admin pushes and broadcasts (scan a page of connections, post to a page); a task is idempotent.',
    fifo: false,
    visibilityTimeoutSeconds: 360,
    retentionDays: 4,
    maxReceiveCount: 5,
    envVar: 'FANOUT_QUEUE_URL',
    consumer: { function: 'fanoutWorker', batchSize: 1, maxConcurrency: 2 },
    // Live delivery only: every message a task posts is already stored (sync finds it).
    retain: false,
  },
  wechatInbound: {
    description:
      'WeChat callbacks, FIFO per WeChat user; the de-duplication id is derived from the callback (MsgId, or ' +
      'FromUserName+CreateTime+Event), so WeChat retries landing on different instances are queued once.',
    fifo: true,
    visibilityTimeoutSeconds: 360,
    retentionDays: 14,
    maxReceiveCount: 5,
    envVar: 'WECHAT_INBOUND_QUEUE_URL',
    consumer: { function: 'wechatInbound', batchSize: 10, maxConcurrency: 5 },
    // WeChat was answered `success` for each of them and will not send them again.
    retain: true,
  },
  wechatOutbound: {
    description:
      'Outbound WeChat API calls (customer-service, WeCom application, template and subscribe messages), one per ' +
      'attempt; a retry is a new message with a delay, never a sleep in the worker.',
    fifo: false,
    // Six times the worker's timeout, as AWS advises; longer than its claim (SEND_LEASE_MS).
    visibilityTimeoutSeconds: 360,
    retentionDays: 4,
    maxReceiveCount: 5,
    // A retry waits in the queue, up to SQS's 900 s (domain/wechat-retry-policy.ts).
    maxDelaySeconds: 900,
    envVar: 'WECHAT_OUTBOUND_QUEUE_URL',
    consumer: { function: 'wechatOutbound', batchSize: 5, maxConcurrency: 2 },
    // The next attempt of a submitted message: without it the record stays `queued` forever.
    retain: true,
  },
} as const satisfies Record<string, QueueDeclaration>;

export type QueueId = keyof typeof queues;

/**
 * The DynamoDB actions a function may call on a table, by API name (granted as `dynamodb:{name}`
 * on the table's ARN). `Query` is a Query of the table itself; a Query of a global secondary index
 * is `Query:{indexName}` (granted on that index's ARN only). A transaction needs the action of each
 * of its items (TransactWriteItems is not an IAM action: Put -> PutItem, Update -> UpdateItem,
 * Delete -> DeleteItem, ConditionCheck -> ConditionCheckItem). Reading the table's stream is the
 * stream consumer's (`stream.consumer`), never listed here.
 */
export type DynamoAction =
  | 'GetItem'
  | 'BatchGetItem'
  | 'Query'
  | 'Scan'
  | 'PutItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'BatchWriteItem'
  | 'ConditionCheckItem';

/** Distributes over the index union, so a table without indexes has none (never). */
type IndexNames<I> = I extends { readonly indexName: infer N extends string } ? N : never;
type IndexNameOf<T extends TableId> = IndexNames<(typeof tables)[T]['indexes'][number]>;

/** What a function may do on table `T`: actions, and Queries of its declared indexes. */
export type TableAction<T extends TableId> = DynamoAction | `Query:${IndexNameOf<T>}`;

/** Per table, the exact actions a function uses (every adapter method it can reach, and no more). */
export type TableAccess = { readonly [T in TableId]?: readonly TableAction<T>[] };
/** Consuming a queue is declared on the queue (`consumer`), not here. */
export type QueueAccess = 'send';

export interface FunctionDeclaration {
  readonly description: string;
  /** Handler module, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  readonly tables?: TableAccess;
  readonly queues?: Partial<Record<QueueId, QueueAccess>>;
  /** Needs the API Gateway Management API (PostToConnection, GetConnection, DeleteConnection). */
  readonly manageConnections?: boolean;
  /** Needs the client-token signing secret. */
  readonly jwtSecret?: boolean;
  /** Needs the admin API keys (`keyId:secret` pairs). */
  readonly adminKeys?: boolean;
  /** Needs the WeChat accounts configuration (tokens, EncodingAESKeys, app secrets). */
  readonly wechatAccounts?: boolean;
  /**
   * Concurrency reserved for this function (taken from the account's pool), so that bursts of
   * other functions can never starve it. The stack can leave it out (`reserveConcurrency: false`)
   * on accounts whose limit is too small to reserve from.
   */
  readonly reservedConcurrency?: number;
}

export const functions = {
  wsAuthorizer: {
    description: 'WebSocket $connect REQUEST authorizer: verifies the client JWT from ?token=.',
    entry: 'lambdas/handlers/ws-authorizer.ts',
    timeoutSeconds: 5,
    memoryMb: 256,
    jwtSecret: true,
    // Nobody connects without it; sized for docs/cost.md's 100,000-connection reconnect storm.
    reservedConcurrency: 50,
  },
  wsConnect: {
    description: 'WebSocket $connect: registers the connection for its user and device, and closes the oldest beyond the per-user limit.',
    entry: 'lambdas/handlers/ws-connect.ts',
    timeoutSeconds: 5,
    memoryMb: 256,
    reservedConcurrency: 50,
    // put; listByUser (the user's connections opened up to this one); removeStale (an oldest one already gone).
    tables: { connections: ['PutItem', 'Query:byUser', 'DeleteItem'] },
    // DeleteConnection of the user's oldest connections beyond MAX_CONNECTIONS_PER_USER.
    manageConnections: true,
  },
  wsDisconnect: {
    description: 'WebSocket $disconnect: removes the connection row (best effort; TTL and 410 clean the rest).',
    entry: 'lambdas/handlers/ws-disconnect.ts',
    timeoutSeconds: 5,
    memoryMb: 256,
    // remove.
    tables: { connections: ['DeleteItem'] },
  },
  wsDefault: {
    description: 'WebSocket $default: answers an error frame for unknown or invalid frames.',
    entry: 'lambdas/handlers/ws-default.ts',
    timeoutSeconds: 5,
    memoryMb: 256,
  },
  wsPing: {
    description: 'WebSocket ping: answers pong, nothing else (it keeps the socket from idling out; no table, no write).',
    entry: 'lambdas/handlers/ws-ping.ts',
    timeoutSeconds: 5,
    memoryMb: 256,
  },
  wsSend: {
    description: 'WebSocket send: validates, queues durably (FIFO), acks, then delivers to online devices.',
    entry: 'lambdas/handlers/ws-send.ts',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: {
      // Live delivery: listByUser per recipient (opened up to ts), removeStale on a 410.
      connections: ['Query:byUser', 'DeleteItem'],
      // The client id claim: claimClientId (Put), getClientIdClaim (Get), takeOver/release/markQueued (Update).
      messages: ['PutItem', 'GetItem', 'UpdateItem'],
      // members (membership check and audience, one read).
      groups: ['Query'],
      // The per-user send rate window (one conditional update).
      admin: ['UpdateItem'],
    },
    queues: { uplink: 'send' },
    manageConnections: true,
  },
  wsSync: {
    description: 'WebSocket sync: pages through the user inbox (or an account inbox, for its agents) after a cursor.',
    entry: 'lambdas/handlers/ws-sync.ts',
    timeoutSeconds: 10,
    memoryMb: 512,
    // readInbox (Query of the user's inbox rows); isMember (an account inbox: is the caller its agent?).
    tables: { messages: ['Query'], groups: ['GetItem'] },
  },
  uplinkPersister: {
    description: 'Uplink queue consumer: stores each message and one inbox row per recipient, idempotently; hands replies to WeChat users to the outbound queue.',
    entry: 'lambdas/handlers/uplink-persister.ts',
    timeoutSeconds: 60,
    memoryMb: 512,
    tables: {
      // Late delivery: listByUser (opened after ts), removeStale on a 410.
      connections: ['Query:byUser', 'DeleteItem'],
      // getMessageState (Query of msg#), beginStore and markStored (Update), put/deleteInboxRows
      // (BatchWrite), markChunkStored (Put).
      messages: ['Query', 'UpdateItem', 'BatchWriteItem', 'PutItem'],
      // members, when the queue message does not carry the audience.
      groups: ['Query'],
      // A reply to a WeChat user: the outbound record's create (Put, and Get of an existing one).
      wechat: ['PutItem', 'GetItem'],
      // The fan-out job of a group send too large to post inside the send route: createJob (Put),
      // getJob when the job exists already (a redelivery).
      admin: ['PutItem', 'GetItem'],
    },
    queues: { wechatOutbound: 'send', fanout: 'send' },
    manageConnections: true,
  },
  adminApi: {
    description: 'Admin HTTP API (/v1/*): verifies the HMAC signature and nonce, then tokens, push, jobs, connections, groups, stats.',
    entry: 'lambdas/handlers/admin-api.ts',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: {
      // GET/DELETE /v1/users/{userId}/connections and push delivery: listByUser; removeStale on a 410.
      connections: ['Query:byUser', 'DeleteItem'],
      // members (push to a group), membersPage, countMembers (Query); addMembers, removeMembers (BatchWrite).
      groups: ['Query', 'BatchWriteItem'],
      // claimNonce and createJob (Put); getJob and the presence counters (Get); markFailed when a
      // job's tasks cannot be queued (Update).
      admin: ['PutItem', 'GetItem', 'UpdateItem'],
      // POST .../messages: the outbound record's create (Put, Get of an existing one); GET .../messages/{id}.
      wechat: ['PutItem', 'GetItem'],
    },
    queues: { uplink: 'send', fanout: 'send', wechatOutbound: 'send' },
    manageConnections: true,
    jwtSecret: true,
    adminKeys: true,
    wechatAccounts: true,
  },
  fanoutWorker: {
    description: 'Fan-out queue consumer: scans a page of connections or posts to a page, paced, and counts every outcome once.',
    entry: 'lambdas/handlers/fanout-worker.ts',
    timeoutSeconds: 60,
    memoryMb: 512,
    tables: {
      // scanPage (broadcasts: the one Scan in wxgate); listByUser (user tasks); removeStale on a 410.
      connections: ['Scan', 'Query:byUser', 'DeleteItem'],
      // isTaskDone and getJob (Get); markRunning and finishIfDone (Update); openChildren and
      // completeTask are transactions of a marker Put and a counter Update.
      admin: ['GetItem', 'UpdateItem', 'PutItem'],
    },
    queues: { fanout: 'send' },
    manageConnections: true,
  },
  wechatCallback: {
    description: 'WeChat callbacks (/wechat/{accountId}): URL verification, signature check, safe-mode decrypt, queue, answer success.',
    entry: 'lambdas/handlers/wechat-callback.ts',
    timeoutSeconds: 4,
    memoryMb: 512,
    queues: { wechatInbound: 'send' },
    wechatAccounts: true,
  },
  wechatInbound: {
    description: 'WeChat inbound queue consumer: stores each message for the group wechat:{accountId} and delivers it to the agents online.',
    entry: 'lambdas/handlers/wechat-inbound.ts',
    timeoutSeconds: 60,
    memoryMb: 512,
    // The persister's, without the outbound and fan-out parts (no such message arrives here).
    tables: {
      connections: ['Query:byUser', 'DeleteItem'],
      messages: ['Query', 'UpdateItem', 'BatchWriteItem', 'PutItem'],
      groups: ['Query'],
    },
    manageConnections: true,
  },
  wechatOutbound: {
    description: 'WeChat outbound queue consumer: sends one message with a cached access token, retries by error code through the queue, reports the state.',
    entry: 'lambdas/handlers/wechat-outbound.ts',
    timeoutSeconds: 60,
    memoryMb: 512,
    tables: {
      // The status frame to the requester's devices: listByUser; removeStale on a 410.
      connections: ['Query:byUser', 'DeleteItem'],
      // The record's get (Get), claim and settle (Update); the access token's read (Get), lease,
      // save and release (Update).
      wechat: ['GetItem', 'UpdateItem'],
    },
    queues: { wechatOutbound: 'send' },
    manageConnections: true,
    wechatAccounts: true,
  },
  wechatLogin: {
    description: 'WeChat login (POST /v1/login/wechat, not admin-signed): exchanges a mini-program or OAuth code for a client token.',
    entry: 'lambdas/handlers/wechat-login.ts',
    timeoutSeconds: 10,
    memoryMb: 256,
    jwtSecret: true,
    wechatAccounts: true,
  },
  presenceCounter: {
    description: 'Connections table stream consumer: moves the presence counters exactly once per insert or removal.',
    entry: 'lambdas/handlers/presence-counter.ts',
    timeoutSeconds: 30,
    memoryMb: 256,
    // readState (BatchGet of markers and counts); applyBatch, one transaction of marker Puts, count
    // Updates, Deletes (a count back to 0) and ConditionChecks (a count that must not have moved).
    tables: { admin: ['BatchGetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'ConditionCheckItem'] },
  },
} as const satisfies Record<string, FunctionDeclaration>;

export type FunctionId = keyof typeof functions;

/** Compile-time check that every queue consumer names a declared function. */
type Assert<T extends true> = T;
export type ConsumersAreDeclaredFunctions = Assert<(typeof queues)[QueueId]['consumer']['function'] extends FunctionId ? true : false>;


export interface WebSocketRouteDeclaration {
  /** API Gateway route key: `$connect`, `$disconnect`, `$default` or an `action` value. */
  readonly routeKey: string;
  readonly function: FunctionId;
  /** The handler's return body is sent back to the caller (a two-way route). */
  readonly returnResponse: boolean;
  /** A route throttle within the stage's (requests per second, burst); none: the stage's alone. */
  readonly throttle?: ThrottleDeclaration;
}

export interface ThrottleDeclaration {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

/**
 * The load the WebSocket throttles are sized for (docs/architecture.md, "Limits"): 100,000
 * connections pinging every 5 minutes (333 pings/s), 1,000 sends/s, and every connection
 * reconnecting within 10 minutes (167 connects/s, each followed by a sync). API Gateway allows
 * 10,000 requests/s per account and Region across all APIs, and 500 new connections/s.
 */
export const webSocketTarget = { connections: 100_000, pingIntervalSeconds: 300, sendsPerSecond: 1_000, reconnectMinutes: 10 } as const;

export const websocket = {
  /** Route selection on the `action` field of each JSON frame (docs/protocol.md). */
  routeSelectionExpression: '$request.body.action',
  stageName: 'live',
  /** `$connect` runs behind this REQUEST authorizer, which reads the token query parameter. */
  authorizer: { function: 'wsAuthorizer', identitySource: 'route.request.querystring.token', queryParameter: 'token' },
  /**
   * The stage: the target's ~1,700 requests/s (333 pings + 1,000 sends + 167 connects + 167
   * syncs) with headroom, a fifth of the account's 10,000/s so other APIs keep theirs.
   */
  stageThrottle: { rateLimit: 2_000, burstLimit: 4_000 },
  // Route throttles keep one kind of traffic from taking the stage's whole budget: a reconnect
  // storm cannot starve sends, a send flood cannot starve pings (which keep sockets open).
  routes: [
    // The account's own quota is 500 new connections/s; twice the target's 167/s.
    { routeKey: '$connect', function: 'wsConnect', returnResponse: false, throttle: { rateLimit: 400, burstLimit: 800 } },
    { routeKey: '$disconnect', function: 'wsDisconnect', returnResponse: false },
    { routeKey: '$default', function: 'wsDefault', returnResponse: true, throttle: { rateLimit: 100, burstLimit: 200 } },
    { routeKey: 'ping', function: 'wsPing', returnResponse: true, throttle: { rateLimit: 700, burstLimit: 1_400 } },
    { routeKey: 'send', function: 'wsSend', returnResponse: true, throttle: { rateLimit: 1_500, burstLimit: 3_000 } },
    { routeKey: 'sync', function: 'wsSync', returnResponse: true, throttle: { rateLimit: 400, burstLimit: 800 } },
  ],
} as const satisfies {
  routeSelectionExpression: string;
  stageName: string;
  authorizer: { function: FunctionId; identitySource: string; queryParameter: string };
  stageThrottle: ThrottleDeclaration;
  routes: readonly WebSocketRouteDeclaration[];
};

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface HttpRouteDeclaration {
  readonly method: HttpMethod;
  /** API Gateway HTTP API path, e.g. `/v1/push` or `/wechat/{accountId}`. */
  readonly path: string;
  readonly function: FunctionId;
  /** A route throttle within the stage's; none: the stage's alone. */
  readonly throttle?: ThrottleDeclaration;
}

/** HTTP API routes: the admin API (docs/admin-api.md) and WeChat callbacks (docs/wechat.md). */
export const httpRoutes: readonly HttpRouteDeclaration[] = [
  { method: 'POST', path: '/v1/tokens', function: 'adminApi' },
  { method: 'POST', path: '/v1/push', function: 'adminApi' },
  { method: 'GET', path: '/v1/jobs/{jobId}', function: 'adminApi' },
  { method: 'GET', path: '/v1/users/{userId}/connections', function: 'adminApi' },
  { method: 'DELETE', path: '/v1/users/{userId}/connections', function: 'adminApi' },
  { method: 'PUT', path: '/v1/groups/{groupId}/members', function: 'adminApi' },
  { method: 'GET', path: '/v1/groups/{groupId}/members', function: 'adminApi' },
  { method: 'GET', path: '/v1/stats', function: 'adminApi' },
  { method: 'POST', path: '/v1/wechat/{accountId}/messages', function: 'adminApi' },
  { method: 'GET', path: '/v1/wechat/{accountId}/messages/{messageId}', function: 'adminApi' },
  // Unsigned (apps call it): its own budget, so a flood of bogus logins cannot take the stage's
  // and get WeChat's callbacks (same stage) refused.
  { method: 'POST', path: '/v1/login/wechat', function: 'wechatLogin', throttle: { rateLimit: 50, burstLimit: 100 } },
  { method: 'GET', path: '/wechat/{accountId}', function: 'wechatCallback' },
  { method: 'POST', path: '/wechat/{accountId}', function: 'wechatCallback' },
];

/**
 * Environment variables every function gets, beyond the table and queue names.
 * The Lambda code reads them through `lambdas/runtime/config.ts`.
 */
export const env = {
  /** `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}` in AWS, the local server in local mode. */
  managementEndpoint: 'WS_MANAGEMENT_ENDPOINT',
  /** Secrets Manager ARN of the client-token secret (AWS). */
  jwtSecretArn: 'JWT_SECRET_ARN',
  /** The client-token secret itself (local mode only; never set in AWS). */
  jwtSecretValue: 'WXGATE_JWT_SECRET',
  /** Seconds a connection row lives after its connection opened (its TTL; at least API Gateway's 2-hour limit). */
  connectionRowLifetimeSeconds: 'CONNECTION_ROW_LIFETIME_SECONDS',
  /** Most live connections one user may hold; `$connect` closes the oldest beyond it. */
  maxConnectionsPerUser: 'MAX_CONNECTIONS_PER_USER',
  /** Days an inbox row is kept for `sync`. */
  inboxTtlDays: 'INBOX_TTL_DAYS',
  /** Secrets Manager ARN of the admin keys secret (AWS): JSON `{"keyId":"secret",...}`. */
  adminKeysArn: 'ADMIN_KEYS_SECRET_ARN',
  /** The admin keys themselves, `keyId:secret,keyId2:secret2` (local mode only; never set in AWS). */
  adminKeysValue: 'WXGATE_ADMIN_KEYS',
  /** Secrets Manager ARN of the WeChat accounts secret (AWS): JSON `{"<accountId>":{kind,token,encodingAESKey,...}}`. */
  wechatAccountsArn: 'WECHAT_ACCOUNTS_SECRET_ARN',
  /** Path of the WeChat accounts JSON file (local mode only). */
  wechatAccountsFile: 'WXGATE_WECHAT_ACCOUNTS',
  /** Posts per second all fan-out jobs together may make (a share of the account's @connections budget). */
  fanoutPostsPerSecond: 'FANOUT_POSTS_PER_SECOND',
  /** Largest audience a client's send posts to inside the send route; larger ones go through a fan-out job. */
  sendInlineMaxMembers: 'SEND_INLINE_MAX_MEMBERS',
  /** Sends per second one user may make, averaged over 10 s (0: no limit). */
  sendRatePerUser: 'SEND_RATE_PER_USER',
  /** Most members a group may have (PUT /v1/groups/{groupId}/members refuses more). */
  maxGroupMembers: 'MAX_GROUP_MEMBERS',
  /** Base URL of the WeChat official-account API (default https://api.weixin.qq.com); local mode and tests point it at the fake. */
  wechatApiBase: 'WXGATE_WECHAT_API_BASE',
  /** Base URL of the WeCom API (default https://qyapi.weixin.qq.com). */
  wecomApiBase: 'WXGATE_WECOM_API_BASE',
} as const;
