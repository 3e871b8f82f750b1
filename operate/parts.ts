/**
 * What the operations endpoints read from a running daemon, as structural
 * types: the real `DaemonParts` satisfies them, and tests pass small fakes.
 *
 * @module
 */
import type { Rejection } from "../images/desired_images.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { SourceStatus } from "../sources/source.ts";
import type { ElectionStatus } from "../election/leader_elector.ts";
import type { PublisherStatus } from "../publication/publisher.ts";
import type { PublishedSetStatus } from "../publication/published_set_source.ts";

/** The parts of a daemon that metrics, health and status observe. */
export interface ObservedParts {
  /** The dedupe map of desired images (`DesiredImages`). */
  readonly desired: {
    /** Number of distinct desired references. */
    readonly size: number;
    /** Every rejected reference with its origin and reason. */
    rejections(): readonly Rejection[];
    /** The origins that ask for a reference. */
    originsOf(ref: string): readonly string[];
  };
  /** The enabled sources. */
  readonly sources: readonly { status(): SourceStatus }[];
  /** The daemon's own watches (its pull pods, its Node), judged like sources for health. */
  readonly watches?: readonly { status(): SourceStatus }[];
  /** With `--role=aggregator`: the leader election. */
  readonly election?: { status(): ElectionStatus };
  /** With `--role=aggregator`: the writer of the published set. */
  readonly publisher?: { status(): PublisherStatus };
  /** With `--role=node`: the published set as this node sees it. */
  readonly publishedSet?: { publishedSet(): PublishedSetStatus };
  /** This node's puller (`NodePuller`); an aggregator has none. */
  readonly puller?: {
    /** Every tracked image. */
    status(): readonly ImageStatus[];
    /** Attempts started and not yet settled. */
    inFlight(): number;
  };
}

/** {@linkcode ObservedParts} plus the daemon's own readiness. */
export interface ServedParts extends ObservedParts {
  /** True once every source has synced and the puller runs (an aggregator: the sources synced). */
  ready(): boolean;
}
