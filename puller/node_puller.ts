/**
 * The node puller: reconciles the desired images against one node.
 *
 * Per image: `pending → pulling → present | failed`, with a concurrency limit,
 * a timeout per attempt, per-image exponential backoff and periodic resync.
 * All time goes through an injected {@linkcode Clock}; all pulling goes
 * through a {@linkcode PullStrategy}; the puller itself does no I/O.
 *
 * @module
 */
import { type Clock, realClock, waitAtMost } from "../time/clock.ts";
import { formatDuration } from "../config/duration.ts";
import { PullError } from "./errors.ts";
import type { DesiredImages, ImageChange } from "../images/desired_images.ts";
import { isDigestPinned, parseReference } from "../images/reference.ts";
import type { Logger } from "../log/logger.ts";
import { Backoff } from "../time/backoff.ts";
import type { PullResult, PullStrategy } from "./strategy.ts";
import { WorkQueue } from "./work_queue.ts";

/** Where an image stands on this node. */
export type ImageState = "pending" | "pulling" | "present" | "failed";

/** What the puller knows about one desired image, as returned by {@linkcode NodePuller.status}. */
export interface ImageStatus {
  /** The normalised reference. */
  ref: string;
  /** Current state. A refresh (resync) of a present image shows as `pulling`. */
  state: ImageState;
  /** Pull attempts started since the reference became desired. */
  attempts: number;
  /** Failed attempts since the last success (what the backoff grows with). */
  consecutiveFailures: number;
  /** Message of the last failure, kept after a later success. */
  lastError?: string;
  /** Reason of the last failure (a {@linkcode PullError} reason). */
  lastErrorReason?: string;
  /** When the last attempt started (clock milliseconds). */
  lastAttempt?: number;
  /** When the last pull succeeded. */
  lastSuccess?: number;
  /** The digest the last successful pull reported. */
  digest?: string;
  /** When the next attempt (retry, or resync check) is due, if one is scheduled. */
  nextAttempt?: number;
  /** True while parked after a permanent failure. */
  permanent?: boolean;
  /** True when a trusted origin asks for it: pulls may use the registry credentials. */
  trusted?: boolean;
  /** True once it has been made present on the node since it became desired. */
  everPresent?: boolean;
  /** For a tag under the aggregator's ledger: the digest the ledger holds for it. */
  ledgerDigest?: string;
  /** For a tag under the ledger: true when this node is its canary (it checks the registry). */
  canary?: boolean;
  /** For a tag under the ledger: true while the tag on this node does not have the ledger's digest. */
  ledgerDrift?: boolean;
}

/** What a node reads of the aggregator's tag ledger for one tag (see `PublishedImage`). */
export interface LedgerView {
  /** The node that checks the tag each period; absent: every node checks it. */
  readonly canary?: string;
  /** The digest the canary last saw the tag point to. */
  readonly digest?: string;
}

/** What {@linkcode NodePullerOptions.onPullFinished} receives. */
export interface PullFinished {
  /** True when the strategy resolved. */
  ok: boolean;
  /** Clock time from start to settlement. */
  durationMs: number;
  /** Digest reported by a successful pull. */
  digest?: string;
  /** The failure; set only for failures that count (not for cancellations). */
  error?: PullError;
  /** True when the attempt was aborted because the image left the desired set or on shutdown. */
  cancelled?: boolean;
}

