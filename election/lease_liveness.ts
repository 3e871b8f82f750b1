/**
 * Whether an aggregator is alive, as a node daemon can tell: the aggregator
 * leader renews its Lease every retry period, so a Lease renewed within the
 * last minute means the published tag ledger is being kept.
 *
 * Why a node needs it: a node skips its resync of a tag when it holds the
 * digest the ledger says the tag's canary found. With no aggregator running,
 * nobody publishes a moved tag's new digest, and that skip would keep the old
 * content on every node but the canary for the whole outage. So the ledger
 * counts only while this says the aggregator is alive; otherwise a node
 * resyncs its tags itself, as with `--role=all`.
 *
 * Cheap by design: one GET of one Lease at most once per check interval, and
 * only when asked ({@linkcode LeaseLiveness.alive} is called when a node is
 * about to rely on the ledger), not a watch of a Lease renewed every 2 s by
 * every node.
 *
 * @module
 */
import { CoordinationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus, withTimeout } from "../kube/client.ts";
import { recordOf } from "./leader_elector.ts";

/** A Lease renewed longer ago than this (on this node's clock) has no live holder. */
export const LEASE_STALE_AFTER_MS = 60_000;

/** Least time between two reads of the Lease. */
export const LEASE_CHECK_EVERY_MS = 60_000;

/** Longest a read of the Lease may take. */
export const LEASE_READ_TIMEOUT_MS = 10_000;

/** Options for {@linkcode LeaseLiveness}. */
export interface LeaseLivenessOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The aggregator's Lease (`--leader-elect-lease-name`). */
  name: string;
  log: Logger;
  clock?: Clock;
  /** @default {LEASE_STALE_AFTER_MS} */
  staleAfterMs?: number;
  /** @default {LEASE_CHECK_EVERY_MS} */
  checkEveryMs?: number;
  /** @default {LEASE_READ_TIMEOUT_MS} */
  readTimeoutMs?: number;
}

/** What {@linkcode LeaseLiveness.status} reports. */
export interface LeaseLivenessStatus {
  /** Undefined until the Lease was first read. */
  readonly alive?: boolean;
  /** Why not, in one sentence. */
  readonly reason?: string;
  /** When (clock ms) the Lease was last read. */
  readonly checkedAt?: number;
}

/** The liveness of the aggregator's Lease, read lazily and cached. */
export class LeaseLiveness {
  readonly #o: LeaseLivenessOptions;
  readonly #api: CoordinationV1Api;
  readonly #clock: Clock;
  #alive?: boolean;
  #reason?: string;
  #checkedAt?: number;
  #checking?: Promise<void>;

  constructor(options: LeaseLivenessOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#clock = options.clock ?? realClock;
  }

  /**
   * The last verdict: false until the Lease has been read once and found
   * renewed within the stale bound. Starts a read (in the background) when the
   * last one is older than the check interval.
   */
  alive(): boolean {
    const due = this.#checkedAt === undefined ||
      this.#clock.now() - this.#checkedAt >= (this.#o.checkEveryMs ?? LEASE_CHECK_EVERY_MS);
    if (due) void this.check();
    return this.#alive === true;
  }

  /** Where it stands. */
  status(): LeaseLivenessStatus {
    return { alive: this.#alive, reason: this.#reason, checkedAt: this.#checkedAt };
  }

  /** Reads the Lease now (one read at a time); never rejects. */
  check(): Promise<void> {
    this.#checking ??= this.#read().finally(() => this.#checking = undefined);
    return this.#checking;
  }

  async #read(): Promise<void> {
    const { namespace, name } = this.#o;
    let alive = false;
    let reason: string | undefined;
    try {
      // Bounded on its own: an unanswered read would otherwise pin the
      // verdict (one read at a time) for as long as it hangs.
      const lease = await withTimeout(
        this.#api.readNamespacedLease({ namespace, name }),
        this.#o.readTimeoutMs ?? LEASE_READ_TIMEOUT_MS,
        "lease read",
      );
      const renewed = Date.parse(recordOf(lease).renewTime ?? "");
      const age = this.#clock.now() - renewed;
      const staleAfter = this.#o.staleAfterMs ?? LEASE_STALE_AFTER_MS;
      alive = Number.isFinite(renewed) && age <= staleAfter;
      if (!alive) {
        reason = Number.isFinite(renewed)
          ? `Lease ${namespace}/${name} was last renewed ${
            Math.round(age / 1000)
          } s ago: no aggregator is running`
          : `Lease ${namespace}/${name} has no renewTime: no aggregator is running`;
      }
    } catch (error) {
      const status = apiStatus(error);
      reason = status === 404
        ? `Lease ${namespace}/${name} does not exist: no aggregator has run`
        : `Lease ${namespace}/${name} cannot be read: ${apiMessage(error)}`;
    }
    this.#checkedAt = this.#clock.now();
    const was = this.#alive;
    this.#alive = alive;
    this.#reason = reason;
    if (was === alive) return;
    if (alive) {
      if (was !== undefined) {
        this.#o.log.info("The aggregator is back; the tag ledger counts again");
      }
    } else {
      this.#o.log.warn(
        "The tag ledger does not count while no aggregator runs: tags are resynced here, as with --role=all",
        { reason },
      );
    }
  }
}
