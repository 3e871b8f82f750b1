/**
 * The log of every HTTP request the fake answered, with counters per verb
 * and resource (the benchmarks measure API load with them).
 *
 * @module
 */

/** One answered request. */
export interface RequestRecord {
  /** get, list, watch, create, update, patch, delete, deletecollection; `get` for non-resource paths. */
  readonly verb: string;
  /** Plural with subresource (`pods/status`); the path for non-resource requests (`/api/v1`). */
  readonly resource: string;
  readonly namespace?: string;
  readonly name?: string;
  /** HTTP method. */
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  /** Response status (200 for a watch that started). */
  readonly status: number;
  /** `Date.now()` when the request arrived. */
  readonly at: number;
  readonly userAgent?: string;
  /**
   * Response body bytes sent so far. Final once the body has been sent; for a
   * watch it grows with every event and bookmark until the stream ends.
   */
  readonly bytes: number;
}

/** The request log of one server. */
export class RequestLog {
  #entries: RequestRecord[] = [];
  #counts = new Map<string, number>();

  /** Appends a record. */
  add(record: RequestRecord): void {
    this.#entries.push(record);
    const key = `${record.verb} ${record.resource}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Every record, oldest first (a copy). */
  entries(): RequestRecord[] {
    return [...this.#entries];
  }

  /** Counts keyed `"verb resource"`, e.g. `"list configmaps"`, `"patch pods/status"`. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }

  /** Response bytes sent so far, keyed `"verb resource"` like {@linkcode counts}. */
  bytes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#entries) {
      const key = `${r.verb} ${r.resource}`;
      out[key] = (out[key] ?? 0) + r.bytes;
    }
    return out;
  }

  /** Every response byte sent so far, optionally only for requests `select` picks. */
  totalBytes(select: (record: RequestRecord) => boolean = () => true): number {
    let total = 0;
    for (const r of this.#entries) if (select(r)) total += r.bytes;
    return total;
  }

  /** Forgets everything. */
  reset(): void {
    this.#entries = [];
    this.#counts = new Map();
  }
}
