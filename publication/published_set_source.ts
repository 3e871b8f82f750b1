/**
 * The node daemon's only source: the published set, watched by label in its
 * own namespace. It applies a generation only when it is complete, and when
 * the set is missing, incomplete or unreadable it keeps the last complete one
 * and says so: an aggregator outage or a deleted ConfigMap never makes a
 * node drop images.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { Reflector } from "../kube/reflector.ts";
import { watchPublishedSet } from "./published_set_watch.ts";
import type { ImageSink, Source } from "../sources/source.ts";
import type { WatchStatus } from "../kube/reflector.ts";
import { type PublishedImage, type Shard, viewShards } from "./published_set.ts";

/** The origin under which the published images are recorded. */
export const PUBLISHED_ORIGIN = "published-set";
/** The origin of the images published as trusted (the trust policy trusts it). */
export const PUBLISHED_TRUSTED_ORIGIN = "published-trusted";

/** How the published set looks from a node. */
export type PublishedSetState = "current" | "missing" | "incomplete" | "unreadable";

/** A point-in-time view of the published set from a node, for status, readiness and metrics. */
export interface PublishedSetStatus {
  /** `current`: the newest complete generation is applied. Else why the last one is kept. */
  readonly state: PublishedSetState;
  /** One sentence for humans when the state is not `current`. */
  readonly detail?: string;
  /** The generation applied, if any. */
  readonly generation?: number;
  /** Images in it. */
  readonly images: number;
  /** When (clock ms) a complete set was last seen: now while `current`. */
  readonly lastComplete?: number;
  /** Whether the tag ledger counts (an aggregator is alive), and why not. */
  readonly ledger?: { readonly alive?: boolean; readonly reason?: string };
}

/** Options for {@linkcode PublishedSetSource}. */
export interface PublishedSetSourceOptions {
  kubeConfig: KubeConfig;
  /** The daemon's namespace, where the aggregator publishes. */
  namespace: string;
  sink: ImageSink;
  log: Logger;
  clock?: Clock;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /**
   * Whether an aggregator keeps the tag ledger now (election/lease_liveness.ts):
   * while it says no, {@linkcode PublishedSetSource.ledger} has nothing, so
   * the node resyncs its tags itself. Absent: the ledger always counts.
   */
  ledgerLiveness?: {
    alive(): boolean;
    check(): Promise<void>;
    status(): { readonly alive?: boolean; readonly reason?: string };
  };
}

