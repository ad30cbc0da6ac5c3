/**
 * Messages between the scale bench's two processes (bench/scale.ts): the gateway process (the
 * local runtime, its cost meter, the monitor) and the client process (bench/scale-clients.ts: the
 * sockets and the workload). The client process asks the gateway process for what only it can do
 * (drain the queues, read the meter, count connection rows, mark a phase) with `rpc` messages.
 */
import type { AdminKey } from './admin';
import type { ScaleSettings } from './scale-settings';
import type { LatencySummary } from './stats';

export interface StartMessage {
  type: 'start';
  settings: ScaleSettings;
  wsUrl: string;
  httpUrl: string;
  jwtSecret: string;
  adminKey: AdminKey;
  /** The gateway runs with a cost meter: the client process measures cost windows. */
  meter: boolean;
}

export type RpcMethod = 'drain' | 'phase' | 'meterReset' | 'meterSnapshot' | 'connectionRows' | 'gatewayCounters';

export interface RpcRequest {
  type: 'rpc';
  id: number;
  method: RpcMethod;
  arg?: unknown;
}

export interface RpcReply {
  type: 'rpcReply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export interface DoneMessage {
  type: 'done';
  figures: ClientFigures;
}

export interface FailedMessage {
  type: 'failed';
  error: string;
  figures: ClientFigures;
}

export type ClientMessage = RpcRequest | DoneMessage | FailedMessage;
export type GatewayMessage = StartMessage | RpcReply;

/** The stage throttle's and the Management API's counters (cumulative since the gateway started). */
export interface GatewayCounters {
  stage: { admitted: number; throttled: number };
  management: { posts: number; throttled: number; delivered: number; gone: number; errors: number };
}

/** One cost window, reduced to what the report shows (from local/cost-meter.ts's snapshot). */
export interface CostWindow {
  windowMs: number;
  dynamo: { readUnits: number; writeUnits: number; byTable: Record<string, { readUnits: number; writeUnits: number; requests: number }> };
  sqs: { requests: number; fifoRequests: number; standardRequests: number; byQueue: Record<string, number> };
  lambda: { invocations: number; byFunction: Record<string, number> };
  management: { posts: number; gets: number; deletes: number };
  websocket: { messagesIn: number; messagesOut: number; connects: number; disconnects: number };
  httpRequests: number;
}

/** A cost window of `ops` operations of one kind, measured alone (the queues drained inside it). */
export interface CostOperation {
  kind: string;
  description: string;
  ops: number;
  window: CostWindow;
}

/** One kind of request in the mixed workload. */
export interface OperationFigures {
  /** Requests the schedule asked for during the workload. */
  offered: number;
  /** Answered as asked (pong, ack, sync reply). */
  ok: number;
  /** Answered by the stage throttle ({"message":"Too Many Requests"}): nothing ran. */
  throttled: number;
  /** Error frames by code (rate_limited, internal, ...). */
  errors: Record<string, number>;
  /** No answer within the request timeout, or the socket closed first. */
  noAnswer: number;
  /** ok per second of workload. */
  perSecond: number;
  /** Request -> answer (pong, ack, sync reply), ok ones. */
  latencyMs: LatencySummary;
  /** The same, for requests sent while the workload's broadcast ran (its POST to its last frame) and the others. */
  split?: LatencySplit;
}

export interface LatencySplit {
  during: LatencySummary;
  outside: LatencySummary;
}

export interface BroadcastFigures {
  /** Open sockets when the push was posted: each should get the frame once. */
  sockets: number;
  /** Seconds into the workload the push was posted (the cost broadcast: 0). */
  atSeconds: number;
  answeredStatus: number;
  /** POST -> 202. */
  answeredMs: number;
  /** POST -> the first poll that saw `done` (or `failed`); null if neither. */
  doneMs: number | null;
  state: string;
  job: { targeted: number; delivered: number; gone: number; failed: number };
  /** Job polls made (GET /v1/jobs/{id}, each a signed request). */
  polls: number;
  received: number;
  lost: number;
  duplicates: number;
  /** POST -> each socket's first copy. */
  receiptMs: LatencySummary;
  lastSocketMs: number | null;
}

export interface DeliveryFigures {
  /** Acked p2p and group messages. */
  messages: number;
  /** (message, online audience connection) pairs. */
  expected: number;
  deliveredLive: number;
  recoveredViaSync: number;
  lost: number;
  duplicates: number;
  /** Copies on connections outside a message's audience. */
  unexpected: number;
  /** Audience connections that closed before the check (not counted in expected). */
  closedRecipients: number;
  /** Connections whose whole inbox was read with sync, and acked messages for them it lacked. */
  syncChecked: { connections: number; pairs: number; missing: number };
  lostExamples: string[];
}

export interface ConnectFigures {
  target: number;
  reached: number;
  seconds: number;
  perSecond: number;
  /** Upgrade request -> open (authorizer and $connect have run). */
  latencyMs: LatencySummary;
  /** 429 answers to the upgrade (the stage's $connect throttle); each was retried after a pause. */
  throttled: number;
  failures: number;
  failureExamples: string[];
  /** Why it stopped below the target, if it did. */
  stopReason: string | null;
  /** After the last socket opened: until the queues and the table streams (the presence counter) were drained. */
  drainSeconds?: number;
  /** Rows in the connections table once every socket was open. */
  rows: number;
  /** The client process's open files at the end of the phase and its limit. */
  clientOpenFiles: number | null;
}

export interface ClientFigures {
  connect?: ConnectFigures;
  groups?: { groups: number; members: number; seconds: number };
  /** Sequential pings on 20 connections, nothing else running (all connections open). */
  idlePingMs?: LatencySummary;
  mixed?: {
    plannedSeconds: number;
    seconds: number;
    /** Offered rates per second. */
    rates: { ping: number; p2p: number; group: number; sync: number };
    ping: OperationFigures;
    p2p: OperationFigures & { endToEndMs: LatencySummary; endToEndSplit?: LatencySplit };
    group: OperationFigures & { endToEndMs: LatencySummary; endToEndSplit?: LatencySplit; audience: number };
    sync: OperationFigures & { messagesReturned: number };
    broadcast?: BroadcastFigures;
    /** Stage throttle and Management API counters during the workload. */
    gateway: { stageAdmitted: number; stageThrottled: number; posts: number; postsThrottled: number; gone: number };
    /** The whole workload's cost window (meter on), queues drained at its end. */
    cost?: CostWindow;
  };
  delivery?: DeliveryFigures;
  /** Sockets the gateway closed during the run (idle timeout, errors): by close code. */
  unexpectedCloses: Record<string, number>;
  costs: CostOperation[];
  costBroadcast?: BroadcastFigures;
  close?: { connections: number; seconds: number };
  /** The client process's event-loop delay per phase. */
  clientLoop: Record<string, { p50: number; p99: number; max: number }>;
}