/** Options for {@linkcode NodePuller}. */
export interface NodePullerOptions {
  /** The node this puller works for (for logs). */
  node: string;
  /** How one image is pulled. */
  strategy: PullStrategy;
  /** The desired images; the puller subscribes to their changes. */
  desired: DesiredImages;
  /** Logger; lines carry `node` and `image`. */
  log: Logger;
  /** Time source. @default {realClock} */
  clock?: Clock;
  /** Most attempts in flight at once (`--max-concurrent-pulls`). */
  maxConcurrentPulls: number;
  /** An attempt not settled by then is aborted and counts as a `Timeout` failure (`--pull-timeout`). */
  pullTimeoutMs: number;
  /** Cap on the retry delay, also the parking time of permanent failures (`--pull-backoff-max`). */
  backoffMaxMs: number;
  /** Delay before the first retry. @default {5000} */
  backoffBaseMs?: number;
  /** Spread of retry delays, as a fraction. @default {0.2} */
  backoffJitter?: number;
  /** Randomness for the jitter, replaceable in tests. @default {Math.random} */
  random?: () => number;
  /** How long after its last success an image is pulled again (`--resync-period`); 0 disables. */
  resyncPeriodMs: number;
  /**
   * Spread of the resync period, as a fraction either way (0.1: 90–110 %).
   * Why: images added at once would otherwise be pulled again in step, on
   * every node, every period. @default {0.1}
   */
  resyncJitter?: number;
  /**
   * The image names the node reports in `status.images` (normalised,
   * `domain/path@digest` or `domain/path:tag@digest`). A digest-pinned
   * reference found here is never pulled: not at start, not at resync. Called
   * before each attempt at a digest-pinned reference, so it must be cheap
   * (return a maintained set, do not build one per call).
   */
  presentImages?: () => ReadonlySet<string>;
  /**
   * Whether {@linkcode presentImages} lists every image on the node. The
   * kubelet reports at most 50 by default, so on a busy node absence proves
   * nothing. @default {() => true}
   */
  presentImagesComplete?: () => boolean;
  /**
   * How long a digest-pinned image this puller pulled counts as present while
   * the node's list is incomplete and does not show it. A digest's content
   * cannot change, only image garbage collection can remove it; this bounds
   * how long such a loss goes unnoticed. @default {21600000} (6 h)
   */
  digestRecheckMs?: number;
  /**
   * The aggregator's tag ledger as published (`--role=node`). A tag whose
   * canary is another node and whose copy on this node already has the
   * ledger's digest is not pulled: the canary's check stands for it. Absent
   * (`--role=all`): every node checks every tag, its own canary.
   */
  ledger?: (ref: string) => LedgerView | undefined;
  /**
   * The tags on the node with their digests, as `domain/path:tag@digest`
   * (`NodeImages.tagDigests`). Must be cheap, like {@linkcode presentImages}.
   */
  presentTagDigests?: () => ReadonlySet<string>;
  /** Called when a tag is not pulled because the node holds the ledger's digest. */
  onLedgerSkip?(ref: string): void;
  /** Called when an attempt starts, for metrics, events and benchmarks. */
  onPullStarted?(ref: string): void;
  /** Called when an attempt settles (exactly once per {@linkcode onPullStarted}). */
  onPullFinished?(ref: string, result: PullFinished): void;
  /** Called whenever an image is (again) known present: pulled, or found on the node. */
  onPresent?(ref: string): void;
}

/** How often, at most, a wake-up re-reads the whole desired set to heal drift. */
const FULL_RECONCILE_MIN_INTERVAL_MS = 1_000;
/** Longest the loop sleeps with nothing to do, so drift heals even when idle. */
const IDLE_WAKE_MS = 60_000;

type AbortCause = "removed" | "timeout" | "shutdown";

/**
 * The reason the puller's own timers are cancelled with (nothing reads it).
 * Why not the default: `abort()` builds a DOMException with a stack trace,
 * twice per pull, for a rejection that is ignored.
 */
const TIMER_DONE = "timer no longer needed";

interface Entry {
  readonly ref: string;
  /** For digest-pinned references: the names under which the node may report it. */
  readonly presenceNames?: readonly string[];
  /** Whether a trusted origin asks for it (from the desired images). */
  trusted: boolean;
  state: ImageState;
  attempts: number;
  consecutiveFailures: number;
  lastError?: string;
  lastErrorReason?: string;
  lastLoggedReason?: string;
  lastAttempt?: number;
  lastSuccess?: number;
  digest?: string;
  nextAttempt?: number;
  permanent?: boolean;
  /** Pulled successfully (or found on the node) since it became desired. */
  everPresent: boolean;
  /** Waiting for an attempt of an earlier incarnation (removed, re-added) to settle. */
  blocked: boolean;
}