/** Whether two reference lists are equal, element by element. */
function sameRefs(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Watches the published set and applies each complete generation to the sink. */
export class PublishedSetSource implements Source {
  readonly name = "published-set";
  readonly synced: Promise<void>;
  readonly #o: PublishedSetSourceOptions;
  readonly #clock: Clock;
  readonly #reflector: Reflector<Shard>;
  readonly #shards = new Map<string, Shard>();
  #resolveSynced!: () => void;
  #applied?: { generation: number; digest: string; images: number };
  #state: PublishedSetState = "missing";
  #detail?: string = "No published set seen yet";
  #lastComplete?: number;
  /** The references last applied as trusted, in published order. */
  #trustedList: readonly string[] = [];
  /** The references last applied as untrusted, in published order. */
  #untrustedList: readonly string[] = [];
  /** The tag ledger as last applied: per tag, its canary and digest. */
  #ledger = new Map<string, { canary?: string; digest?: string }>();
  readonly #ledgerListeners = new Set<(refs: string[]) => void>();

  constructor(options: PublishedSetSourceOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    this.synced = new Promise((resolve) => this.#resolveSynced = resolve);
    this.#reflector = watchPublishedSet(this.#shards, {
      ...options,
      // The watch delivers nothing before its first list: every change counts.
      onChange: () => this.#reconcile(),
      // 403/404 on our own namespace's ConfigMaps: keep what we have.
      onUnavailable: (status, message) =>
        this.#setState("unreadable", `Cannot list the published set (${status}): ${message}`),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.#reflector.run(signal);
  }

  status(): WatchStatus {
    const r = this.#reflector.status();
    return {
      name: this.name,
      // Synced means a complete set was applied: no pull before that.
      synced: this.#applied !== undefined,
      available: r.available,
      reason: this.#state === "current" ? r.reason : this.#detail,
      objects: this.#shards.size,
      errors: this.#state === "unreadable" ? 1 : 0,
      restarts: r.restarts,
      lastActivity: r.lastActivity,
    };
  }

  /** How the published set looks from this node. */
  publishedSet(): PublishedSetStatus {
    return {
      state: this.#state,
      detail: this.#state === "current" ? undefined : this.#detail,
      generation: this.#applied?.generation,
      images: this.#applied?.images ?? 0,
      lastComplete: this.#state === "current" ? this.#clock.now() : this.#lastComplete,
      ledger: this.#o.ledgerLiveness?.status(),
    };
  }

  /** Reads whether an aggregator keeps the tag ledger now (before the puller starts). */
  async checkLedger(): Promise<void> {
    await this.#o.ledgerLiveness?.check();
  }

  /**
   * The aggregator's tag ledger for `ref` (a tag), as last applied; nothing
   * while no aggregator keeps it (a moved tag's new digest would not be
   * published).
   */
  ledger(ref: string): { canary?: string; digest?: string } | undefined {
    const entry = this.#ledger.get(ref);
    if (entry === undefined || this.#o.ledgerLiveness?.alive() === false) return undefined;
    return entry;
  }

  /**
   * The published ledger entry for `ref`, alive aggregator or not: for what
   * this node owes the others (a canary's report), not for what it may skip.
   */
  ledgerEntry(ref: string): { canary?: string; digest?: string } | undefined {
    return this.#ledger.get(ref);
  }

  /** Calls `listener` with the tags whose ledger digest changed, after each applied set. */
  onLedgerChange(listener: (refs: string[]) => void): () => void {
    this.#ledgerListeners.add(listener);
    return () => this.#ledgerListeners.delete(listener);
  }

  #applyLedger(images: readonly PublishedImage[]): void {
    const next = new Map<string, { canary?: string; digest?: string }>();
    const moved: string[] = [];
    for (const image of images) {
      if (image.canary === undefined && image.ledgerDigest === undefined) continue;
      next.set(image.ref, { canary: image.canary, digest: image.ledgerDigest });
      const was = this.#ledger.get(image.ref)?.digest;
      if (image.ledgerDigest !== undefined && was !== undefined && was !== image.ledgerDigest) {
        moved.push(image.ref);
      }
    }
    this.#ledger = next;
    if (moved.length === 0) return;
    this.#o.log.info("Tags moved in the ledger", {
      images: moved.slice(0, 20),
      count: moved.length,
    });
    for (const listener of this.#ledgerListeners) listener(moved);
  }

  #reconcile(): void {
    const view = viewShards(this.#shards.values());
    // Never back to an older generation while shards of the applied one (or
    // newer) are there: an older set left behind by an aggregator that died
    // before its clean-up is not the newest, only the newest complete one
    // while the newest is broken. Once nothing of it is left (every shard
    // deleted, or a new aggregator starting over), the newest set is the
    // one there.
    const applied = this.#applied;
    const complete = view.complete !== undefined && applied !== undefined &&
        view.complete.generation < applied.generation && view.maxGeneration >= applied.generation
      ? undefined
      : view.complete;
    if (complete) {
      this.#lastComplete = this.#clock.now();
      if (complete.digest !== this.#applied?.digest) {
        // The whole set replaces the last one in one step (level-triggered).
        const trusted: string[] = [];
        const untrusted: string[] = [];
        for (const image of complete.images) {
          (image.trusted === true ? trusted : untrusted).push(image.ref);
        }
        // A generation that changes only the ledger (a canary reported a
        // digest: about one a second while a cluster pulls new tags) names
        // the same images: the sink is left as it is, not fed the whole set
        // again. The sink's origins are this source's alone.
        if (!sameRefs(trusted, this.#trustedList) || !sameRefs(untrusted, this.#untrustedList)) {
          // In three steps, so an image whose trust changed is in one origin or
          // both at every moment, never in neither (that would cancel its pull):
          // keep what was trusted and is still desired, set the untrusted, then
          // the trusted exactly.
          const stillDesired = new Set(untrusted);
          // The aggregator held each object to the per-object cap: the set as
          // a whole is bounded only by --max-desired-images.
          const aggregate = { aggregate: true };
          this.#o.sink.set(PUBLISHED_TRUSTED_ORIGIN, [
            ...trusted,
            ...this.#trustedList.filter((ref) => stillDesired.has(ref)),
          ], aggregate);
          this.#o.sink.set(PUBLISHED_ORIGIN, untrusted, aggregate);
          this.#o.sink.set(PUBLISHED_TRUSTED_ORIGIN, trusted, aggregate);
          this.#trustedList = trusted;
          this.#untrustedList = untrusted;
        }
        this.#applyLedger(complete.images);
        this.#o.log.info("Applied the published set", {
          generation: complete.generation,
          images: complete.images.length,
          previous: this.#applied?.generation,
        });
        const first = this.#applied === undefined;
        this.#applied = {
          generation: complete.generation,
          digest: complete.digest,
          images: complete.images.length,
        };
        if (first) this.#resolveSynced();
      } else {
        this.#applied = { ...this.#applied, generation: complete.generation };
      }
    }
    const keeping = this.#applied
      ? `keeping generation ${this.#applied.generation} (${this.#applied.images} images)`
      : "nothing to pull yet";
    const newer = view.incomplete.filter((g) => g > (complete?.generation ?? 0));
    if (view.unreadable.length > 0 && !complete) {
      const { name, error } = view.unreadable[0];
      this.#setState(
        "unreadable",
        `Published ConfigMap "${name}" cannot be read (${error}); ${keeping}`,
      );
    } else if (newer.length > 0) {
      // Also while an update is being written: normal for a moment, a
      // problem only if it lasts (the aggregator died mid-write).
      this.#setState(
        "incomplete",
        `Published generation ${newer[0]} is incomplete; ${keeping}`,
        complete !== undefined,
      );
    } else if (!complete) {
      this.#setState("missing", `No published set in the namespace; ${keeping}`);
    } else {
      this.#setState("current");
    }
  }

  #setState(state: PublishedSetState, detail?: string, quiet = false): void {
    if (state === this.#state && detail === this.#detail) return;
    const was = this.#state;
    this.#state = state;
    this.#detail = detail;
    if (state === "current") {
      if (was !== "current") this.#o.log.debug("The published set is complete", { was });
      return;
    }
    // Once per change of state: a node waiting for the aggregator logs it,
    // not every event; an update being written is only worth a debug line.
    if (was === state) return;
    if (quiet) this.#o.log.debug("Keeping the last complete published set", { state, detail });
    else this.#o.log.warn("Keeping the last complete published set", { state, detail });
  }
}
