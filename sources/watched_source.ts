/**
 * The machinery every API-backed source shares: a list+watch per scope, a
 * pure extraction per object, and level-triggered reporting to the sink.
 *
 * @module
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { type Rejection, truncateEcho } from "../images/desired_images.ts";
import type { EventSink } from "../kube/events.ts";
import type { Collection } from "../kube/listers.ts";
import { Reflector, type ReflectorHandler, type WatchStatus } from "../kube/reflector.ts";
import { type Entry, entryOf, MAX_EVENT_MESSAGE } from "./object_entry.ts";
import { EXTRACTORS, isExtractorName } from "./extractors.ts";
import type { ListParser } from "./list_parser.ts";
import type { ImageSink, Source } from "./source.ts";

/** Options for {@linkcode WatchedSource}. */
export interface WatchedSourceOptions {
  /** Source name and origin prefix: `configmap`, `workflowtemplate`, … */
  name: string;
  /** Kind and apiVersion of the watched objects, for Events. */
  kind: string;
  apiVersion: string;
  /** One collection per scope (all namespaces, or each named namespace). */
  collections: readonly Collection[];
  sink: ImageSink;
  log: Logger;
  events: EventSink;
  clock?: Clock;
  /**
   * The references an object asks for, as written. Pure. Throws a
   * `TypeError` when the object's image data cannot be read at all, and an
   * {@linkcode ObjectLimitError} when reading it would pass a limit.
   */
  extract(obj: KubernetesObject): Iterable<string>;
  /**
   * Parses listed objects off the main thread. Used only when `extract` is
   * this source's own ({@linkcode EXTRACTORS}), which the parser runs.
   */
  listParser?: ListParser;
  /** Longest wait between retries after errors. @default {30000} */
  backoffMaxMs?: number;
  /** First wait after an error. @default {500} */
  backoffBaseMs?: number;
  /** Longest wait while the API is missing or forbidden. @default {300000} */
  unavailableBackoffMaxMs?: number;
  /**
   * How long the API must answer 404 before the source concludes its objects
   * are gone and drops their images. @default {600000}
   */
  goneAfterMs?: number;
}

/** What every API-backed source is built from, besides what it watches. */
export type WatchedSourceDeps =
  & { kubeConfig: KubeConfig }
  & Pick<
    WatchedSourceOptions,
    | "sink"
    | "log"
    | "events"
    | "clock"
    | "backoffMaxMs"
    | "backoffBaseMs"
    | "unavailableBackoffMaxMs"
    | "goneAfterMs"
    | "listParser"
  >;

/** Rejected entries a log line shows (the Event shows fewer). */
const MAX_LOGGED_SAMPLES = 5;

/** One Event message for an object's rejections: the count, then reasons. */
export function eventMessage(samples: readonly Rejection[], count: number): string {
  const reasons = [...new Set(samples.map((r) => r.reason))].join("; ");
  const head = count === 1 ? "" : `${count} image references rejected: `;
  const more = count > samples.length ? ` (and ${count - samples.length} more)` : "";
  // Room for the "…(N chars)" note, so the whole stays within the limit.
  return truncateEcho(`${head}${reasons}${more}`, MAX_EVENT_MESSAGE - 24);
}

interface Reported {
  error?: string;
  rejections?: string;
}

/**
 * A source backed by watched API objects. Each object's whole image set is
 * recomputed on every event and after every relist, so nothing is patched
 * with deltas.
 */
export class WatchedSource implements Source {
  readonly name: string;
  readonly synced: Promise<void>;
  readonly #o: WatchedSourceOptions;
  readonly #reflectors: Reflector<Entry>[];
  /** Origins that currently have an error, so the count is exact. */
  readonly #errors = new Set<string>();
  /** What was last reported per origin, so each bad input is reported once. */
  readonly #reported = new Map<string, Reported>();
  /** Origins that currently contribute a good set. */
  readonly #good = new Set<string>();

  constructor(options: WatchedSourceOptions) {
    this.#o = options;
    this.name = options.name;
    this.#reflectors = options.collections.map((collection) =>
      new Reflector<Entry>({
        name: options.name,
        list: collection.list,
        watch: collection.watch,
        heartbeat: collection.heartbeat,
        handler: this.#handler(),
        log: options.log,
        clock: options.clock,
        backoffBaseMs: options.backoffBaseMs,
        backoffMaxMs: options.backoffMaxMs,
        unavailableBackoffMaxMs: options.unavailableBackoffMaxMs,
      })
    );
    this.synced = Promise.all(this.#reflectors.map((r) => r.synced)).then(() => {});
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.#reflectors.map((r) => r.run(signal)));
  }

  status(): WatchStatus {
    const statuses = this.#reflectors.map((r) => r.status());
    const reasons = statuses.map((s) => s.reason).filter((r): r is string => !!r);
    const activity = statuses.map((s) => s.lastActivity).filter((t): t is number =>
      t !== undefined
    );
    return {
      name: this.name,
      synced: statuses.every((s) => s.synced),
      available: statuses.every((s) => s.available),
      forbidden: statuses.some((s) => s.forbidden),
      reason: reasons.length ? [...new Set(reasons)].join("; ") : undefined,
      objects: this.#good.size,
      errors: this.#errors.size,
      restarts: statuses.reduce((n, s) => n + s.restarts, 0),
      lastActivity: activity.length === statuses.length && activity.length > 0
        ? Math.min(...activity)
        : undefined,
    };
  }

