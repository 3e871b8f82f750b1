/**
 * The dedupe map of desired images: normalised reference → the origins that
 * ask for it, with the trust of each image and the caps that bound them.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { type NormalizeResult, tryNormalizeReference } from "./reference.ts";
import { TrustPolicy } from "./trust.ts";

/**
 * Default of {@linkcode DesiredImagesOptions.maxImagesPerObject}
 * (`--max-images-per-object`). A real WorkflowTemplate names a few dozen
 * images and a hand-written list a few hundred; a thousand leaves room for
 * generated lists while one object can no longer make every node pull
 * without bound.
 */
export const DEFAULT_MAX_IMAGES_PER_OBJECT = 1_000;

/**
 * Default of {@linkcode DesiredImagesOptions.maxDesiredImages}
 * (`--max-desired-images`). Five times the largest realistic cluster the
 * benchmarks model (2,000 distinct images); the puller's memory and the
 * `/status` document stay bounded by it.
 */
export const DEFAULT_MAX_DESIRED_IMAGES = 10_000;

/**
 * Normalisations remembered, by input. Why: a cluster's objects name the same
 * few thousand images over and over (10,000 templates, 2,000 images), and a
 * relist normalised each of them once per object. Cleared when full.
 */
const NORMALIZED_CACHE_ENTRIES = 8_192;
/** Longer inputs are normalised every time, never kept (no reference is this long). */
const NORMALIZED_CACHE_MAX_INPUT = 512;

/**
 * Rejected entries kept per origin as samples (the count is exact). Why: a
 * list of 100,000 bad entries must cost a few lines of status and log, not
 * 100,000.
 */
export const MAX_REJECTION_SAMPLES = 10;

/** Longest echo of rejected input kept, in characters; the rest is cut with a note. */
export const MAX_ECHO_CHARS = 256;

/** Longest reason kept, in characters. */
const MAX_REASON_CHARS = 512;

/** A reference an origin asked for that will not be pulled. */
export interface Rejection {
  /** The origin that asked for it, such as `configmap/ns/name`. */
  readonly origin: string;
  /** The reference as written, cut to {@linkcode MAX_ECHO_CHARS}. */
  readonly input: string;
  /** Why it was rejected. */
  readonly reason: string;
}

/** The rejections of one origin: an exact count and a few samples. */
export interface RejectionSummary {
  readonly origin: string;
  /** How many entries were rejected. */
  readonly count: number;
  /** The first {@linkcode MAX_REJECTION_SAMPLES} of them. */
  readonly samples: readonly Rejection[];
}

/** One desired image as it flows to a puller (and, later, a publication). */
export interface DesiredImage {
  /** The normalised reference. */
  readonly ref: string;
  /**
   * True when at least one trusted origin asks for it: only then may pulls
   * use the operator's registry credentials.
   */
  readonly trusted: boolean;
}

/** What one change of the desired set did. */
export interface ImageChange {
  /** References that became desired. */
  readonly added: readonly string[];
  /** References that are no longer desired by anyone. */
  readonly removed: readonly string[];
  /** Desired references whose trust changed (see {@linkcode DesiredImages.trusted}); only when some did. */
  readonly retrusted?: readonly string[];
}

/** Listener for {@linkcode DesiredImages.subscribe}. */
export type ImageChangeListener = (change: ImageChange) => void;

/** How {@linkcode DesiredImages.set} reads one origin. */
export interface SetOptions {
  /**
   * The origin is a union of objects each already held to the per-object cap
   * elsewhere (a node daemon's published set, which the aggregator built):
   * `maxImagesPerObject` does not apply to it, `maxDesiredImages` still does.
   * Why: the cap bounds what one tenant's object costs; applied to the whole
   * published set it would cut a 2,000-image cluster to 1,000 on every node.
   */
  readonly aggregate?: boolean;
}

