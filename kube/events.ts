/**
 * Kubernetes Events, aggregated and rate-limited so that a bad object or a
 * failing image is reported without flooding the API server.
 *
 * @module
 */
import {
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { createHash } from "node:crypto";
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus } from "./client.ts";

/** The object an Event is about. */
export interface InvolvedObject {
  readonly apiVersion?: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
}

/**
 * The Event's name: the object's name and a hash of what is reported, so
 * every daemon that sees the same bad input names the same Event, and only
 * the first create succeeds. Names are DNS subdomains of at most 253 chars.
 */
export function eventName(
  type: EventType,
  obj: InvolvedObject,
  reason: string,
  message: string,
): string {
  const hash = createHash("sha256")
    .update(
      [type, obj.kind, obj.namespace ?? "", obj.name, obj.uid ?? "", reason, message].join(
        "\u0000",
      ),
    )
    .digest("hex")
    .slice(0, 16);
  const base = obj.name.toLowerCase().replace(/[^a-z0-9.-]/g, "-").replace(/^[^a-z0-9]+/, "")
    .slice(0, 253 - 17);
  return base ? `${base}.${hash}` : hash;
}

/** Event types. */
export type EventType = "Normal" | "Warning";

/** Emits Events. Implementations never throw. */
export interface EventSink {
  /** Records an Event about `obj`. Repeats of the same event are aggregated. */
  emit(type: EventType, obj: InvolvedObject, reason: string, message: string): void;
}

/** Options for {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** `source.component` of the Events. @default {"image-cache-daemon"} */
  component?: string;
  /** `source.host`: the node the daemon runs on. */
  host?: string;
  log: Logger;
  clock?: Clock;
  /** A repeat of the same Event within this window only counts, it is not sent. @default {300000} */
  aggregateWindowMs?: number;
  /** Most Events sent in a burst. @default {25} */
  burst?: number;
  /** Milliseconds to earn one more Event after a burst. @default {5000} */
  refillMs?: number;
  /** Distinct Events remembered for aggregation. @default {4096} */
  cacheSize?: number;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
  sentCount: number;
  lastSent: number;
}

/**
 * Sends Events through the API: the first occurrence is created; repeats are
 * counted and, at most once per aggregation window, the existing Event is
 * patched with the new count (as the kubelet's recorder does). A token
 * bucket bounds the total rate.
 */
export class EventRecorder implements EventSink {
  readonly #api: CoreV1Api;
  readonly #o: EventRecorderOptions;
  readonly #clock: Clock;
  readonly #seen = new Map<string, Seen>();
  readonly #pending = new Set<Promise<void>>();
  /** Most tokens held at once (`burst`). */
  readonly #burst: number;
  #tokens: number;
  #lastRefill: number;
  #dropped = 0;

  constructor(options: EventRecorderOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#clock = options.clock ?? realClock;
    this.#burst = options.burst ?? 25;
    this.#tokens = this.#burst;
    this.#lastRefill = this.#clock.now();
  }

  /** Events not sent because of the rate limit. */
  get dropped(): number {
    return this.#dropped;
  }

  emit(type: EventType, obj: InvolvedObject, reason: string, message: string): void {
    const now = this.#clock.now();
    const key = `${type}\u0000${
      obj.uid ?? `${obj.kind}/${obj.namespace}/${obj.name}`
    }\u0000${reason}\u0000${message}`;
    const seen = this.#seen.get(key);
    if (seen) {
      seen.count++;
      // Why only count: a repeat inside the window adds nothing an operator
      // needs at once; the next patch carries the total.
      if (now - seen.lastSent < (this.#o.aggregateWindowMs ?? 300_000)) return;
      if (!this.#takeToken(now)) return;
      seen.lastSent = now;
      this.#track(this.#patch(seen, now));
      return;
    }
    if (!this.#takeToken(now)) return;
    const namespace = obj.namespace || "default";
    const name = eventName(type, obj, reason, message);
    const entry: Seen = { name, namespace, count: 1, sentCount: 1, lastSent: now };
    this.#seen.set(key, entry);
    if (this.#seen.size > (this.#o.cacheSize ?? 4096)) {
      this.#seen.delete(this.#seen.keys().next().value!);
    }
    this.#track(this.#create(entry, type, obj, reason, message, now));
  }

  /** Waits for the Events in flight (for shutdown and tests). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #takeToken(now: number): boolean {
    const refillMs = this.#o.refillMs ?? 5000;
    const earned = Math.floor((now - this.#lastRefill) / refillMs);
    if (earned > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + earned);
      this.#lastRefill += earned * refillMs;
    }
    if (this.#tokens <= 0) {
      this.#dropped++;
      this.#o.log.debug("Event dropped by rate limit", { dropped: this.#dropped });
      return false;
    }
    this.#tokens--;
    return true;
  }

  #track(promise: Promise<void>): void {
    this.#pending.add(promise);
    promise.finally(() => this.#pending.delete(promise));
  }

  async #create(
    entry: Seen,
    type: EventType,
    obj: InvolvedObject,
    reason: string,
    message: string,
    now: number,
  ): Promise<void> {
    const time = new Date(now);
    const component = this.#o.component ?? "image-cache-daemon";
    const body: CoreV1Event = {
      metadata: { name: entry.name, namespace: entry.namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.name,
        namespace: obj.namespace,
        uid: obj.uid,
        resourceVersion: obj.resourceVersion,
      },
      reason,
      message: message.slice(0, 1024),
      type,
      count: 1,
      firstTimestamp: time,
      lastTimestamp: time,
      source: { component, host: this.#o.host },
      reportingComponent: component,
      reportingInstance: this.#o.host ?? "",
    };
    try {
      await this.#api.createNamespacedEvent({ namespace: entry.namespace, body });
    } catch (error) {
      // Another daemon (or the aggregator leader before this one) already
      // reported this very thing: one Event per bad input cluster-wide. It
      // made nothing new, so its token goes back: a new leader replaying what
      // it held as a standby (mostly Events the old leader sent) must not
      // spend the budget of the Events that are really new.
      if (apiStatus(error) === 409) {
        this.#tokens = Math.min(this.#burst, this.#tokens + 1);
        return;
      }
      // Why absorb: an Event is advice to operators; failing to send one
      // must never disturb pulling.
      this.#o.log.warn("Cannot create Event", {
        reason,
        object: `${obj.kind}/${obj.namespace ?? ""}/${obj.name}`,
        error: apiMessage(error),
      });
    }
  }

  async #patch(entry: Seen, now: number): Promise<void> {
    const count = entry.count;
    try {
      await this.#api.patchNamespacedEvent({
        name: entry.name,
        namespace: entry.namespace,
        body: { count, lastTimestamp: new Date(now).toISOString() },
      }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
      entry.sentCount = count;
    } catch (error) {
      this.#o.log.warn("Cannot update Event", { event: entry.name, error: apiMessage(error) });
    }
  }
}
