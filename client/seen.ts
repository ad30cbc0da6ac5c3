/**
 * The de-duplication memory: msgIds handed to the application (or acked to this client), each
 * with the client time it was seen, oldest first (a Map keeps insertion order).
 *
 * An id can come back in two ways (docs/client.md, "De-duplication bound"):
 * - through `sync`: a resume from a cursor returns rows positioned after the cursor's floor,
 *   which is at most 60 s (plus instance clock error) before the moment the run that produced
 *   the cursor read the inbox. An id seen before `floor` (the client time when the last
 *   completed run sent its first page, minus `overlapMs`) cannot be returned again;
 * - through a live push repeated by a retried delivery task, which happens within the uplink
 *   queue's redelivery span (5 receives × 360 s visibility = 30 min) of the first push.
 * So an id older than both the floor and `windowMs` can never recur and is forgotten. Beyond
 * `capacity` the oldest id is forgotten anyway (memory stays bounded); `onOverflow` reports an
 * id dropped while it could still recur, i.e. a duplicate may now reach the application.
 */
export class SeenIds {
  private readonly ids = new Map<string, number>();
  private floorAt = -Infinity;

  constructor(
    private readonly capacity: number,
    private readonly windowMs: number,
    private readonly onOverflow: () => void,
  ) {}

  get size(): number {
    return this.ids.size;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Records `id` seen at `now`; false when it was already there. */
  add(id: string, now: number): boolean {
    if (this.ids.has(id)) return false;
    this.ids.set(id, now);
    this.prune(now);
    return true;
  }

  /** A resume run completed: ids seen before `at` cannot come back through `sync`. */
  floor(at: number, now: number): void {
    this.floorAt = Math.max(this.floorAt, at);
    this.prune(now);
  }

  private prune(now: number): void {
    const forgettable = Math.min(this.floorAt, now - this.windowMs);
    for (const [id, at] of this.ids) {
      if (at < forgettable) this.ids.delete(id);
      else if (this.ids.size > this.capacity) {
        this.ids.delete(id);
        this.onOverflow();
      } else break;
    }
  }
}
