/**
 * The aggregator's writer of the published set: while it leads, it keeps the
 * published ConfigMaps equal to the desired images, writing a new generation
 * only when the set changed (compare before write), at most about once per
 * interval (debounced), and removing older generations only once the new one
 * is complete.
 *
 * Two schedules: a change of the images themselves (a reference added or
 * removed, its trust) is written at most once per interval, counted from the
 * last such write; a change only of what the tag ledger adds (a canary, a
 * digest) waits for a slower interval of its own, or rides along with the
 * next change of the images. So a digest learned a moment after a new tag
 * was published never delays the next new tag.
 *
 * @module
 */
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { type Clock, realClock, sleepUnlessAborted, untilAborted } from "../time/clock.ts";
import { backoffDelay } from "../time/backoff.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus } from "../kube/client.ts";
import type { Reflector } from "../kube/reflector.ts";
import { watchPublishedSet } from "./published_set_watch.ts";
import {
  encodeShards,
  isShardName,
  MAX_GENERATION,
  PUBLISHED_SET_SELECTOR,
  type PublishedImage,
  publishedImageOf,
  readShard,
  setDigest,
  type SetView,
  type Shard,
  sortImages,
  viewShards,
} from "./published_set.ts";

/** What the publisher reads the desired images from (`DesiredImages` satisfies it). */
export interface DesiredSet {
  /** The normalised desired references. */
  refs(): string[];
  /** Whether an operator-trusted origin asks for `ref` (published with the image). */
  trusted?(ref: string): boolean;
  /** Calls `listener` after each change; returns the unsubscribe. */
  subscribe(listener: () => void): () => void;
}

/** Options for {@linkcode Publisher}. */
export interface PublisherOptions {
  kubeConfig: KubeConfig;
  /** The aggregator's namespace, where the published set lives. */
  namespace: string;
  desired: DesiredSet;
  /** The write fence: true only while this replica leads. Checked before every write. */
  isLeader(): boolean;
  /** Resolves once every source has synced: nothing is published from a half-filled cache. */
  sourcesSynced: Promise<void>;
  log: Logger;
  clock?: Clock;
  /**
   * Adds per-image data to what is published (the tag ledger's canary and
   * digest, `TagLedger.annotate`). Call {@linkcode Publisher.poke} when
   * what it returns changes.
   */
  annotate?(image: PublishedImage): PublishedImage;
  /** Least time between two writes of a change of the images. @default {1000} */
  minIntervalMs?: number;
  /**
   * Least time between a write and one that changes only what
   * {@linkcode PublisherOptions.annotate} adds. @default {5 × minIntervalMs}
   */
  annotationIntervalMs?: number;
  /** Longest time between two checks of the published set against the desired one. @default {60000} */
  resyncMs?: number;
  /**
   * Why no image may leave the published set now (a source the aggregator is
   * forbidden to read: its objects may still ask for images it cannot see),
   * or undefined. While it says why, published images that are no longer
   * desired stay published; additions go out as usual. Asked at each plan:
   * a change of its answer alone is seen at the next poke or resync.
   */
  holdRemovals?(): string | undefined;
  /** First wait after a failed write. @default {1000} */
  backoffBaseMs?: number;
  /** Longest wait after failed writes. @default {30000} */
  backoffMaxMs?: number;
}

/** A point-in-time view of the publisher, for status and metrics. */
export interface PublisherStatus {
  /** The generation last published (or adopted) by this replica, or seen complete. */
  readonly generation?: number;
  /** When this replica last wrote a generation (clock ms). */
  readonly lastPublish?: number;
  /** Images in the published set. */
  readonly images: number;
  /** Shards of the published set. */
  readonly shards: number;
  /** Generations written by this replica. */
  readonly publishes: number;
  /** True once the publisher has seen every source synced and its own ConfigMaps listed. */
  readonly synced: boolean;
}

