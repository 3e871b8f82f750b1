/**
 * Leader election with a `coordination.k8s.io/v1` Lease, with client-go's
 * semantics: a candidate takes the Lease when its holder has not renewed it
 * for a lease duration as observed on the candidate's own clock; the leader
 * renews it every retry period and stops leading (and writing) when it could
 * not renew within the renew deadline, which is shorter than the lease
 * duration, so it has stopped before anyone else may take over.
 *
 * @module
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import {
  type Clock,
  monotonicClock,
  realClock,
  sleepUnlessAborted,
  waitAtMost,
} from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus, withTimeout } from "../kube/client.ts";
import {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  JITTER_FACTOR,
  validateElectionDurations,
} from "./durations.ts";

export {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  validateElectionDurations,
};

/** Options for {@linkcode LeaderElector}. */
export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the Lease (the aggregator's own). */
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate's identity, written as `holderIdentity`: the pod name. */
  identity: string;
  /** How long a Lease not renewed stays held. @default {15000} */
  leaseDurationMs?: number;
  /** How long a leader keeps trying to renew before it stops leading. @default {10000} */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew. @default {2000} */
  retryPeriodMs?: number;
  log: Logger;
  /**
   * Time source of every decision and wait, and of the times written in the
   * Lease. Without it, decisions use {@linkcode monotonicClock} (a step of the
   * wall clock must not stretch a leader's fence or cut a holder's lease
   * short) and the Lease's times the wall clock.
   */
  clock?: Clock;
  /** Randomness of the jitter of a candidate's retries. @default {Math.random} */
  random?: () => number;
  /**
   * Whether a leader gives the Lease up when its signal aborts (client-go's
   * ReleaseOnCancel), so a standby takes over at once. @default {true}
   */
  releaseOnCancel?: boolean;
}

/** A point-in-time view of the election, for status and metrics. */
export interface ElectionStatus {
  /** The Lease, `namespace/name`. */
  readonly lease: string;
  /** This candidate. */
  readonly identity: string;
  /** True while this candidate leads and may write. */
  readonly leader: boolean;
  /** The holder last seen in the Lease (empty: released). */
  readonly holder?: string;
  /** `leaseTransitions` last seen. */
  readonly transitions?: number;
  /** When this candidate last renewed (clock ms), while leading. */
  readonly lastRenew?: number;
  /** Attempts to acquire or renew that have settled, successful or not. */
  readonly attempts: number;
  /** True while a request to the API is in flight. */
  readonly requesting: boolean;
}

/** `metav1.MicroTime`: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}

/** A Lease's spec as the election reads it: times as MicroTime strings. */
export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