/** The result of {@linkcode DesiredImages.set} for one origin. */
export interface SetResult {
  /** The normalised references accepted for the origin. */
  readonly accepted: ReadonlySet<string>;
  /** Samples of the references rejected, with reasons (at most {@linkcode MAX_REJECTION_SAMPLES}). */
  readonly rejected: readonly Rejection[];
  /** How many entries were rejected in all. */
  readonly rejectedCount: number;
}

/** Options for {@linkcode DesiredImages}. */
export interface DesiredImagesOptions {
  /** Who is trusted, and what untrusted origins may name. @default {a policy trusting only `--image`, allowing any repository} */
  policy?: TrustPolicy;
  /**
   * Most entries one untrusted origin may list (valid or not, as written);
   * the rest are rejected unread. @default {DEFAULT_MAX_IMAGES_PER_OBJECT}
   */
  maxImagesPerObject?: number;
  /** Most references desired at once; the rest wait, reported. @default {DEFAULT_MAX_DESIRED_IMAGES} */
  maxDesiredImages?: number;
  /** Where crossing the total cap is reported. */
  log?: Logger;
}

/** The flags ({@linkcode Config} fields) that set the trust policy and the caps. */
export interface TrustFlags {
  readonly trustedNamespaces: readonly string[];
  readonly trustClusterWorkflowTemplates: boolean;
  readonly allowedRepositories: readonly string[];
  readonly maxImagesPerObject: number;
  readonly maxDesiredImages: number;
}

/** The {@linkcode DesiredImages} options the flags ask for: one reading for the daemon and `images`. */
export function desiredImagesOptions(flags: TrustFlags, log?: Logger): DesiredImagesOptions {
  return {
    policy: new TrustPolicy({
      trustedNamespaces: flags.trustedNamespaces,
      trustClusterScoped: flags.trustClusterWorkflowTemplates,
      allowedRepositories: flags.allowedRepositories,
    }),
    maxImagesPerObject: flags.maxImagesPerObject,
    maxDesiredImages: flags.maxDesiredImages,
    log,
  };
}

