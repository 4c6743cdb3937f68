import { attributeKey } from './attributes.ts';
import type { Decision, NormalizedRequest } from './engine.ts';

/**
 * A bounded least-recently-used cache of decisions. The key starts with the policy revision, so
 * a reload takes effect on the very next request: entries of the old revision are never hit
 * again (and are dropped when the revision changes, to free memory).
 */
export class DecisionCache {
  private readonly map = new Map<string, Decision>();
  private readonly capacity: number;
  hits = 0;
  misses = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  static key(revision: string, req: NormalizedRequest): string {
    return [
      revision,
      req.subject,
      req.org,
      req.object,
      req.action,
      req.roles.join(' '),
      attributeKey(req.attributes),
    ].join('\u0000');
  }

  get(key: string): Decision | undefined {
    const hit = this.map.get(key);
    if (hit === undefined) {
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    // Re-insert to mark as most recently used.
    this.map.delete(key);
    this.map.set(key, hit);
    return hit;
  }

  set(key: string, decision: Decision): void {
    if (this.capacity <= 0) return;
    this.map.delete(key);
    this.map.set(key, decision);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