/** Reads a Lease's spec (times as strings, whatever client-node handed back). */
export function recordOf(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  // client-node hands MicroTimes back as they came (strings); a Date is accepted too.
  const time = (v: unknown) =>
    v === undefined || v === null
      ? undefined
      : v instanceof Date
      ? microTime(v.getTime())
      : String(v);
  return {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds,
    acquireTime: time(spec.acquireTime),
    renewTime: time(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

/** A record as the Lease's spec: client-node passes MicroTime strings through as written. */
function specOf(record: LeaseRecord): NonNullable<V1Lease["spec"]> {
  return {
    ...record,
    acquireTime: record.acquireTime as unknown as Date,
    renewTime: record.renewTime as unknown as Date,
  };
}

const sameRecord = (a: LeaseRecord | undefined, b: LeaseRecord) =>
  a !== undefined && a.holderIdentity === b.holderIdentity &&
  a.renewTime === b.renewTime && a.acquireTime === b.acquireTime &&
  a.leaseTransitions === b.leaseTransitions && a.leaseDurationSeconds === b.leaseDurationSeconds;

/**
 * Campaigns for one Lease until its signal aborts, leading whenever it holds
 * it. {@linkcode isLeader} is the write fence: it turns false the moment the
 * renew deadline since the last successful renewal passes, whatever the
 * renewal loop is waiting on.
 */
export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #api: CoordinationV1Api;
  readonly #clock: Clock;
  /** The wall clock, for the times written in the Lease. */
  readonly #wall: Clock;
  readonly #random: () => number;
  readonly #leaseMs: number;
  readonly #renewMs: number;
  readonly #retryMs: number;
  /** The Lease as last read or written (its resourceVersion for the next update). */
  #lease?: V1Lease;
  /** The record last seen, and when (on our clock) it last changed: client-go's observedTime. */
  #observed?: LeaseRecord;
  #observedAt = 0;
  #leading = false;
  /** Start time of the last successful acquire or renew request (clock ms). */
  #renewedAt = 0;
  #listeners = new Set<(leading: boolean) => void>();
  #attempts = 0;
  /** Requests to the API in flight. */
  #requesting = 0;
  /** The acquire or renew attempt in flight, which a release waits for. */
  #inflight?: Promise<boolean>;

  /** @throws {RangeError} when the durations break client-go's constraints. */
  constructor(options: LeaderElectorOptions) {
    this.#o = options;
    this.#leaseMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.#renewMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.#retryMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    validateElectionDurations(this.#leaseMs, this.#renewMs, this.#retryMs);
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#clock = options.clock ?? monotonicClock;
    this.#wall = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
  }

  /**
   * True while this candidate leads: it acquired or renewed the Lease less
   * than the renew deadline ago (measured from when that request started).
   * Writers check it before every write.
   */
  isLeader(): boolean {
    return this.#leading && this.#clock.now() < this.#renewedAt + this.#renewMs;
  }

  /** Calls `listener` whenever leadership starts (true) or ends (false). Returns the unsubscribe. */
  onChange(listener: (leading: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Current status. */
  status(): ElectionStatus {
    return {
      lease: `${this.#o.namespace}/${this.#o.name}`,
      identity: this.#o.identity,
      leader: this.isLeader(),
      holder: this.#observed?.holderIdentity,
      transitions: this.#observed?.leaseTransitions,
      lastRenew: this.#leading ? this.#renewedAt : undefined,
      attempts: this.#attempts,
      requesting: this.#requesting > 0,
    };
  }

  /**
   * Campaigns and leads until `signal` aborts; a lost leadership goes back to
   * campaigning (the caches stay warm). On abort a leader releases the Lease
   * so that a standby takes over at once. Never rejects on API errors.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    while (!signal.aborted) {
      // Campaign. While someone holds the Lease, look every retry period
      // (so its renewals are seen at most a retry period late, which bounds a
      // failover to a lease duration plus a retry period) and once more the
      // moment it would expire. Contending for a free Lease, jitter the
      // retries as client-go does, so candidates do not move in step.
      while (!signal.aborted && !(await this.#tryAcquireOrRenew())) {
        const held = (this.#observed?.holderIdentity ?? "") !== "";
        const expiresIn = this.#observedAt + this.#leaseMsOf(this.#observed) - this.#clock.now();
        const wait = held
          ? (expiresIn > 0 ? Math.min(this.#retryMs, expiresIn) : this.#retryMs)
          : this.#retryMs * (1 + JITTER_FACTOR * this.#random());
        if (!await this.#sleep(wait, signal)) break;
      }
      if (signal.aborted) {
        // An acquire that succeeded as the signal aborted: give it back.
        await this.#release();
        break;
      }
      this.#setLeading(true);
      log.info("Became leader", { lease: `${this.#o.namespace}/${this.#o.name}` });
      await this.#lead(signal);
      const released = signal.aborted && await this.#release();
      this.#setLeading(false);
      log.info(released ? "Released leadership" : "Stopped leading", {
        lease: `${this.#o.namespace}/${this.#o.name}`,
      });
    }
  }

  /** Renews every retry period until a renewal fails for the renew deadline, or `signal` aborts. */
  async #lead(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!await this.#sleep(this.#retryMs, signal)) return;
      // Keep trying until the deadline: a renewal that is slow or failing
      // must not outlive the leadership it would extend.
      while (!signal.aborted) {
        const deadline = this.#renewedAt + this.#renewMs;
        const left = deadline - this.#clock.now();
        if (left <= 0) {
          this.#o.log.warn("Could not renew the lease within the renew deadline; stopping", {
            lease: `${this.#o.namespace}/${this.#o.name}`,
            renewDeadlineMs: this.#renewMs,
          });
          return;
        }
        const stop = new AbortController();
        const outcome = await Promise.race([
          this.#tryAcquireOrRenew(),
          this.#clock.sleep(left, AbortSignal.any([signal, stop.signal])).then(
            () => "deadline" as const,
            () => "aborted" as const,
          ),
        ]);
        stop.abort();
        if (outcome === true) break;
        if (outcome === "aborted") return;
        // Another holder seen, or the Lease deleted: the fence dropped at once.
        if (this.#renewedAt === -Infinity) return;
        if (outcome === false && !await this.#sleep(this.#retryMs, signal)) return;
      }
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    return sleepUnlessAborted(this.#clock, ms, signal);
  }

  #setLeading(leading: boolean): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    for (const listener of this.#listeners) listener(leading);
  }

  /** One attempt: client-go's tryAcquireOrRenew. True when this candidate now holds the Lease. */
  #tryAcquireOrRenew(): Promise<boolean> {
    this.#requesting++;
    const attempt = this.#attempt().finally(() => {
      this.#requesting--;
      this.#attempts++;
      if (this.#inflight === attempt) this.#inflight = undefined;
    });
    this.#inflight = attempt;
    return attempt;
  }

  /**
   * How long the holder of `record` holds it unrenewed: the duration the
   * holder wrote (client-go's rule: replicas may run with other durations,
   * say during a rollout that changes them), or this candidate's own when the
   * Lease has none.
   */
  #leaseMsOf(record: LeaseRecord | undefined): number {
    const seconds = record?.leaseDurationSeconds;
    return seconds !== undefined && Number.isFinite(seconds) && seconds > 0
      ? seconds * 1000
      : this.#leaseMs;
  }

  /** Stops this candidate's writes at once: it has seen that it no longer holds the Lease. */
  #dropFence(why: string, fields: Record<string, unknown>): void {
    if (!this.#leading || this.#renewedAt === -Infinity) return;
    this.#renewedAt = -Infinity;
    this.#o.log.warn(why, { lease: `${this.#o.namespace}/${this.#o.name}`, ...fields });
  }

  async #attempt(): Promise<boolean> {
    // A leader renews from the Lease it wrote last, without a read; a
    // conflict means someone else wrote it: read and try again at once, as
    // client-go does, rather than lose a retry period of the renew deadline.
    const fast = this.#leading ? this.#lease : undefined;
    if (fast !== undefined) {
      const outcome = await this.#tryOnce(fast);
      if (outcome !== "conflict") return outcome;
    }
    return await this.#tryOnce(undefined) === true;
  }

  async #tryOnce(known: V1Lease | undefined): Promise<boolean | "conflict"> {
    const { namespace, name, identity, log } = this.#o;
    const started = this.#clock.now();
    const now = microTime(this.#wall.now());
    const durationSeconds = Math.ceil(this.#leaseMs / 1000);
    try {
      let lease = known;
      if (lease === undefined) {
        try {
          lease = await this.#bounded(this.#api.readNamespacedLease({ namespace, name }), "read");
        } catch (error) {
          if (apiStatus(error) !== 404) throw error;
          if (this.#leading) {
            // Deleted under a leader: whoever creates it next leads.
            this.#dropFence("The lease was deleted; stopping", {});
            return false;
          }
          const created = await this.#bounded(
            this.#api.createNamespacedLease({
              namespace,
              body: {
                metadata: { name, namespace },
                spec: specOf({
                  holderIdentity: identity,
                  leaseDurationSeconds: durationSeconds,
                  acquireTime: now,
                  renewTime: now,
                  leaseTransitions: 0,
                }),
              },
            }),
            "create",
          );
          this.#remember(created, started);
          this.#renewedAt = started;
          return true;
        }
      }
      const old = recordOf(lease);
      if (!sameRecord(this.#observed, old)) {
        this.#observed = old;
        // When the answer came (client-go's observedTime): a renewal that
        // landed while the read was on its way is no older than this.
        this.#observedAt = known === undefined ? this.#clock.now() : started;
      }
      const heldByOther = old.holderIdentity !== "" && old.holderIdentity !== identity;
      if (heldByOther && this.#leading) {
        this.#dropFence("Another holder has the lease; stopping", { holder: old.holderIdentity });
        return false;
      }
      if (heldByOther && this.#observedAt + this.#leaseMsOf(old) > this.#clock.now()) return false;
      const mine = old.holderIdentity === identity;
      const updated = await this.#replace(lease, {
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: mine ? old.acquireTime ?? now : now,
        renewTime: now,
        leaseTransitions: mine ? old.leaseTransitions : old.leaseTransitions + 1,
      }, "update");
      if (!mine) {
        log.info("Acquired the lease", {
          lease: `${namespace}/${name}`,
          previousHolder: old.holderIdentity || undefined,
          transitions: old.leaseTransitions + 1,
        });
      }
      this.#remember(updated, started);
      this.#renewedAt = started;
      return true;
    } catch (error) {
      // Why absorb: the loops retry every retry period; a leader that keeps
      // failing stops at the renew deadline.
      this.#lease = undefined;
      const status = apiStatus(error);
      if (status === 409 && known !== undefined) return "conflict";
      if (status === 404 && known !== undefined && this.#leading) {
        this.#dropFence("The lease was deleted; stopping", {});
        return false;
      }
      if (status !== 409) {
        log.warn("Lease request failed", {
          lease: `${namespace}/${name}`,
          status,
          error: apiMessage(error),
        });
      }
      return false;
    }
  }

  /** Writes `record` over `lease`: conditional on its resourceVersion, bounded. */
  #replace(lease: V1Lease, record: LeaseRecord, what: string): Promise<V1Lease> {
    const { namespace, name } = this.#o;
    return this.#bounded(
      this.#api.replaceNamespacedLease({
        namespace,
        name,
        body: { metadata: { ...lease.metadata, name, namespace }, spec: specOf(record) },
      }),
      what,
    );
  }

  /**
   * Bounds one request to the Lease by the renew deadline (client-go bounds
   * its renewals so too), shorter than the API client's own bounds (30 s for
   * a read): a hung read must not keep a standby from a Lease free for the
   * taking, nor hold a shutdown's release past the pod's grace period.
   */
  #bounded<T>(request: Promise<T>, what: string): Promise<T> {
    return withTimeout(request, this.#renewMs, `lease ${what}`);
  }

  #remember(lease: V1Lease, at: number): void {
    this.#lease = lease;
    this.#observed = recordOf(lease);
    this.#observedAt = at;
  }

  /**
   * Gives the Lease up (client-go's ReleaseOnCancel): empty holder, a
   * one-second duration. The fence drops first, so nothing this replica
   * writes after the release starts is written as the leader; a renewal in
   * flight is waited for (within the renew deadline), so the release is
   * written over it rather than refused for a stale resourceVersion.
   */
  async #release(): Promise<boolean> {
    if (this.#o.releaseOnCancel === false) return false;
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      await waitAtMost(this.#clock, this.#renewedAt + this.#renewMs - this.#clock.now(), inflight);
    }
    const holds = this.#clock.now() < this.#renewedAt + this.#renewMs &&
      this.#lease !== undefined && recordOf(this.#lease).holderIdentity === this.#o.identity;
    this.#renewedAt = -Infinity;
    const lease = this.#lease;
    if (!holds || lease === undefined) return false;
    const { namespace, name } = this.#o;
    const now = microTime(this.#wall.now());
    try {
      await this.#replace(lease, {
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: recordOf(lease).leaseTransitions,
      }, "release");
      return true;
    } catch (error) {
      // Why absorb: the standby takes over after the lease duration anyway.
      this.#o.log.warn("Could not release the lease", {
        lease: `${namespace}/${name}`,
        error: apiMessage(error),
      });
      return false;
    }
  }
}