interface Attempt {
  readonly entry: Entry;
  readonly controller: AbortController;
  readonly stopTimer: AbortController;
  readonly startedAt: number;
  readonly refresh: boolean;
  cause?: AbortCause;
  done?: Promise<void>;
}

function toPullError(ref: string, error: unknown): PullError {
  if (error instanceof PullError) return error;
  // A strategy must throw PullError; anything else is a bug in it. Count it as
  // a failure like any other so one broken attempt cannot stop the loop.
  const message = error instanceof Error ? error.message : String(error);
  return new PullError(ref, "RuntimeError", `Pull of "${ref}" failed: ${message}`, {
    cause: error,
  });
}

/** The names under which a node may report a digest-pinned reference in `status.images`. */
function presenceNamesOf(ref: string): readonly string[] | undefined {
  if (!isDigestPinned(ref)) return undefined;
  try {
    const { domain, path, digest } = parseReference(ref);
    const byDigest = `${domain}/${path}@${digest}`;
    return byDigest === ref ? [ref] : [ref, byDigest];
  } catch {
    return [ref];
  }
}

/**
 * Reconciles the desired images against one node.
 *
 * The work set is keyed by normalised reference, with at most one attempt in
 * flight per reference and at most `maxConcurrentPulls` overall. Changes to
 * the desired set wake the loop at once; the whole set is also re-read on
 * wake-ups (at most once a second, and at least once a minute), so a missed
 * notification heals. The worker loop is the only place that catches pull
 * failures and decides retries.
 *
 * @example
 * ```ts ignore
 * const puller = new NodePuller({ node, strategy, desired, log, maxConcurrentPulls: 2,
 *   pullTimeoutMs: 600_000, backoffMaxMs: 3_600_000, resyncPeriodMs: 900_000 });
 * await puller.run(signal); // after every source synced
 * ```
 */
export class NodePuller {
  readonly #options: NodePullerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #entries = new Map<string, Entry>();
  readonly #running = new Map<string, Attempt>();
  /** Entries ready to start, and entries waiting for a retry or resync. */
  readonly #queue = new WorkQueue<Entry>();
  /** The concurrency limit now: `maxConcurrentPulls`, or the warm-up's while warming. */
  #limit: number;
  #shutdown: AbortSignal = new AbortController().signal;
  #started = false;
  #woken = false;
  #wakeUp?: () => void;
  #lastFullReconcile = -Infinity;
  #version = 0;
  /** Entries in {@linkcode #entries} made present since they became desired. */
  #everPresent = 0;

  /**
   * Grows whenever what {@linkcode status} returns may have changed, so views
   * built from it (`/status`) are rebuilt once per change, not per request.
   */
  get version(): number {
    return this.#version;
  }

  #resyncDelay(): number {
    const jitter = this.#options.resyncJitter ?? 0.1;
    const random = this.#options.random ?? Math.random;
    return Math.round(this.#options.resyncPeriodMs * (1 + jitter * (2 * random() - 1)));
  }