/** Cuts text to `max` characters, saying how long it was. */
export function truncateEcho(text: string, max = MAX_ECHO_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`;
}

function rejection(origin: string, input: unknown, reason: string): Rejection {
  const raw = typeof input === "string" ? input : JSON.stringify(input) ?? String(input);
  const echo = truncateEcho(raw);
  // The parser quotes the whole input in its message: quote the cut echo instead.
  let short = echo === raw ? reason : reason.replace(JSON.stringify(raw), JSON.stringify(echo));
  if (short.length > MAX_REASON_CHARS) short = truncateEcho(short, MAX_REASON_CHARS);
  return { origin, input: echo, reason: short };
}

/** An origin not seen before asks for nothing: shared, never written to. */
const NO_REFS: ReadonlySet<string> = new Set();

/** Keeps a rejection as a sample while there are fewer than {@linkcode MAX_REJECTION_SAMPLES}. */
function sample(samples: Rejection[], origin: string, input: unknown, reason: string): void {
  if (samples.length < MAX_REJECTION_SAMPLES) samples.push(rejection(origin, input, reason));
}

/**
 * The one dedupe map every source writes to.
 *
 * Each origin owns a whole set of references; {@linkcode set} replaces it, so
 * a lost or repeated event cannot corrupt the map (level-triggered). A
 * reference stays desired while at least one origin asks for it.
 *
 * Bounds: an untrusted origin may name only repositories the policy allows,
 * one origin at most `maxImagesPerObject` references, and at most
 * `maxDesiredImages` are desired at once. Past the total cap, which ones are
 * desired is a pure function of the current map (trusted first, then by
 * reference), so it never flaps and heals like everything else.
 */
export class DesiredImages {
  readonly #policy: TrustPolicy;
  readonly #maxPerObject: number;
  readonly #maxDesired: number;
  readonly #log?: Logger;
  #byOrigin = new Map<string, ReadonlySet<string>>();
  /** Every accepted reference → the origins asking for it (admitted or not). */
  #candidates = new Map<string, Set<string>>();
  /** Trusted origins per candidate reference. */
  #trustedOrigins = new Map<string, number>();
  /** The desired references (those within the total cap) → their trust. */
  #admitted = new Map<string, boolean>();
  #rejected = new Map<string, RejectionSummary>();
  #rejectedCount = 0;
  /** Normalisation is pure: its results, by input. */
  #normalized = new Map<string, NormalizeResult>();
  #listeners = new Set<ImageChangeListener>();
  /** Over the cap, admission is recomputed once per batch of changes. */
  #dirty = false;
  #pending?: { added: Set<string>; removed: Set<string>; retrusted: Set<string> };
  #flushScheduled = false;
  #wasCapped = false;
  /** Times the admission was recomputed in full (over the cap), for tests of bounded work. */
  recomputations = 0;
  #version = 0;

  /**
   * Grows on every change of the map or its rejections, so views built from
   * it (`/status`) are rebuilt once per change, not once per request.
   */
  get version(): number {
    this.#settle();
    return this.#version;
  }

  constructor(options: DesiredImagesOptions = {}) {
    this.#policy = options.policy ?? new TrustPolicy();
    this.#maxPerObject = options.maxImagesPerObject ?? DEFAULT_MAX_IMAGES_PER_OBJECT;
    this.#maxDesired = options.maxDesiredImages ?? DEFAULT_MAX_DESIRED_IMAGES;
    this.#log = options.log;
  }

  /**
   * Replaces the whole set of references that `origin` asks for. Inputs are
   * normalised; those that cannot be pulled as written, that the policy does
   * not allow for this origin, or that exceed the per-object cap are counted
   * as rejections (a few kept as samples) and never become desired.
   */
  set(origin: string, inputs: Iterable<unknown>, options: SetOptions = {}): SetResult {
    this.#version++;
    const trusted = this.#policy.trusted(origin);
    const perObject = options.aggregate ? Infinity : this.#maxPerObject;
    const accepted = new Set<string>();
    const samples: Rejection[] = [];
    let count = 0;
    // Why no `reject` closure: the bundle (esbuild's keepNames) names every
    // named closure with a defineProperty call, once per `set`, thousands per relist.
    let entries = 0;
    for (const input of inputs) {
      if (!trusted && entries++ >= perObject) {
        // Why count these unread: parsing costs tens of microseconds per
        // entry, so a list of millions would stall the daemon; the cap bounds
        // the work one object costs. The count stays exact.
        count++;
        sample(samples, origin, input, `Over the limit of ${this.#maxPerObject} images per object`);
        continue;
      }
      const result = this.#normalize(input);
      if (!result.ok) {
        count++;
        sample(samples, origin, input, result.reason);
      } else if (accepted.has(result.ref)) continue;
      else if (!trusted && !this.#policy.allows(result.ref)) {
        // Why: a tenant's object may only name what the operator allows;
        // the operator's own origins are not limited.
        count++;
        sample(
          samples,
          origin,
          input,
          `Repository of "${truncateEcho(result.ref)}" is not in --allowed-repositories (${
            this.#policy.allowedRepositories.join(", ")
          })`,
        );
      } else if (!trusted && accepted.size >= perObject) {
        // Why reject rather than cut silently: the owner sees what is left
        // out; keeping the first ones keeps the choice stable across syncs.
        // The operator's own origins are bounded by the total cap only.
        count++;
        sample(samples, origin, input, `Over the limit of ${this.#maxPerObject} images per object`);
      } else accepted.add(result.ref);
    }
    this.#setRejections(origin, count > 0 ? { origin, count, samples } : undefined);
    this.#replace(origin, accepted, trusted);
    return { accepted, rejected: samples, rejectedCount: count };
  }

  /** Removes an origin and everything only it asked for. */
  delete(origin: string): void {
    this.#version++;
    this.#setRejections(origin, undefined);
    this.#replace(origin, new Set(), this.#policy.trusted(origin));
  }

  /** Whether a normalised reference is desired. */
  has(ref: string): boolean {
    this.#settle();
    return this.#admitted.has(ref);
  }

  /** Whether a desired reference is asked for by a trusted origin (false when not desired). */
  trusted(ref: string): boolean {
    this.#settle();
    return this.#admitted.get(ref) ?? false;
  }

  /** Number of distinct desired references. */
  get size(): number {
    this.#settle();
    return this.#admitted.size;
  }

  /** The desired references, sorted. */
  refs(): string[] {
    this.#settle();
    return [...this.#admitted.keys()].sort();
  }

  /** The desired images with their trust, sorted by reference. */
  images(): DesiredImage[] {
    return this.refs().map((ref) => ({ ref, trusted: this.#admitted.get(ref)! }));
  }

  /** The origins that ask for a reference, sorted. */
  originsOf(ref: string): string[] {
    return [...(this.#candidates.get(ref) ?? [])].sort();
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

  /** Samples of rejected references, for one origin or all of them. */
  rejections(origin?: string): Rejection[] {
    if (origin !== undefined) return [...(this.#rejected.get(origin)?.samples ?? [])];
    return [...this.#rejected.values()].flatMap((s) => s.samples);
  }

  /** The rejections of every origin that has some, sorted by origin. */
  rejectionSummaries(): RejectionSummary[] {
    return [...this.#rejected.values()].sort((a, b) =>
      a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0
    );
  }

  /** How many entries are rejected in all (exact, unlike the samples). */
  rejectedCount(): number {
    return this.#rejectedCount;
  }

  /**
   * References accepted but not desired because of the total cap: how many,
   * and the first `limit` of them in admission order.
   */
  overCap(limit = MAX_REJECTION_SAMPLES): { count: number; samples: string[] } {
    this.#settle();
    const count = this.#candidates.size - this.#admitted.size;
    if (count === 0) return { count, samples: [] };
    const samples = this.#ranked().filter((ref) => !this.#admitted.has(ref)).slice(0, limit);
    return { count, samples };
  }

  /**
   * Calls `listener` after every change that adds or removes a desired
   * reference or changes its trust. Returns a function that unsubscribes.
   */
  subscribe(listener: ImageChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #normalize(input: unknown): NormalizeResult {
    if (typeof input !== "string" || input.length > NORMALIZED_CACHE_MAX_INPUT) {
      return tryNormalizeReference(input);
    }
    let result = this.#normalized.get(input);
    if (result === undefined) {
      if (this.#normalized.size >= NORMALIZED_CACHE_ENTRIES) this.#normalized.clear();
      result = tryNormalizeReference(input);
      this.#normalized.set(input, result);
    }
    return result;
  }

  #setRejections(origin: string, summary: RejectionSummary | undefined): void {
    this.#rejectedCount -= this.#rejected.get(origin)?.count ?? 0;
    if (summary === undefined) this.#rejected.delete(origin);
    else {
      this.#rejected.set(origin, summary);
      this.#rejectedCount += summary.count;
    }
  }

  #replace(origin: string, next: ReadonlySet<string>, trusted: boolean): void {
    const previous = this.#byOrigin.get(origin) ?? NO_REFS;
    const added: string[] = [];
    const removed: string[] = [];
    const flipped: string[] = [];
    const capped = this.#dirty || this.#admitted.size < this.#candidates.size;
    for (const ref of previous) {
      if (next.has(ref)) continue;
      const origins = this.#candidates.get(ref);
      origins?.delete(origin);
      if (trusted) {
        const left = (this.#trustedOrigins.get(ref) ?? 1) - 1;
        if (left > 0) this.#trustedOrigins.set(ref, left);
        else {
          this.#trustedOrigins.delete(ref);
          if (origins?.size) flipped.push(ref);
        }
      }
      if (origins?.size === 0) {
        this.#candidates.delete(ref);
        removed.push(ref);
      }
    }
    for (const ref of next) {
      if (previous.has(ref)) continue;
      let origins = this.#candidates.get(ref);
      if (origins === undefined) {
        origins = new Set();
        this.#candidates.set(ref, origins);
        added.push(ref);
      }
      origins.add(origin);
      if (trusted) {
        const before = this.#trustedOrigins.get(ref) ?? 0;
        this.#trustedOrigins.set(ref, before + 1);
        if (before === 0 && origins.size > 1) flipped.push(ref);
      }
    }
    if (next.size > 0) this.#byOrigin.set(origin, next);
    else this.#byOrigin.delete(origin);
    if (added.length === 0 && removed.length === 0 && flipped.length === 0) return;
    if (!capped && this.#candidates.size <= this.#maxDesired) {
      // Within the cap every candidate is desired: apply the change as is.
      for (const ref of removed) this.#admitted.delete(ref);
      for (const ref of added) this.#admitted.set(ref, this.#isTrusted(ref));
      const retrusted: string[] = [];
      for (const ref of flipped) {
        if (!this.#admitted.has(ref) || added.includes(ref)) continue;
        this.#admitted.set(ref, this.#isTrusted(ref));
        retrusted.push(ref);
      }
      this.#emit(
        retrusted.length > 0 ? { added, removed, retrusted } : { added, removed },
      );
      return;
    }
    // Over the cap: recompute which are desired once per batch (a relist
    // replaces every object in one synchronous loop), not once per object.
    this.#dirty = true;
    this.#scheduleFlush();
  }

  #isTrusted(ref: string): boolean {
    return (this.#trustedOrigins.get(ref) ?? 0) > 0;
  }

  /** Candidates in admission order: trusted first, then by reference. */
  #ranked(): string[] {
    return [...this.#candidates.keys()].sort((a, b) => {
      const ta = this.#isTrusted(a);
      if (ta !== this.#isTrusted(b)) return ta ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }

  /** Recomputes the admitted set if changes wait, recording the difference for listeners. */
  #settle(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#version++;
    this.recomputations++;
    const ranked = this.#candidates.size <= this.#maxDesired
      ? [...this.#candidates.keys()]
      : this.#ranked().slice(0, this.#maxDesired);
    const next = new Map(ranked.map((ref) => [ref, this.#isTrusted(ref)]));
    const pending = this.#pending ??= {
      added: new Set(),
      removed: new Set(),
      retrusted: new Set(),
    };
    for (const [ref, trust] of this.#admitted) {
      if (!next.has(ref)) {
        if (pending.added.has(ref)) pending.added.delete(ref);
        else pending.removed.add(ref);
        pending.retrusted.delete(ref);
      } else if (next.get(ref) !== trust && !pending.added.has(ref)) pending.retrusted.add(ref);
    }
    for (const ref of next.keys()) {
      if (this.#admitted.has(ref)) continue;
      if (pending.removed.has(ref)) {
        pending.removed.delete(ref);
        pending.retrusted.add(ref);
      } else pending.added.add(ref);
    }
    this.#admitted = next;
    const capped = this.#candidates.size > this.#maxDesired;
    if (capped !== this.#wasCapped) {
      this.#wasCapped = capped;
      if (capped) {
        // Why a warning and not an error: the images within the cap are
        // still pulled; the operator raises the cap or tightens the sources.
        this.#log?.warn("Desired images over --max-desired-images; the rest are not pulled", {
          max: this.#maxDesired,
          notPulled: this.#candidates.size - this.#maxDesired,
        });
      } else this.#log?.info("Desired images within --max-desired-images again");
    }
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#settle();
      this.#flushPending();
    });
  }

  #flushPending(): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    if (pending.added.size + pending.removed.size + pending.retrusted.size === 0) return;
    const change: ImageChange = {
      added: [...pending.added],
      removed: [...pending.removed],
      ...(pending.retrusted.size > 0 ? { retrusted: [...pending.retrusted] } : {}),
    };
    for (const listener of this.#listeners) listener(change);
  }

  #emit(change: ImageChange): void {
    // Changes recorded by an earlier recomputation go first, in order.
    this.#flushPending();
    if (change.added.length === 0 && change.removed.length === 0 && !change.retrusted) return;
    for (const listener of this.#listeners) listener(change);
  }
}
