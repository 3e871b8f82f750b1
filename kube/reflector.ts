/**
 * A list+watch loop that keeps a caller's state level-triggered in step with
 * one Kubernetes collection, and heals from every watch failure.
 *
 * client-node's informer relists on 410 Gone but stops on an HTTP error or a
 * dropped connection; this loop owns its restarts: it relists after 410,
 * resumes from the last resourceVersion after a clean close, and backs off
 * (capped, with jitter, honouring Retry-After) after errors.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { type Clock, realClock } from "../time/clock.ts";
import { backoffDelay } from "../time/backoff.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus, RequestTimeoutError, retryAfterSeconds } from "./client.ts";
import { objectKey } from "./object_key.ts";

/** What one page of a list response says besides its items. */
export interface ListPage {
  readonly resourceVersion: string;
  readonly continueToken?: string;
}

/**
 * Lists one page of the collection, handing each object to `onItem` as it is
 * read (so the caller reduces it before the next is parsed), and returns the
 * page's metadata. Errors are client-node's (with `code`).
 */
export type Lister = (
  options: {
    limit: number;
    continueToken?: string;
    /**
     * `"0"`: any recent state, served from the API server's watch cache;
     * `""`: the latest state, read from etcd. Only on the first page.
     */
    resourceVersion?: string;
  },
  onItem: (obj: KubernetesObject) => void,
  /**
   * Called with the page's metadata as soon as it is known, if that is
   * before the page has ended (its continue token lets the next page be
   * asked for while this one streams). Optional for listers.
   */
  onMeta?: (page: ListPage) => void,
  /**
   * When given, a lister that reads JSON may hand over each object's UTF-8
   * bytes here (valid only during the call) instead of parsing them and
   * calling `onItem`: the handler parses them elsewhere (see
   * {@linkcode ReflectorHandler.parseItems}). A promise it returns asks the
   * lister to read no further until it settles: the parser is behind.
   * Optional for listers.
   */
  onItemBytes?: (bytes: Uint8Array) => void | Promise<void>,
) => Promise<ListPage>;

/** Listed objects' JSON, back to back, and the offset where each one ends. */
export interface ItemBatch {
  readonly bytes: Uint8Array;
  readonly ends: readonly number[];
}

/** An object of a watch event; an `ERROR` event carries a Status (`code`, `message`). */
export type WatchObject = KubernetesObject & { code?: number; message?: string };

/**
 * Opens one watch of the collection (its selectors are the watcher's own).
 * Calls `onEvent` per event and `done` once when the stream ends: with no
 * argument after a clean end, else with the error (client-node's, with
 * `code`). Resolves, once the request is under way, with a handle that ends
 * it: given a {@linkcode RequestTimeoutError} when the reflector ends it for
 * silence (its connection is likely dead), else nothing. Rejects when it
 * cannot be started.
 */
export type Watcher = (
  options: {
    /** Where to resume: the last resourceVersion seen. */
    resourceVersion: string;
    /** When the server ends the watch cleanly. */
    timeoutSeconds: number;
    allowWatchBookmarks: boolean;
  },
  onEvent: (type: string, obj: WatchObject) => void,
  done: (error?: unknown) => void,
) => Promise<{ abort(reason?: unknown): void }>;

/**
 * What a reflector keeps in step. The reflector calls `replace` with the
 * complete state after every (re)list, so a lost event or restart heals.
 */
