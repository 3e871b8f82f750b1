/**
 * What the operations endpoints read from a running daemon, as structural
 * types: the real `DaemonParts` satisfies them, and tests pass small fakes.
 *
 * @module
 */
import type { Rejection } from "../images/desired_images.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { WatchStatus } from "../kube/reflector.ts";

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
  readonly sources: readonly { status(): WatchStatus }[];
  /** The daemon's own watches (its pull pods, its Node), judged like sources for health. */
  readonly watches?: readonly { status(): WatchStatus }[];
  /** This node's puller (`NodePuller`). */
  readonly puller: {
    /** Every tracked image. */
    status(): readonly ImageStatus[];
    /** Attempts started and not yet settled. */
    inFlight(): number;
  };
}

/** {@linkcode ObservedParts} plus the daemon's own readiness. */
export interface ServedParts extends ObservedParts {
  /** True once every source has synced and the puller runs. */
  ready(): boolean;
}
