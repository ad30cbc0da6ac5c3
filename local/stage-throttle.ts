import { websocket, type ThrottleDeclaration, type WebSocketRouteDeclaration } from '../lib/gateway-declaration';
import { TokenBucket } from './token-bucket';

/**
 * API Gateway's WebSocket stage and route throttles, in local mode: every client frame (and
 * every `$connect`) takes a token from the stage's bucket and from its route's, if the route has
 * one; when either is empty API Gateway refuses it without invoking anything. By default the
 * declared throttles apply (lib/gateway-declaration.ts), as they do in AWS, so a test that
 * floods one route sees what production would.
 */
export interface StageThrottleLimits {
  stage?: ThrottleDeclaration;
  routes?: Readonly<Record<string, ThrottleDeclaration>>;
}

export const declaredStageThrottle = (): StageThrottleLimits => ({
  stage: websocket.stageThrottle,
  routes: Object.fromEntries((websocket.routes as readonly WebSocketRouteDeclaration[]).flatMap((r) => (r.throttle ? [[r.routeKey, r.throttle]] : []))),
});

const bucketOf = (t: ThrottleDeclaration) => new TokenBucket({ ratePerSecond: t.rateLimit, burst: t.burstLimit });

export class StageThrottle {
  private stage?: TokenBucket;
  private routes = new Map<string, TokenBucket>();
  private counts = { admitted: 0, throttled: 0 };

  constructor(limits: StageThrottleLimits | undefined) {
    this.set(limits);
  }

  /** New limits (full buckets), or undefined for none. */
  set(limits: StageThrottleLimits | undefined): void {
    this.stage = limits?.stage ? bucketOf(limits.stage) : undefined;
    this.routes = new Map(Object.entries(limits?.routes ?? {}).map(([key, t]) => [key, bucketOf(t)]));
  }

  /** Takes the tokens a request on `routeKey` needs; false when API Gateway would throttle it. */
  admit(routeKey: string): boolean {
    const route = this.routes.get(routeKey);
    // Both buckets must have a token; neither is spent by a refused request.
    const ok = (this.stage?.available() ?? 1) >= 1 - 1e-9 && (route?.available() ?? 1) >= 1 - 1e-9;
    if (ok) {
      this.stage?.tryTake();
      route?.tryTake();
      this.counts.admitted++;
    } else this.counts.throttled++;
    return ok;
  }

  stats(): { admitted: number; throttled: number } {
    return { ...this.counts };
  }
}