export interface ReflectorHandler<T> {
  /** Projects a raw object to what the caller keeps (so raw objects are not retained). */
  transform(obj: KubernetesObject): T;
  /**
   * Parses a batch of listed objects' JSON and projects each as `transform`
   * would, keyed `namespace/name` (or `name`), off the main thread if it
   * can. When given, lists hand their items' bytes here in batches (see
   * {@linkcode Lister}).
   *
   * @throws {SyntaxError} when an item is not JSON.
   */
  parseItems?(batch: ItemBatch): Promise<Array<readonly [string, T]>>;
  /**
   * An object a list has read, before the list is complete: the handler may
   * apply it at once (a list of thousands of objects then costs nothing
   * more at its end). Objects a list does not read are dropped only by
   * {@linkcode replace}.
   */
  listed?(key: string, item: T): void;
  /**
   * The complete current state, keyed by `namespace/name` (or `name`): the
   * items `listed` has had, and objects missing from it are gone.
   */
  replace(items: ReadonlyMap<string, T>): void;
  /** An object was added or changed. */
  upsert(key: string, item: T): void;
  /**
   * An object was deleted. `last` projects its final state, as the delete
   * event carried it (for handlers that care how an object ended).
   */
  remove(key: string, last?: () => T): void;
  /**
   * The collection's API is missing (404) or forbidden (403). `status` says
   * which. A 404 means no objects exist; a 403 means they cannot be seen, so
   * callers must keep what they have.
   */
  unavailable?(status: number, message: string): void;
}

/**
 * The bookmark heartbeat an API server has shown: the longest gap between
 * bookmarks (or from a watch's start to its first) seen on its watches.
 * Shared by the reflectors of the collections it caches, so that a reflector
 * that has not yet seen a bookmark of its own since it started is held to
 * the server's.
 *
 * Why shared: kube-apiserver sends bookmarks from its watch cache on one
 * schedule for every cached resource, and a watch that dies unreported
 * before its reflector's first bookmark (an API server restarting within a
 * minute of the daemon's start) would otherwise wait out its whole
 * server-side timeout, five minutes or more, while its siblings reconnect
 * within seconds. Not for a resource the server does not cache (Events, by
 * default), which never gets a bookmark. Why the longest gap: the server
 * also sends one bookmark shortly before each watch's deadline, and that
 * short gap must not make a quiet watch look dead.
 */
export class ServerHeartbeat {
  #ms?: number;
  readonly #waiting = new Set<() => void>();

  /** The longest gap between bookmarks seen on any watch, if any. */
  get ms(): number | undefined {
    return this.#ms;
  }

