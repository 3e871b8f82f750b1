/**
 * What the operations endpoints read from a running daemon, as structural
 * types: the real `DaemonParts` satisfies them, and tests pass small fakes.
 *
 * @module
 */
import type { WarmUpStatus } from "../warm/warm_up.ts";
import type { Rejection, RejectionSummary } from "../images/desired_images.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { WatchStatus } from "../kube/reflector.ts";
import type { ElectionStatus } from "../election/leader_elector.ts";
import type { PublisherStatus } from "../publication/publisher.ts";
import type { PublishedSetStatus } from "../publication/published_set_source.ts";
import type { LedgerEntry } from "../ledger/tag_ledger.ts";

/** The parts of a daemon that metrics, health and status observe. */
export interface ObservedParts {
  /** The dedupe map of desired images (`DesiredImages`). */
  readonly desired: {
    /** Number of distinct desired references. */
    readonly size: number;
    /** Samples of rejected references with their origin and reason. */
    rejections(): readonly Rejection[];
    /** One summary per origin with rejections (exact count, a few samples). */
    rejectionSummaries?(): readonly RejectionSummary[];
    /** How many entries are rejected in all. */
    rejectedCount?(): number;
    /** References left out by the total cap: how many, and the first `limit`. */
    overCap?(limit?: number): { count: number; samples: string[] };
    /** Grows on every change; absent means "rebuild views on every read". */
    readonly version?: number;
    /** The origins that ask for a reference. */
    originsOf(ref: string): readonly string[];
  };
  /** The enabled sources. */
  readonly sources: readonly { status(): WatchStatus }[];
  /** The daemon's own watches (its pull pods, its Node), judged like sources for health. */
  readonly watches?: readonly { status(): WatchStatus }[];
  /** With `--role=aggregator`: the leader election. */
  readonly election?: { status(): ElectionStatus };
  /** With `--role=aggregator`: the writer of the published set. */
  readonly publisher?: { status(): PublisherStatus };
  /** With `--role=aggregator`: the tag ledger (per tag: canary, digest, last check). */
  readonly ledger?: { entries(): readonly LedgerEntry[] };
  /** With `--role=node`: the published set as this node sees it. */
  readonly publishedSet?: { publishedSet(): PublishedSetStatus };
  /** The node's warm-up (`ImagesPrePulled` condition, startup taint). */
  readonly warmUp?: { status(): WarmUpStatus };
  /** This node's puller (`NodePuller`); an aggregator has none. */
  readonly puller?: {
    /** Every tracked image. */
    status(): readonly ImageStatus[];
    /** Attempts started and not yet settled. */
    inFlight(): number;
    /** Grows whenever `status()` may change; absent means "rebuild views on every read". */
    readonly version?: number;
  };
}

/** {@linkcode ObservedParts} plus the daemon's own readiness. */
export interface ServedParts extends ObservedParts {
  /** True once every source has synced and the puller runs (an aggregator: the sources synced). */
  ready(): boolean;
  /** What the daemon waits for before it pulls, if anything (such as its Node). */
  waiting?(): string | undefined;
}