/** Keeps the published set equal to the desired images while leading. */
export class Publisher {
  readonly #o: PublisherOptions;
  readonly #api: CoreV1Api;
  readonly #clock: Clock;
  /** The reason removals were last held for, to say it once. */
  #heldBecause?: string;
  readonly #reflector: Reflector<Shard>;
  /** The published ConfigMaps as this replica knows them: watched, and updated by its own writes. */
  readonly #shards = new Map<string, Shard>();
  #wake?: () => void;
  #dirty = true;
  #synced = false;
  #lastWriteAt = -Infinity;
  /** When a write last changed the images themselves (not only their annotations). */
  #lastImagesWriteAt = -Infinity;
  #lastGeneration = 0;
  #lastPublish?: number;
  #publishes = 0;

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#clock = options.clock ?? realClock;
    this.#reflector = watchPublishedSet(this.#shards, {
      ...options,
      onChange: () => this.#poke(),
    });
  }

  /** Current status. */
  status(): PublisherStatus {
    const view = viewShards(this.#shards.values());
    return {
      generation: view.complete?.generation,
      lastPublish: this.#lastPublish,
      images: view.complete?.images.length ?? 0,
      shards: view.complete?.shards.length ?? 0,
      publishes: this.#publishes,
      synced: this.#synced,
    };
  }

  /** Marks the set for a check: the desired images or the leadership changed. */
  #poke(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  /** Asks for a check at once (for example when this replica became leader). */
  poke(): void {
    this.#poke();
  }

  /** Runs until `signal` aborts. Never rejects on API errors: it retries with backoff. */
  async run(signal: AbortSignal): Promise<void> {
    const unsubscribe = this.#o.desired.subscribe(() => this.#poke());
    const watching = this.#reflector.run(signal);
    try {
      await Promise.race([
        Promise.all([this.#o.sourcesSynced, this.#reflector.synced]),
        untilAborted(signal),
      ]);
      this.#synced = !signal.aborted;
      let failures = 0;
      while (!signal.aborted) {
        if (!this.#dirty) await this.#idle(signal);
        if (signal.aborted) break;
        this.#dirty = false;
        if (!this.#o.isLeader()) continue;
        const plan = this.#plan();
        // Debounce: at most one write per interval; changes meanwhile gather.
        const wait = this.#dueAt(plan.change) - this.#clock.now();
        if (wait > 0) {
          this.#dirty = true;
          // A change of the images can come while an annotation-only change
          // waits out its longer interval: look again at each poke.
          const woken = plan.change === "annotations"
            ? await this.#sleepUnlessPoked(wait, signal)
            : await this.#sleep(wait, signal);
          if (!woken) break;
          continue;
        }
        try {
          await this.#reconcile(plan);
          failures = 0;
        } catch (error) {
          // Why retry: the set stays as it was (a new generation counts only
          // when complete), so trying again later is always safe.
          this.#dirty = true;
          const delay = backoffDelay(++failures, {
            baseMs: this.#o.backoffBaseMs ?? 1000,
            maxMs: this.#o.backoffMaxMs ?? 30_000,
          });
          this.#o.log.warn("Cannot publish the desired images, retrying", {
            error: apiMessage(error),
            status: apiStatus(error),
            retryInMs: delay,
          });
          if (!await this.#sleep(delay, signal)) break;
        }
      }
    } finally {
      unsubscribe();
      await watching;
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    return sleepUnlessAborted(this.#clock, ms, signal);
  }

  /** When a write of `change` may go out. */
  #dueAt(change: Plan["change"]): number {
    const interval = this.#o.minIntervalMs ?? 1000;
    if (change === "images") return this.#lastImagesWriteAt + interval;
    if (change === "annotations") {
      return this.#lastWriteAt + (this.#o.annotationIntervalMs ?? 5 * interval);
    }
    return -Infinity;
  }

  /** Sleeps `ms`, or less if poked; false once `signal` aborted. */
  async #sleepUnlessPoked(ms: number, signal: AbortSignal): Promise<boolean> {
    const stop = new AbortController();
    await Promise.race([
      new Promise<void>((resolve) => this.#wake = resolve),
      this.#clock.sleep(ms, AbortSignal.any([signal, stop.signal])).catch(() => {}),
    ]);
    stop.abort();
    this.#wake = undefined;
    return !signal.aborted;
  }

  /** Waits for a poke, or the resync period (a level-triggered backstop). */
  async #idle(signal: AbortSignal): Promise<void> {
    await this.#sleepUnlessPoked(this.#o.resyncMs ?? 60_000, signal);
    // Poked (which marks it) or the resync period ended: look again either way.
    this.#dirty = true;
  }

  /** The desired images as they would be published, and how they differ from the published set. */
  #plan(): Plan {
    const { desired } = this.#o;
    const view = viewShards(this.#shards.values());
    const current = view.complete;
    let images = desired.refs().map((ref) => {
      const image = publishedImageOf(ref);
      const marked = desired.trusted?.(ref) ? { ...image, trusted: true } : image;
      return this.#o.annotate?.(marked) ?? marked;
    });
    const held = this.#o.holdRemovals?.();
    if (held !== undefined && current !== undefined) {
      const refs = new Set(images.map((i) => i.ref));
      // Without the ledger's data: the ledger no longer follows these tags,
      // so nodes must resync them themselves rather than trust a digest
      // nobody updates.
      const kept = current.images.filter((i) => !refs.has(i.ref))
        .map(({ canary: _c, ledgerDigest: _d, ...image }) => image);
      if (kept.length > 0) {
        images = [...images, ...kept];
        if (this.#heldBecause !== held) {
          this.#o.log.warn(
            "Keeping published images no longer desired while a source is unreadable",
            {
              images: kept.length,
              examples: kept.slice(0, 5).map((i) => i.ref),
              because: held,
            },
          );
        }
      }
    }
    this.#heldBecause = held;
    images = sortImages(images);
    const digest = setDigest(images);
    const change = current?.digest === digest
      ? "none"
      : current !== undefined && imagesDigest(current.images) === imagesDigest(images)
      ? "annotations"
      : "images";
    return { images, digest, view, change };
  }

  /** Makes the published set equal the desired one (as planned), if it is not. */
  async #reconcile(plan: Plan): Promise<void> {
    const { namespace, log } = this.#o;
    const { images, digest, view } = plan;
    let current = view.complete;
    if (plan.change !== "none") {
      // A generation above any seen, including one half written by an
      // earlier leader, so readers never mistake old shards for new ones.
      const generation = Math.max(view.maxGeneration, this.#lastGeneration) + 1;
      if (generation > MAX_GENERATION) {
        throw new Error(
          `generation ${generation} would be past the highest a node reads (${MAX_GENERATION}): ` +
            `delete the ConfigMaps labelled ${PUBLISHED_SET_SELECTOR} in ${namespace} to start over`,
        );
      }
      const shards = encodeShards(images, { namespace, generation });
      for (const body of shards) {
        if (!this.#o.isLeader()) return;
        let created;
        try {
          created = await this.#api.createNamespacedConfigMap({ namespace, body });
        } catch (error) {
          // The name is taken (by a ConfigMap this publisher does not watch,
          // or a write it has not yet seen): go past this generation.
          if (apiStatus(error) === 409) this.#lastGeneration = generation;
          throw error;
        }
        const shard = readShard(created);
        this.#shards.set(`${namespace}/${created.metadata!.name}`, shard);
        if (shard.error !== undefined) {
          throw new Error(`shard ${shard.name} reads back unusable: ${shard.error}`);
        }
      }
      this.#lastGeneration = generation;
      this.#lastWriteAt = this.#clock.now();
      if (plan.change === "images") this.#lastImagesWriteAt = this.#lastWriteAt;
      this.#lastPublish = this.#lastWriteAt;
      this.#publishes++;
      log.info("Published the desired images", {
        generation,
        images: images.length,
        shards: shards.length,
        previous: current?.generation,
        change: plan.change,
      });
      current = viewShards(this.#shards.values()).complete;
      if (current?.generation !== generation) {
        // Not what nodes now see (another writer's newer set, or a relist
        // that has not yet shown every shard just written): remove nothing,
        // and look again.
        this.#dirty = true;
        log.warn("The published set is not the generation just written; not cleaning up", {
          generation,
          complete: current?.generation,
        });
        return;
      }
    } else {
      this.#lastGeneration = Math.max(this.#lastGeneration, current!.generation);
    }
    // Only now that the current generation is complete: remove the others,
    // and only this publisher's own shards (by their names).
    if (current?.digest !== digest) return;
    const keep = new Set(current.shards);
    for (const [key, shard] of [...this.#shards]) {
      if (keep.has(shard.name) || !isShardName(shard.name)) continue;
      if (!this.#o.isLeader()) return;
      try {
        await this.#api.deleteNamespacedConfigMap({ namespace, name: shard.name });
      } catch (error) {
        if (apiStatus(error) !== 404) throw error;
      }
      this.#shards.delete(key);
    }
  }
}

/** What the publisher is about to write, and what kind of change it is. */
interface Plan {
  readonly images: readonly PublishedImage[];
  readonly digest: string;
  readonly view: SetView;
  /** `images`: references or their trust changed; `annotations`: only the ledger's canary/digest. */
  readonly change: "none" | "images" | "annotations";
}

/** The digest of a set without what the tag ledger adds to its images. Pure. */
function imagesDigest(images: readonly PublishedImage[]): string {
  return setDigest(images.map(({ canary: _c, ledgerDigest: _d, ...image }) => image));
}
