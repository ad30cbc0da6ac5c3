/**
 * The client's de-duplication memory (client/seen.ts): what it forgets and when, and its bound.
 */
import { SeenIds } from '../../../client/seen';

const MIN = 60_000;

describe('SeenIds', () => {
  it('refuses an id it holds', () => {
    const seen = new SeenIds(10, 30 * MIN, () => undefined);
    expect(seen.add('a', 0)).toBe(true);
    expect(seen.add('a', 1)).toBe(false);
  });

  it('keeps every id until a completed resume put it behind the floor (however old)', () => {
    const seen = new SeenIds(1000, 30 * MIN, () => undefined);
    seen.add('a', 0);
    seen.add('b', 60 * MIN);
    // Two hours on a socket without a completed resume: 'a' could come back in the next sync.
    seen.add('c', 120 * MIN);
    expect(seen.add('a', 120 * MIN)).toBe(false);
    expect(seen.size).toBe(3);
  });

  it('forgets ids older than both the floor and the live repeat window', () => {
    const seen = new SeenIds(1000, 30 * MIN, () => undefined);
    seen.add('a', 0);
    seen.add('b', 20 * MIN);
    seen.add('c', 40 * MIN);
    seen.floor(45 * MIN, 45 * MIN); // forgettable: before min(45, 45 - 30) = 15 min
    expect(seen.size).toBe(2);
    expect(seen.add('a', 45 * MIN)).toBe(true); // 'a' could not recur any more
    expect(seen.add('b', 45 * MIN)).toBe(false);
    seen.floor(50 * MIN, 70 * MIN); // before min(50, 40) = 40 min: 'b' goes, 'c' stays
    expect(seen.add('b', 70 * MIN)).toBe(true);
    expect(seen.add('c', 70 * MIN)).toBe(false);
  });

  it('never holds more than its capacity, and reports dropping an id that could still recur', () => {
    let overflows = 0;
    const seen = new SeenIds(3, 30 * MIN, () => overflows++);
    for (const id of ['a', 'b', 'c', 'd', 'e']) seen.add(id, 0);
    expect(seen.size).toBe(3);
    expect(overflows).toBe(2);
    expect(seen.add('a', 0)).toBe(true); // the price: a duplicate gets through
  });

  it('a floor never moves back', () => {
    const seen = new SeenIds(100, 0, () => undefined);
    seen.add('a', 10);
    seen.floor(20, 100);
    seen.floor(5, 100);
    expect(seen.add('a', 100)).toBe(true);
    seen.add('b', 100);
    seen.floor(50, 200);
    expect(seen.add('b', 200)).toBe(false);
  });
});