  /**
   * Records a gap between bookmarks (or from a watch's start to its first);
   * the first one recorded calls the {@linkcode whenKnown} callbacks, at once.
   */
  observe(ms: number): void {
    const first = this.#ms === undefined;
    if (first || ms > this.#ms!) this.#ms = ms;
    if (!first) return;
    // One cancelled by an earlier one's call is not called.
    for (const known of [...this.#waiting]) if (this.#waiting.delete(known)) known();
  }

  /**
   * Calls `known` once, when the heartbeat first becomes known (never if it
   * is known already). Returns a function that cancels the call.
   */
  whenKnown(known: () => void): () => void {
    if (this.#ms === undefined) this.#waiting.add(known);
    return () => this.#waiting.delete(known);
  }
}

/** Options for {@linkcode Reflector}. */
export interface ReflectorOptions<T> {
  /** Name for logs, such as `configmap`. */
  name: string;
  /** Lists one page. */
  list: Lister;
  /** Opens a watch of the same collection (same selectors) as `list`. */
  watch: Watcher;
  /** The caller's state. */
  handler: ReflectorHandler<T>;
  /** Logger. */
  log: Logger;
  /** Clock for backoff and for the watchdog of silent watches. @default {realClock} */
  clock?: Clock;
  /** Objects per list page. @default {500} */
  pageSize?: number;
  /** First retry delay after an error. @default {500} */
  backoffBaseMs?: number;
  /** Longest retry delay after errors. @default {30000} */
  backoffMaxMs?: number;
  /**
   * Longest retry delay while the API is missing (404) or forbidden (403).
   * Longer than for errors: a cluster without Argo must not get a request
   * per node every 30 s forever. @default {300000}
   */
  unavailableBackoffMaxMs?: number;
  /**
   * Server-side watch timeout. The real default of client-go is 5–10 min,
   * randomised so that many watchers do not reconnect in step.
   * @default {random between 300 and 600}
   */
  watchTimeoutSeconds?: () => number;
  /** Randomness for jitter. @default {Math.random} */
  random?: () => number;
  /**
   * The shortest silence that ends a watch whose server sends bookmarks.
   * Positive. @default {5000}
   */
  minWatchIdleMs?: number;
  /**
   * The API server's heartbeat, shared with the reflectors of its other
   * cached collections (see {@linkcode ServerHeartbeat}). @default {one of this reflector's own}
   */
  heartbeat?: ServerHeartbeat;
}

/**
 * A point-in-time view of something that watches the API (a source, or the
 * daemon's own pull-pod and Node watches), for readiness, status and metrics.
 */
export interface WatchStatus {
  /** The watcher's name; for a source, also the first segment of its origins. */
  readonly name: string;
  /** True once the first full list has been applied (or the API is unavailable). */
  readonly synced: boolean;
  /** False while the API is missing or forbidden. */
  readonly available: boolean;
  /**
   * True from a 403 until a list succeeds again, whatever other errors come
   * between: the objects may be there, unseen (unlike a 404, an API that is
   * not installed).
   */
  readonly forbidden?: boolean;
  /** Why it is unavailable or degraded. */
  readonly reason?: string;
  /** Number of objects currently contributing. */
  readonly objects: number;
  /** Number of objects whose data is currently in error. */
  readonly errors: number;
  /** Times the watch was restarted after an error or expiry. */
  readonly restarts: number;
  /** Last time it heard from its API (list, event or bookmark), epoch ms. */
  readonly lastActivity?: number;
}

/** A point-in-time view of a reflector. */
export interface ReflectorStatus {
  readonly synced: boolean;
  readonly available: boolean;
  /** See {@linkcode WatchStatus.forbidden}. */
  readonly forbidden: boolean;
  readonly reason?: string;
  readonly restarts: number;
  readonly lastActivity?: number;
  readonly resourceVersion?: string;
}

/**
 * A batch of listed objects handed to the handler's parser at once, bytes:
 * large enough that a message to a worker costs little against parsing it
 * (about 30 WorkflowTemplates), small enough to keep the worker busy while
 * the page still arrives.
 */
const ITEM_BATCH_BYTES = 256 * 1024;

/**
 * Most bytes handed to the parser and not yet parsed: what a list may hold
 * beyond its results when the network outruns the parser.
 */
const MAX_ITEM_BYTES_IN_FLIGHT = 16 * 1024 * 1024;

class WatchExpired extends Error {}

/** A watch the server ended at once without a single event: back off, as for an error. */
class WatchClosedEarly extends Error {}

/** A watch shorter than this with no event counts as {@linkcode WatchClosedEarly}. */
const EARLY_CLOSE_MS = 1000;

/** The shortest silence that ends a watch whose server sends bookmarks. */
const MIN_IDLE_MS = 5_000;

/** Keeps a {@linkcode ReflectorHandler} in step with one collection. */
export class Reflector<T> {
  readonly #o: ReflectorOptions<T>;
  readonly #clock: Clock;
  readonly #random: () => number;
  #resourceVersion?: string;
  #synced = false;
  #available = true;
  #forbidden = false;
  #reason?: string;
  #restarts = 0;
  #lastActivity?: number;
  #failures = 0;
  /** The server's heartbeat, if it sends any: this reflector's gaps between BOOKMARKs and any sharer's. */
  readonly #heartbeat: ServerHeartbeat;
  /** Watchdog timeouts in a row with no BOOKMARK since; each doubles the next wait. */
  #silentTimeouts = 0;
  #resolveSynced!: () => void;
  /** Resolves after the first complete list (or when the API is found unavailable). */
  readonly synced: Promise<void>;

  constructor(options: ReflectorOptions<T>) {
    if (options.minWatchIdleMs !== undefined && !(options.minWatchIdleMs > 0)) {
      throw new RangeError(`minWatchIdleMs must be positive, got ${options.minWatchIdleMs}`);
    }
    this.#o = options;
    this.#heartbeat = options.heartbeat ?? new ServerHeartbeat();
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.synced = new Promise((resolve) => this.#resolveSynced = resolve);
  }

  /** Current status. */
  status(): ReflectorStatus {
    return {
      synced: this.#synced,
      available: this.#available,
      forbidden: this.#forbidden,
      reason: this.#reason,
      restarts: this.#restarts,
      lastActivity: this.#lastActivity,
      resourceVersion: this.#resourceVersion,
    };
  }

  /** Lists and watches until `signal` aborts. Never rejects on API errors. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, name } = this.#o;
    // The first list may come from the API server's watch cache ("0"), as
    // client-go does: a fleet of daemons starting at once must not each
    // read every object from etcd. After a 410 the relist must be current.
    let listFrom: "0" | "" | undefined = "0";
    while (!signal.aborted) {
      let unavailable = false;
      try {
        if (listFrom !== undefined) {
          await this.#list(signal, listFrom);
          listFrom = undefined;
          if (signal.aborted) break;
        }
        await this.#watch(signal);
        // A clean close (timeoutSeconds elapsed): resume from the last
        // resourceVersion without a relist, as client-go does.
        this.#failures = 0;
        continue;
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof WatchExpired) {
          // 410 Gone: our resourceVersion was compacted away. Relist at
          // once; the relist's replace() heals anything missed meanwhile.
          log.info("Watch expired, relisting", { source: name });
          this.#restarts++;
          listFrom = "";
          continue;
        }
        const status = apiStatus(error);
        const message = apiMessage(error);
        if (status === 404 || status === 403) {
          this.#markUnavailable(status, message);
          unavailable = true;
          listFrom ??= "0";
        } else {
          log.warn("Watch failed, retrying", { source: name, status, error: message });
          this.#reason = message;
        }
        this.#restarts++;
        // Why back off here: an API outage or a missing CRD must not become a
        // tight loop of requests against a struggling API server. Retry-After
        // is a floor, not a replacement: jitter keeps a fleet out of step.
        const backoff = this.#backoffDelay(++this.#failures, unavailable);
        const retryAfter = retryAfterSeconds(error);
        const delay = Math.max(backoff, (retryAfter ?? 0) * 1000 * (1 + 0.2 * this.#random()));
        try {
          await this.#clock.sleep(delay, signal);
        } catch {
          break;
        }
      }
    }
  }

  #backoffDelay(failures: number, unavailable: boolean): number {
    const maxMs = unavailable
      ? Math.max(this.#o.unavailableBackoffMaxMs ?? 300_000, this.#o.backoffMaxMs ?? 0)
      : this.#o.backoffMaxMs ?? 30_000;
    return backoffDelay(failures, {
      baseMs: this.#o.backoffBaseMs ?? 500,
      maxMs,
      random: this.#random,
    });
  }

  #markUnavailable(status: number, message: string): void {
    const hint = status === 404
      ? "API not found (is the CRD installed?)"
      : "Forbidden (check the RBAC rules)";
    const reason = `${hint}: ${message}`;
    // Say it once per cause: the list and the watch word the same 404 differently.
    if (this.#available || !this.#reason?.startsWith(hint)) {
      this.#o.log.warn("Source unavailable", { source: this.#o.name, status, reason });
    }
    this.#available = false;
    this.#forbidden = status === 403;
    this.#reason = reason;
    this.#o.handler.unavailable?.(status, message);
    this.#markSynced();
  }

  #markSynced(): void {
    if (!this.#synced) {
      this.#synced = true;
      this.#resolveSynced();
    }
  }

  async #list(signal: AbortSignal, from: "0" | ""): Promise<void> {
    const { handler, list } = this.#o;
    const items = new Map<string, T>();
    const file = (key: string, item: T) => {
      items.set(key, item);
      handler.listed?.(key, item);
    };
    const onItem = (obj: KubernetesObject) => file(objectKey(obj), handler.transform(obj));
    const batches = handler.parseItems && this.#itemBatcher(handler.parseItems, file);
    // Pipelined: the next page is asked for as soon as this one's continue
    // token is known (the API server sends a built-in type's metadata before
    // its items; a custom resource's after them, and then pages go one by
    // one), so the server encodes it while this one is read. At most two pages are
    // in flight; each is still read item by item. Order does not matter: a
    // continue token reads one snapshot, and items are keyed.
    const start = (continueToken: string | undefined) => {
      let early: (page: ListPage | undefined) => void = () => {};
      const meta = new Promise<ListPage | undefined>((resolve) => early = resolve);
      const done = list(
        {
          limit: this.#o.pageSize ?? 500,
          continueToken,
          // A continue token carries its own snapshot; both may not be sent.
          resourceVersion: continueToken ? undefined : from,
        },
        onItem,
        early,
        batches?.add,
      );
      done.then(early, () => early(undefined));
      return { meta, done };
    };
    let resourceVersion = "";
    let page = start(undefined);
    while (true) {
      if (signal.aborted) {
        page.done.catch(() => {});
        batches?.abandon();
        return;
      }
      const token = (await page.meta)?.continueToken;
      const next = token !== undefined && !signal.aborted ? start(token) : undefined;
      let finished: ListPage;
      try {
        finished = await page.done;
      } catch (error) {
        // The next page's answer no longer matters.
        next?.done.catch(() => {});
        batches?.abandon();
        throw error;
      }
      if (signal.aborted) {
        next?.done.catch(() => {});
        batches?.abandon();
        return;
      }
      resourceVersion = finished.resourceVersion;
      // A lister that reports no metadata early resolves `meta` with the
      // finished page, so its token has started the next page by now.
      if (next === undefined) break;
      page = next;
    }
    // Every page is read; what is still being parsed is waited for.
    if (batches) await batches.finish();
    if (signal.aborted) return;
    this.#resourceVersion = resourceVersion;
    this.#lastActivity = this.#clock.now();
    if (!this.#available) {
      this.#o.log.info("Source available again", { source: this.#o.name });
    }
    this.#available = true;
    this.#forbidden = false;
    this.#reason = undefined;
    this.#failures = 0;
    handler.replace(items);
    if (!this.#synced) {
      this.#o.log.info("Source synced", { source: this.#o.name, objects: items.size });
    }
    this.#markSynced();
  }

  /**
   * Collects a list's items into batches for `parse`, filing each batch's
   * results as they come. At most {@linkcode MAX_ITEM_BYTES_IN_FLIGHT} wait
   * for the parser at a time: past it, `add` returns a promise that settles
   * once the parser has caught up (the lister reads no further meanwhile).
   */
  #itemBatcher(
    parse: (batch: ItemBatch) => Promise<Array<readonly [string, T]>>,
    file: (key: string, item: T) => void,
  ) {
    let buffer = new Uint8Array(ITEM_BATCH_BYTES);
    let used = 0;
    let ends: number[] = [];
    let inFlight = 0;
    let relieve: (() => void) | undefined;
    let abandoned = false;
    const parsing: Promise<void>[] = [];
    const flush = () => {
      if (ends.length === 0) return;
      const bytes = used;
      inFlight += bytes;
      const done = parse({ bytes: buffer.subarray(0, used), ends }).then((entries) => {
        // An abandoned list's late results are not filed: the next list has them.
        if (abandoned) return;
        for (const [key, item] of entries) file(key, item);
      }).finally(() => {
        inFlight -= bytes;
        if (inFlight < MAX_ITEM_BYTES_IN_FLIGHT) {
          relieve?.();
          relieve = undefined;
        }
      });
      // Observed by finish(); a list abandoned before then drops it.
      done.catch(() => {});
      parsing.push(done);
      buffer = new Uint8Array(ITEM_BATCH_BYTES);
      used = 0;
      ends = [];
    };
    return {
      add: (bytes: Uint8Array): Promise<void> | undefined => {
        if (used + bytes.length > buffer.length) {
          flush();
          if (bytes.length > buffer.length) buffer = new Uint8Array(bytes.length);
        }
        buffer.set(bytes, used);
        used += bytes.length;
        ends.push(used);
        if (used >= ITEM_BATCH_BYTES * 3 / 4) flush();
        if (inFlight < MAX_ITEM_BYTES_IN_FLIGHT) return undefined;
        return new Promise<void>((resolve) => {
          const before = relieve;
          relieve = () => {
            before?.();
            resolve();
          };
        });
      },
      finish: async () => {
        flush();
        try {
          await Promise.all(parsing);
        } catch (error) {
          // The list fails as a whole; what else was parsing is dropped.
          abandoned = true;
          throw error;
        }
      },
      abandon: () => {
        abandoned = true;
        relieve?.();
        relieve = undefined;
      },
    };
  }

  #watch(signal: AbortSignal): Promise<void> {
    const { handler } = this.#o;
    const clock = this.#clock;
    const timeoutSeconds = this.#o.watchTimeoutSeconds?.() ??
      Math.round(300 + 300 * this.#random());
    /** The last BOOKMARK of this watch, or its start before the first. */
    let lastBeat = clock.now();
    let beaten = false;
    const opened = clock.now();
    let events = 0;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return resolve();
      let handle: { abort(reason?: unknown): void } | undefined;
      let settled = false;
      // Why a watchdog of our own: a connection that dies mid-stream (peer
      // reset, a proxy dropping it) is never reported on this runtime, and
      // aborting it does not end it either (client-node's undici under Deno
      // goes silent), so client-node's own idle timeout never calls back. Once
      // the server has shown a bookmark heartbeat, three missed beats mean a
      // dead watch; without bookmarks, only the server-side timeout ends it.
      //
      // Every event pushes the deadline on; one timer runs at a time, and
      // when it ends before the deadline it sleeps for the rest. Why not a
      // new timer per event: a node daemon's watches deliver several events
      // per pull, and each replaced timer cost an abort, a DOMException and
      // a promise, all garbage, while the pulls are what should run.
      let idle: AbortController | undefined;
      /** When the running timer ends. */
      let idleAt = Infinity;
      /** When the watch counts as silent, and what happens then. */
      let deadline = Infinity;
      let onSilent = () => {};
      const startTimer = () => {
        idle?.abort();
        const armed = new AbortController();
        idle = armed;
        idleAt = deadline;
        clock.sleep(Math.max(0, deadline - clock.now()), armed.signal).then(() => {
          if (armed.signal.aborted) return;
          idle = undefined;
          if (clock.now() >= deadline) onSilent();
          else startTimer();
        }, () => {});
      };
      const arm = (ms: number, fire: () => void) => {
        deadline = clock.now() + ms;
        onSilent = fire;
        // A timer that ends no later than the new deadline re-arms itself then.
        if (idle === undefined || idleAt > deadline) startTimer();
      };
      const minIdleMs = this.#o.minWatchIdleMs ?? MIN_IDLE_MS;
      /** How long a watch may stay silent while its server's heartbeat is unknown. */
      const unbeatenMs = (timeoutSeconds + 30) * 1000;
      /** When the watch last heard from its server: opened, or its last event. */
      let heard = clock.now();
      /** Cancels the wait for the server's heartbeat, while there is one. */
      let unwait: (() => void) | undefined;
      const check = () => {
        const beat = this.#heartbeat.ms;
        if (beat === undefined) {
          // No bookmark seen yet, on this or a sharer's watch: a watch
          // that stays silent past its own server-side timeout is dead
          // (client-node's idle timer aborts, and an abort does not end a
          // dead connection on this runtime). Once a sharer's watch shows
          // the server's heartbeat, the bound below applies to this one too.
          unwait ??= this.#heartbeat.whenKnown(() => {
            unwait = undefined;
            if (!settled) check();
          });
          arm(
            heard + unbeatenMs - clock.now(),
            () =>
              finish(new RequestTimeoutError(`Watch silent past its ${timeoutSeconds} s timeout`)),
          );
          return;
        }
        // Timeouts in a row without a bookmark between them widen the wait
        // (a server whose beat slowed down must not get reconnects forever);
        // the next bookmark resets it, so one dead connection costs nothing
        // later (widening for good made each fault wait 1.5x longer).
        // Never longer than without a heartbeat: one long gap (a stalled
        // event loop) must not leave every later dead watch hanging longer.
        const ms = Math.min(
          Math.max(minIdleMs, 3 * beat) * 2 ** Math.min(this.#silentTimeouts, 4),
          unbeatenMs,
        );
        arm(heard + ms - clock.now(), () => {
          this.#silentTimeouts++;
          const silent = clock.now() - heard;
          finish(
            new RequestTimeoutError(
              `Watch silent for ${silent} ms, not even a bookmark: reconnecting`,
            ),
          );
        });
      };
      const watchdog = () => {
        heard = clock.now();
        check();
      };
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        unwait?.();
        idle?.abort();
        signal.removeEventListener("abort", onAbort);
        // A silent watch's connection is dead: the watcher may renew its
        // connections (the next watch must not be sent on its dead siblings).
        handle?.abort(error instanceof RequestTimeoutError ? error : undefined);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = () => finish();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#o.watch(
        { resourceVersion: this.#resourceVersion ?? "", allowWatchBookmarks: true, timeoutSeconds },
        (type, obj) => {
          if (settled) return;
          events++;
          this.#lastActivity = clock.now();
          watchdog();
          // The watch delivers again: an earlier transient error is history.
          if (type !== "ERROR" && this.#available) this.#reason = undefined;
          if (type === "ERROR") {
            if (obj?.code === 410) finish(new WatchExpired(obj.message ?? "Expired"));
            else {
              finish(Object.assign(new Error(obj?.message ?? "Watch error"), {
                code: obj?.code,
              }));
            }
            return;
          }
          const rv = obj?.metadata?.resourceVersion;
          if (rv) this.#resourceVersion = rv;
          if (type === "BOOKMARK") {
            const now = clock.now();
            // From the start to the first bookmark is a gap only when nothing
            // better is known: a watch opened between two beats of a server's
            // schedule overstates it.
            if (beaten || this.#heartbeat.ms === undefined) this.#heartbeat.observe(now - lastBeat);
            beaten = true;
            this.#silentTimeouts = 0;
            lastBeat = now;
            watchdog();
            return;
          }
          const key = objectKey(obj);
          if (type === "DELETED") handler.remove(key, () => handler.transform(obj));
          else handler.upsert(key, handler.transform(obj));
        },
        (error?: unknown) => {
          if (apiStatus(error) === 410) {
            finish(new WatchExpired("Watch answered 410 Gone"));
          } else if (!error && events === 0 && clock.now() - opened < EARLY_CLOSE_MS) {
            // A proxy or a draining API server that closes every watch at
            // once would otherwise get a tight reconnect loop.
            finish(new WatchClosedEarly("Watch closed at once without any event"));
          } else {
            finish(error ?? undefined);
          }
        },
      ).then((h) => {
        handle = h;
        if (settled || signal.aborted) h.abort();
        else watchdog();
      }, finish);
    });
  }
}
