/**
 * The contract every image source follows (see DESIGN.md): it owns one watch,
 * computes each watched object's whole image set with a pure function, and
 * reports `origin → refs` to an {@linkcode ImageSink}.
 *
 * @module
 */
import type { SetOptions, SetResult } from "../images/desired_images.ts";
import type { WatchStatus } from "../kube/reflector.ts";

/** Where a source reports image sets; {@linkcode DesiredImages} implements it. */
export interface ImageSink {
  /** Replaces the whole set of references of `origin`. */
  set(origin: string, refs: Iterable<unknown>, options?: SetOptions): SetResult;
  /** Removes `origin` and its references. */
  delete(origin: string): void;
}

/** An image source. */
export interface Source {
  /** Name, such as `configmap` or `argo-workflowtemplate`. */
  readonly name: string;
  /** Resolves once the source has synced for the first time. */
  readonly synced: Promise<void>;
  /**
   * Runs until `signal` aborts. Never rejects on API errors: it reports
   * them in {@linkcode status} and retries.
   */
  run(signal: AbortSignal): Promise<void>;
  /** Current status. */
  status(): WatchStatus;
}

/** Builds the origin key of an object: `source/namespace/name` or `source/name`. */
export function originOf(
  source: string,
  meta: { readonly namespace?: string; readonly name?: string },
): string {
  return meta.namespace ? `${source}/${meta.namespace}/${meta.name}` : `${source}/${meta.name}`;
}