  /** @throws {RangeError} when a limit is out of range. */
  constructor(options: NodePullerOptions) {
    const { maxConcurrentPulls, pullTimeoutMs, resyncPeriodMs } = options;
    if (!Number.isInteger(maxConcurrentPulls) || maxConcurrentPulls < 1) {
      throw new RangeError(
        `Cannot create node puller with maxConcurrentPulls ${maxConcurrentPulls}: must be an integer >= 1`,
      );
    }
    if (!(pullTimeoutMs > 0)) {
      throw new RangeError(
        `Cannot create node puller with pullTimeoutMs ${pullTimeoutMs}: must be > 0`,
      );
    }
    if (!(resyncPeriodMs >= 0)) {
      throw new RangeError(
        `Cannot create node puller with resyncPeriodMs ${resyncPeriodMs}: must be >= 0`,
      );
    }
    this.#options = options;
    this.#limit = maxConcurrentPulls;
    this.#clock = options.clock ?? realClock;
    this.#log = options.log.with({ node: options.node });
    this.#backoff = new Backoff({
      baseMs: options.backoffBaseMs,
      maxMs: options.backoffMaxMs,
      jitter: options.backoffJitter,
      random: options.random,
    });
  }

  /**
   * Reconciles until `signal` aborts. Call it once, after every source has
   * synced: an image missing from a half-filled cache must not look removed.
   * On abort it starts no more pulls, aborts those in flight, waits for them
   * to settle, and resolves.
   *
   * @throws {Error} when called a second time.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error("Cannot run a node puller twice");
    this.#started = true;
    this.#shutdown = signal;
    const unsubscribe = this.#options.desired.subscribe((change) => this.#onChange(change));
    const onAbort = () => this.#wake();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      this.#reconcileAll(true);
      this.#log.info("Node puller started", {
        images: this.#entries.size,
        maxConcurrentPulls: this.#limit,
      });
      while (!signal.aborted) {
        this.#woken = false;
        const waitMs = this.#step();
        if (this.#woken || signal.aborted) continue;
        await this.#wait(waitMs);
      }
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      const attempts = [...this.#running.values()];
      for (const attempt of attempts) this.#abort(attempt, "shutdown");
      await Promise.all(attempts.map((attempt) => attempt.done));
      this.#log.info("Node puller stopped");
    }
  }

  /** Every desired image the puller tracks, sorted by reference. */
  status(): ImageStatus[] {
    const out: ImageStatus[] = [];
    for (const entry of this.#entries.values()) {
      const status: ImageStatus = {
        ref: entry.ref,
        state: entry.state,
        attempts: entry.attempts,
        consecutiveFailures: entry.consecutiveFailures,
        trusted: entry.trusted,
      };
      if (entry.lastError !== undefined) status.lastError = entry.lastError;
      if (entry.lastErrorReason !== undefined) status.lastErrorReason = entry.lastErrorReason;
      if (entry.lastAttempt !== undefined) status.lastAttempt = entry.lastAttempt;
      if (entry.lastSuccess !== undefined) status.lastSuccess = entry.lastSuccess;
      if (entry.digest !== undefined) status.digest = entry.digest;
      if (entry.nextAttempt !== undefined) status.nextAttempt = entry.nextAttempt;
      if (entry.permanent) status.permanent = true;
      if (entry.everPresent) status.everPresent = true;
      const ledger = entry.presenceNames === undefined
        ? this.#options.ledger?.(entry.ref)
        : undefined;
      if (ledger?.digest !== undefined) status.ledgerDigest = ledger.digest;
      if (ledger?.canary !== undefined) status.canary = ledger.canary === this.#options.node;
      if (ledger?.digest !== undefined) {
        const held = this.#options.presentTagDigests?.();
        status.ledgerDrift = !held?.has(`${entry.ref}@${ledger.digest}`);
      }
      out.push(status);
    }
    return out.sort((a, b) => a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0);
  }

  /**
   * Changes the concurrency limit (the warm-up raises it while the node
   * warms, then sets it back); attempts beyond a lowered limit finish.
   */
  setConcurrency(limit: number): void {
    if (!Number.isInteger(limit) || limit < 1 || limit === this.#limit) return;
    this.#limit = limit;
    this.#wake();
  }

  /**
   * The tags whose copy on this node does not have the ledger's digest (or
   * is not listed), sorted: what this node has yet to converge on.
   */
  ledgerDrift(): string[] {
    return this.status().filter((s) => s.ledgerDrift).map((s) => s.ref);
  }

  /**
   * Looks at `refs` again now rather than at their next resync: the ledger's
   * digest of these tags changed, so nodes converge at once. Entries in
   * flight, or waiting out a failure's backoff, keep their schedule.
   */
  recheck(refs: Iterable<string>): void {
    let any = false;
    for (const ref of refs) {
      const entry = this.#entries.get(ref);
      if (entry === undefined || entry.blocked || this.#running.has(ref)) continue;
      if (entry.state !== "present") continue;
      this.#queue.delete(entry);
      entry.nextAttempt = undefined;
      this.#queue.add(entry);
      any = true;
    }
    if (any) {
      this.#version++;
      this.#wake();
    }
  }

  /** Attempts started and not yet settled (aborted ones count until they settle). */
  inFlight(): number {
    return this.#running.size;
  }

  /**
   * Whether every desired reference has been made present on the node (pulled,
   * or found there) since it became desired. A later failed refresh does not
   * undo that: the earlier pull is still on the node.
   */
  allPresent(): boolean {
    const { desired } = this.#options;
    // Cheap first: called after every pull, the walk below only once all could be.
    if (this.#entries.size !== desired.size || this.#everPresent < this.#entries.size) return false;
    for (const entry of this.#entries.values()) {
      if (!entry.everPresent || !desired.has(entry.ref)) return false;
    }
    return true;
  }

  // --- work set -----------------------------------------------------------

  #onChange(change: ImageChange): void {
    if (this.#shutdown.aborted) return;
    for (const ref of change.removed) this.#remove(ref);
    for (const ref of change.added) this.#add(ref);
    for (const ref of change.retrusted ?? []) this.#retrust(ref);
    this.#wake();
  }

  #add(ref: string): void {
    this.#version++;
    if (this.#entries.has(ref)) return;
    const entry: Entry = {
      ref,
      presenceNames: presenceNamesOf(ref),
      trusted: this.#options.desired.trusted(ref),
      state: "pending",
      attempts: 0,
      consecutiveFailures: 0,
      everPresent: false,
      blocked: false,
    };
    this.#entries.set(ref, entry);
    // At most one attempt per reference: if an attempt of an earlier
    // incarnation is still winding down, this one waits for it to settle.
    if (this.#running.has(ref)) entry.blocked = true;
    else this.#queue.add(entry);
  }

  /**
   * Follows a change of an image's trust. An image that failed without the
   * credentials is retried at once when a trusted origin starts asking for it.
   */
  #retrust(ref: string): void {
    const entry = this.#entries.get(ref);
    if (entry === undefined) return;
    const trusted = this.#options.desired.trusted(ref);
    if (trusted === entry.trusted) return;
    this.#version++;
    entry.trusted = trusted;
    this.#log.debug("Image trust changed", { image: ref, trusted });
    if (trusted && entry.state === "failed" && !this.#running.has(ref)) {
      this.#backoff.reset(ref);
      entry.nextAttempt = undefined;
      this.#queue.add(entry);
    }
  }

  #remove(ref: string): void {
    this.#version++;
    const entry = this.#entries.get(ref);
    if (entry === undefined) return;
    this.#entries.delete(ref);
    if (entry.everPresent) this.#everPresent--;
    this.#queue.delete(entry);
    this.#backoff.reset(ref);
    const attempt = this.#running.get(ref);
    if (attempt?.entry === entry) this.#abort(attempt, "removed");
    this.#log.debug("Image no longer desired", { image: ref, aborted: attempt !== undefined });
  }

  /** Re-reads the whole desired set: the level-triggered backstop. */
  #reconcileAll(initial: boolean): void {
    this.#lastFullReconcile = this.#clock.now();
    const refs = this.#options.desired.refs();
    // First images asked for by more objects: a warming node opens for the
    // most work soonest (the sort is stable, so ties keep reference order).
    if (initial) {
      const { desired } = this.#options;
      const asks = new Map(refs.map((ref) => [ref, desired.originsOf(ref).length]));
      refs.sort((a, b) => asks.get(b)! - asks.get(a)!);
    }
    const wanted = new Set(refs);
    let added = 0;
    let removed = 0;
    for (const ref of refs) {
      if (this.#entries.has(ref)) {
        this.#retrust(ref);
        continue;
      }
      this.#add(ref);
      added++;
    }
    if (this.#entries.size !== wanted.size) {
      for (const ref of [...this.#entries.keys()]) {
        if (wanted.has(ref)) continue;
        this.#remove(ref);
        removed++;
      }
    }
    if (!initial && (added > 0 || removed > 0)) {
      this.#log.info("Work set repaired from the desired images", { added, removed });
    }
  }

  // --- queue and schedule -------------------------------------------------

  /** Makes `entry` wait until `at` for its next attempt (a retry, or a resync check). */
  #schedule(entry: Entry, at: number): void {
    this.#version++;
    entry.nextAttempt = at;
    this.#queue.addAt(entry, at);
  }

  // --- the loop -----------------------------------------------------------

  #wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  async #wait(ms: number): Promise<void> {
    const woken = new Promise<void>((resolve) => this.#wakeUp = resolve);
    await waitAtMost(this.#clock, ms, woken);
    this.#wakeUp = undefined;
  }

  /** Moves due work to the queue and starts what the limit allows; returns how long to sleep. */
  #step(): number {
    const now = this.#clock.now();
    if (
      this.#entries.size !== this.#options.desired.size ||
      now - this.#lastFullReconcile >= FULL_RECONCILE_MIN_INTERVAL_MS
    ) {
      this.#reconcileAll(false);
    }
    this.#queue.promoteDue(now);
    while (this.#running.size < this.#limit) {
      const entry = this.#queue.pop();
      if (entry === undefined) break;
      this.#start(entry, now);
    }
    const next = this.#queue.nextDue();
    const untilDue = next === undefined ? IDLE_WAKE_MS : Math.max(1, next - now);
    return Math.min(untilDue, IDLE_WAKE_MS);
  }

  #isOnNode(entry: Entry, now: number): boolean {
    const names = entry.presenceNames;
    if (names === undefined || this.#options.presentImages === undefined) return false;
    const present = this.#options.presentImages();
    if (names.some((name) => present.has(name))) return true;
    // Not listed. A complete list proves it gone; an incomplete one (the
    // kubelet reports at most 50 images) proves nothing, so an image this
    // puller pulled by digest is taken as still there until the recheck is due.
    const complete = this.#options.presentImagesComplete?.() ?? true;
    return !complete && entry.lastSuccess !== undefined &&
      now - entry.lastSuccess < (this.#options.digestRecheckMs ?? 6 * 3_600_000);
  }

  /**
   * For a tag whose canary is another node: the digest that canary found
   * (what this node may skip pulling if it holds it). Undefined for
   * digest-pinned references, tags without a ledger digest, and this node's
   * own canary tags.
   */
  #othersLedgerDigest(entry: Entry): string | undefined {
    if (entry.presenceNames !== undefined) return undefined;
    const view = this.#options.ledger?.(entry.ref);
    if (view?.canary === undefined || view.canary === this.#options.node) return undefined;
    return view.digest;
  }

  /**
   * Whether a tag can go unpulled: another node is its canary and the tag on
   * this node points to the ledger's digest. Why that is enough: the canary
   * pulled the tag with `Always` this period and found that digest, so a pull
   * here would fetch nothing new. A node whose list is cut off (the
   * kubelet's cap) and does not show the pair pulls: absence is not proof.
   */
  #holdsLedgerDigest(entry: Entry, now: number): string | undefined {
    const digest = this.#othersLedgerDigest(entry);
    if (digest === undefined) return undefined;
    const held = this.#options.presentTagDigests?.();
    if (held?.has(`${entry.ref}@${digest}`)) return digest;
    // Not listed. On a node past the kubelet's cap that proves nothing: a
    // tag this puller itself pulled at that digest counts as held until the
    // recheck is due, as for digest-pinned images.
    const complete = this.#options.presentImagesComplete?.() ?? true;
    const pulled = entry.digest === digest || entry.digest?.endsWith(`@${digest}`) === true;
    return !complete && pulled && entry.lastSuccess !== undefined &&
        now - entry.lastSuccess < (this.#options.digestRecheckMs ?? 6 * 3_600_000)
      ? digest
      : undefined;
  }

  #start(entry: Entry, now: number): void {
    this.#version++;
    const { ref } = entry;
    const ledgerDigest = this.#holdsLedgerDigest(entry, now);
    if (ledgerDigest !== undefined) {
      entry.digest = ledgerDigest;
      this.#markPresent(entry, now);
      this.#log.debug("Tag holds the ledger's digest; not pulled", {
        image: ref,
        digest: ledgerDigest,
      });
      this.#hook(() => this.#options.onLedgerSkip?.(ref));
      this.#hook(() => this.#options.onPresent?.(ref));
      return;
    }
    // A digest names immutable content: if the node reports it, pulling again
    // cannot change anything, so it costs no pod at all.
    if (this.#isOnNode(entry, now)) {
      const first = !entry.everPresent;
      this.#markPresent(entry, now);
      if (first) this.#log.debug("Image already on the node", { image: ref });
      this.#hook(() => this.#options.onPresent?.(ref));
      return;
    }

    entry.state = "pulling";
    entry.attempts++;
    entry.lastAttempt = now;
    entry.nextAttempt = undefined;
    // At most one attempt per reference: nothing left queued may start it again.
    this.#queue.delete(entry);
    const controller = new AbortController();
    const stopTimer = new AbortController();
    const attempt: Attempt = {
      entry,
      controller,
      stopTimer,
      startedAt: now,
      refresh: entry.everPresent,
    };
    this.#running.set(ref, attempt);

    // The timeout runs on the injected clock, so tests drive it with fake time.
    this.#clock.sleep(this.#options.pullTimeoutMs, stopTimer.signal).then(
      () => this.#abort(attempt, "timeout"),
      () => {},
    );
    this.#hook(() => this.#options.onPullStarted?.(ref));
    this.#log.info("Pull started", {
      image: ref,
      attempt: entry.attempts,
      refresh: attempt.refresh,
    });

    const signal = AbortSignal.any([this.#shutdown, controller.signal]);
    let pulling: Promise<PullResult>;
    try {
      const ledgerDigest = this.#othersLedgerDigest(entry);
      pulling = this.#options.strategy.pull(ref, {
        signal,
        refresh: attempt.refresh,
        trusted: entry.trusted,
        ...(ledgerDigest !== undefined ? { ledgerDigest } : {}),
      });
      if (ledgerDigest !== undefined) {
        pulling = pulling.then((result) => {
          if (result.skipped) this.#hook(() => this.#options.onLedgerSkip?.(ref));
          return result;
        });
      }
    } catch (error) {
      pulling = Promise.reject(error);
    }
    attempt.done = pulling.then(
      (result) => this.#finish(attempt, result, undefined),
      (error: unknown) => this.#finish(attempt, undefined, error),
    );
  }

  #abort(attempt: Attempt, cause: AbortCause): void {
    if (attempt.cause !== undefined) return;
    attempt.cause = cause;
    const ref = attempt.entry.ref;
    const reason = cause === "timeout"
      ? new DOMException(
        `Pull of "${ref}" did not finish within ${formatDuration(this.#options.pullTimeoutMs)}`,
        "TimeoutError",
      )
      : cause === "removed"
      ? new DOMException(`Image "${ref}" is no longer desired`, "AbortError")
      : this.#shutdown.reason ?? new DOMException("Node puller stopped", "AbortError");
    attempt.controller.abort(reason);
  }

  /** The one place that catches pull failures and decides what happens next. */
  #finish(attempt: Attempt, result: PullResult | undefined, error: unknown): void {
    this.#version++;
    const { entry } = attempt;
    const { ref } = entry;
    this.#running.delete(ref);
    attempt.stopTimer.abort(TIMER_DONE);
    const now = this.#clock.now();
    const durationMs = now - attempt.startedAt;
    const cause = attempt.cause ?? (this.#shutdown.aborted ? "shutdown" : undefined);
    const attached = this.#entries.get(ref) === entry;

    if (!attached) {
      // Removed while in flight: whatever happened no longer matters, except
      // that a re-added incarnation may now start.
      this.#hook(() =>
        this.#options.onPullFinished?.(
          ref,
          result === undefined
            ? { ok: false, durationMs, cancelled: true }
            : { ok: true, durationMs, digest: result.digest },
        )
      );
      this.#log.debug("Pull cancelled", { image: ref, cause: cause ?? "removed", durationMs });
      const next = this.#entries.get(ref);
      if (next?.blocked) {
        next.blocked = false;
        this.#queue.add(next);
      }
      this.#wake();
      return;
    }

    if (result !== undefined) {
      this.#succeeded(attempt, result, now, durationMs);
    } else if (cause === "shutdown") {
      entry.state = entry.everPresent ? "present" : "pending";
      this.#hook(() =>
        this.#options.onPullFinished?.(ref, { ok: false, durationMs, cancelled: true })
      );
    } else {
      const failure = cause === "timeout"
        ? new PullError(
          ref,
          "Timeout",
          `Pull of "${ref}" did not finish within ${formatDuration(this.#options.pullTimeoutMs)}`,
          { cause: error },
        )
        : toPullError(ref, error);
      this.#failed(attempt, failure, now, durationMs);
    }
    this.#wake();
  }

  /** Records that an image is on the node; with resync on, it is looked at again one period on. */
  #markPresent(entry: Entry, now: number): void {
    this.#version++;
    this.#backoff.reset(entry.ref);
    entry.state = "present";
    if (!entry.everPresent && this.#entries.get(entry.ref) === entry) this.#everPresent++;
    entry.everPresent = true;
    entry.consecutiveFailures = 0;
    entry.permanent = undefined;
    entry.lastLoggedReason = undefined;
    entry.nextAttempt = undefined;
    if (this.#options.resyncPeriodMs > 0) this.#schedule(entry, now + this.#resyncDelay());
  }

  #succeeded(attempt: Attempt, result: PullResult, now: number, durationMs: number): void {
    const { entry } = attempt;
    const { ref } = entry;
    entry.lastSuccess = now;
    if (result.digest !== undefined) entry.digest = result.digest;
    this.#markPresent(entry, now);
    const fields = { image: ref, digest: result.digest, durationMs, skipped: result.skipped };
    this.#log.info(attempt.refresh ? "Image refreshed" : "Image pulled", fields);
    this.#hook(() =>
      this.#options.onPullFinished?.(ref, { ok: true, durationMs, digest: result.digest })
    );
    this.#hook(() => this.#options.onPresent?.(ref));
  }

  #failed(attempt: Attempt, error: PullError, now: number, durationMs: number): void {
    const { entry } = attempt;
    const { ref } = entry;
    entry.state = "failed";
    entry.consecutiveFailures++;
    entry.lastError = error.message;
    entry.lastErrorReason = error.reason;
    // Retrying soon cannot fix a permanent failure (no variant for this
    // platform, invalid name): park it at the cap instead of retrying hot.
    entry.permanent = error.permanent || undefined;
    const delay = error.permanent ? this.#backoff.park(ref) : this.#backoff.next(ref);
    this.#schedule(entry, now + delay);
    // Say it once: the first failure of a streak (or a new reason) is a
    // warning; repeats of the same reason are debug detail.
    const repeat = entry.lastLoggedReason === error.reason;
    entry.lastLoggedReason = error.reason;
    const fields = {
      image: ref,
      reason: error.reason,
      error: error.message,
      failures: entry.consecutiveFailures,
      retryIn: formatDuration(delay),
    };
    const msg = error.permanent ? "Pull failed permanently; parked" : "Pull failed; will retry";
    if (repeat) this.#log.debug(msg, fields);
    else this.#log.warn(msg, fields);
    this.#hook(() => this.#options.onPullFinished?.(ref, { ok: false, durationMs, error }));
  }

  #hook(call: () => void): void {
    // A broken metrics or event hook must not stop the puller; log and go on.
    try {
      call();
    } catch (error) {
      this.#log.error("Pull hook failed", { error });
    }
  }
}