  #handler(): ReflectorHandler<Entry> {
    // Keys this scope owns, so a relist can drop objects deleted meanwhile.
    const owned = new Map<string, string>();
    const forget = (key: string) => {
      const origin = owned.get(key);
      if (origin === undefined) return;
      owned.delete(key);
      this.#o.sink.delete(origin);
      this.#good.delete(origin);
      this.#errors.delete(origin);
      this.#reported.delete(origin);
    };
    // When this scope's API started answering 404, if it does.
    let missingSince: number | undefined;
    const { listParser, name, kind, apiVersion, extract } = this.#o;
    const parsesOwn = listParser && isExtractorName(name) && EXTRACTORS[name] === extract;
    // Entries a list applied as it read them: its end does not apply them again.
    const listed = new WeakSet<Entry>();
    const upsert = (key: string, entry: Entry) => {
      owned.set(key, entry.origin);
      this.#apply(entry);
    };
    return {
      transform: (obj) => this.#transform(obj),
      listed: (key, entry) => {
        upsert(key, entry);
        listed.add(entry);
      },
      parseItems: parsesOwn
        ? (batch) => listParser.parse({ name, kind, apiVersion }, batch)
        : undefined,
      upsert,
      remove: forget,
      replace: (items) => {
        missingSince = undefined;
        // New state first, then what is gone: an image that moved from one
        // object to another never leaves the desired set on the way.
        for (const [key, entry] of items) if (!listed.has(entry)) upsert(key, entry);
        for (const key of [...owned.keys()]) if (!items.has(key)) forget(key);
      },
      unavailable: (status) => {
        // 403: the objects may well exist; keep what they asked for (nothing
        // lost). 404: a deleted CRD deletes its objects first, and their
        // DELETED events have already removed them; a 404 alone may be an
        // API server that does not serve the CRD's routes for a moment
        // (restart, upgrade). Only a lasting one means the objects are gone.
        if (status !== 404) return;
        const now = (this.#o.clock ?? realClock).now();
        missingSince ??= now;
        if (now - missingSince >= (this.#o.goneAfterMs ?? 600_000)) {
          for (const key of [...owned.keys()]) forget(key);
        }
      },
    };
  }

  #transform(obj: KubernetesObject): Entry {
    return entryOf(this.#o, obj, this.#o.extract);
  }

  /** Starts the record of what is reported for `origin`. */
  #startReported(origin: string): Reported {
    const reported: Reported = {};
    this.#reported.set(origin, reported);
    return reported;
  }

  #apply(entry: Entry): void {
    const { log, events, sink } = this.#o;
    // Kept only for origins with something reported: a relist of thousands
    // of good objects stores nothing here.
    let reported = this.#reported.get(entry.origin);
    if (entry.error !== undefined) {
      reported ??= this.#startReported(entry.origin);
      this.#errors.add(entry.origin);
      // Keep the last good set: an edit that breaks the list must not make
      // the nodes drop images that were fine a moment ago.
      if (reported.error !== entry.error) {
        reported.error = entry.error;
        log.error("Invalid image list", {
          source: this.name,
          origin: entry.origin,
          kept: this.#good.has(entry.origin) ? "last good set" : "nothing",
          error: entry.error,
          ...(entry.limit === undefined ? {} : { limit: entry.limit }),
        });
        events.emit(
          "Warning",
          entry.ref,
          entry.limit === undefined ? "InvalidImageList" : "ObjectLimitExceeded",
          entry.error,
        );
      }
      return;
    }
    this.#errors.delete(entry.origin);
    if (reported?.error !== undefined) {
      log.info("Image list valid again", { source: this.name, origin: entry.origin });
      reported.error = undefined;
    }
    const { accepted, rejected, rejectedCount } = sink.set(entry.origin, entry.images ?? []);
    if (accepted.size > 0 || rejected.length > 0) this.#good.add(entry.origin);
    else this.#good.delete(entry.origin);
    // The samples are few and short, and the count exact: the key stays small
    // however many entries an object gets wrong.
    // None rejected is "": what an origin never reported holds.
    const rejectionKey = rejectedCount === 0 ? "" : `${rejectedCount}\u0002` +
      rejected.map((r) => `${r.input}\u0000${r.reason}`).join("\u0001");
    if (rejectionKey !== (reported?.rejections ?? "")) {
      reported ??= this.#startReported(entry.origin);
      reported.rejections = rejectionKey;
      if (rejectedCount > 0) {
        // One line and one Event per object, however many entries are bad.
        log.warn("Rejected image references", {
          source: this.name,
          origin: entry.origin,
          count: rejectedCount,
          samples: rejected.slice(0, MAX_LOGGED_SAMPLES).map((r) => ({
            image: r.input,
            reason: r.reason,
          })),
        });
        events.emit(
          "Warning",
          entry.ref,
          "InvalidImageReference",
          eventMessage(rejected, rejectedCount),
        );
      }
    }
    log.debug("Object images", {
      source: this.name,
      origin: entry.origin,
      images: accepted.size,
      rejected: rejectedCount,
    });
  }
}
