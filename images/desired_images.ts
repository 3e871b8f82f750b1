/**
 * The dedupe map of desired images: normalised reference → the origins that
 * ask for it.
 *
 * @module
 */
import { tryNormalizeReference } from "./reference.ts";

/** A reference an origin asked for that cannot be pulled as written. */
export interface Rejection {
  /** The origin that asked for it, such as `configmap/ns/name`. */
  readonly origin: string;
  /** The reference as written. */
  readonly input: string;
  /** Why it was rejected. */
  readonly reason: string;
}

/** What one {@linkcode DesiredImages.set} or `delete` changed. */
export interface ImageChange {
  /** References that became desired. */
  readonly added: readonly string[];
  /** References that are no longer desired by anyone. */
  readonly removed: readonly string[];
}

/** Listener for {@linkcode DesiredImages.subscribe}. */
export type ImageChangeListener = (change: ImageChange) => void;

/** The result of {@linkcode DesiredImages.set} for one origin. */
export interface SetResult {
  /** The normalised references accepted for the origin. */
  readonly accepted: ReadonlySet<string>;
  /** The references rejected, with reasons. */
  readonly rejected: readonly Rejection[];
}

/**
 * The one dedupe map every source writes to.
 *
 * Each origin owns a whole set of references; {@linkcode set} replaces it, so
 * a lost or repeated event cannot corrupt the map (level-triggered). A
 * reference stays desired while at least one origin asks for it.
 */
export class DesiredImages {
  #byOrigin = new Map<string, ReadonlySet<string>>();
  #origins = new Map<string, Set<string>>();
  #rejected = new Map<string, readonly Rejection[]>();
  #listeners = new Set<ImageChangeListener>();

  /**
   * Replaces the whole set of references that `origin` asks for. Inputs are
   * normalised; those that cannot be pulled as written are kept as
   * rejections for status and logs and never become desired.
   */
  set(origin: string, inputs: Iterable<string>): SetResult {
    const accepted = new Set<string>();
    const rejected: Rejection[] = [];
    for (const input of inputs) {
      const result = tryNormalizeReference(input);
      if (result.ok) accepted.add(result.ref);
      else rejected.push({ origin, input: String(input), reason: result.reason });
    }
    if (rejected.length > 0) this.#rejected.set(origin, rejected);
    else this.#rejected.delete(origin);
    this.#replace(origin, accepted);
    return { accepted, rejected };
  }

  /** Removes an origin and everything only it asked for. */
  delete(origin: string): void {
    this.#rejected.delete(origin);
    this.#replace(origin, new Set());
  }

  /** Whether a normalised reference is desired. */
  has(ref: string): boolean {
    return this.#origins.has(ref);
  }

  /** Number of distinct desired references. */
  get size(): number {
    return this.#origins.size;
  }

  /** The desired references, sorted. */
  refs(): string[] {
    return [...this.#origins.keys()].sort();
  }

  /** The origins that ask for a reference, sorted. */
  originsOf(ref: string): string[] {
    return [...(this.#origins.get(ref) ?? [])].sort();
  }

  /** The origins known to the map, optionally only those starting with `prefix`. */
  origins(prefix = ""): string[] {
    const out = new Set<string>();
    for (const origin of this.#byOrigin.keys()) {
      if (origin.startsWith(prefix)) out.add(origin);
    }
    for (const origin of this.#rejected.keys()) {
      if (origin.startsWith(prefix)) out.add(origin);
    }
    return [...out].sort();
  }

  /** The accepted references of one origin. */
  refsOf(origin: string): ReadonlySet<string> {
    return this.#byOrigin.get(origin) ?? new Set();
  }

  /** Rejected references, for one origin or all of them. */
  rejections(origin?: string): Rejection[] {
    if (origin !== undefined) return [...(this.#rejected.get(origin) ?? [])];
    return [...this.#rejected.values()].flat();
  }

  /**
   * Calls `listener` after every change that adds or removes a desired
   * reference. Returns a function that unsubscribes.
   */
  subscribe(listener: ImageChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #replace(origin: string, next: ReadonlySet<string>): void {
    const previous = this.#byOrigin.get(origin) ?? new Set<string>();
    const added: string[] = [];
    const removed: string[] = [];
    for (const ref of previous) {
      if (next.has(ref)) continue;
      const origins = this.#origins.get(ref);
      origins?.delete(origin);
      if (origins?.size === 0) {
        this.#origins.delete(ref);
        removed.push(ref);
      }
    }
    for (const ref of next) {
      if (previous.has(ref)) continue;
      let origins = this.#origins.get(ref);
      if (origins === undefined) {
        origins = new Set();
        this.#origins.set(ref, origins);
        added.push(ref);
      }
      origins.add(origin);
    }
    if (next.size > 0) this.#byOrigin.set(origin, next);
    else this.#byOrigin.delete(origin);
    if (added.length === 0 && removed.length === 0) return;
    const change: ImageChange = { added, removed };
    for (const listener of this.#listeners) listener(change);
  }
}
