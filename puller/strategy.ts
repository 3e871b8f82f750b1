/**
 * The PullStrategy interface: how one image is made present on this node.
 * The warden pod is the default; the CRI socket is the opt-in alternative.
 *
 * @module
 */
import type { WatchStatus } from "../kube/reflector.ts";

/** Options for one pull attempt. */
export interface PullOptions {
  /** Aborts the attempt: the image left the desired set, the timeout fired, or shutdown. */
  readonly signal: AbortSignal;
  /**
   * True when this attempt refreshes an image pulled before (resync): a tag
   * must be pulled again even if present, since tags move.
   */
  readonly refresh: boolean;
  /**
   * True when an origin the operator trusts asks for the image (see
   * `DesiredImages.trusted`). Only then may the strategy use the operator's
   * registry credentials: a tenant's object must never make a node pull a
   * private image with them. @default {false}
   */
  readonly trusted?: boolean;
  /**
   * For a tag under the aggregator's tag ledger, on a node other than its
   * canary: the digest the canary found this period. A strategy that can
   * read the runtime's images (CRI `ImageStatus`) returns a skipped result
   * when the tag there already has this digest, asking no registry.
   */
  readonly ledgerDigest?: string;
}

/** What a successful pull reports. */
export interface PullResult {
  /** The resolved image digest (`sha256:…`) or image ID, when the runtime reports one. */
  readonly digest?: string;
  /** True when nothing was pulled because the image was already present. */
  readonly skipped?: boolean;
}

/**
 * Makes one image present on this node.
 *
 * `pull` resolves on success and throws a {@linkcode PullError} on failure;
 * it never retries by itself (the puller's worker loop is the one place that
 * decides retries).
 */
export interface PullStrategy {
  /** `pod` or `cri`. */
  readonly name: string;
  /**
   * Prepares the strategy, e.g. removes pull pods an earlier instance left on
   * this node. Called once before the first pull.
   */
  start?(signal: AbortSignal): Promise<void>;
  /** Pulls `ref` (a normalised reference). */
  pull(ref: string, options: PullOptions): Promise<PullResult>;
  /** The watches the strategy keeps (the warden strategy's pull pods), for health and status. */
  readonly watches?: readonly { status(): WatchStatus }[];
  /** Releases what the strategy holds (watches, connections). */
  close?(): Promise<void>;
}
