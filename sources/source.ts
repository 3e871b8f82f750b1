/**
 * The contract every image source follows (see DESIGN.md): it owns one watch,
 * computes each watched object's whole image set with a pure function, and
 * reports `origin → refs` to an {@linkcode ImageSink}.
 *
 * @module
 */
import type { SetResult } from "../images/desired_images.ts";

/** Where a source reports image sets; {@linkcode DesiredImages} implements it. */
export interface ImageSink {
  /** Replaces the whole set of references of `origin`. */
  set(origin: string, refs: Iterable<string>): SetResult;
  /** Removes `origin` and its references. */
  delete(origin: string): void;
  /** The origins currently known, starting with `prefix`. */
  origins(prefix?: string): string[];
}

/** A point-in-time view of a source, for readiness, status and metrics. */
export interface SourceStatus {
  /** The source's name, also the first segment of its origins. */
  readonly name: string;
  /** True once the first full list has been applied (or the source is unavailable). */
  readonly synced: boolean;
  /** False while the source's API is missing or forbidden. */
  readonly available: boolean;
  /** Why the source is unavailable or degraded. */
  readonly reason?: string;
  /** Number of objects currently contributing. */
  readonly objects: number;
  /** Number of objects whose image data is currently in error. */
  readonly errors: number;
  /** Times the watch was restarted after an error or expiry. */
  readonly restarts: number;
  /** Last time the source heard from its API (list, event or bookmark), epoch ms. */
  readonly lastActivity?: number;
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
  status(): SourceStatus;
}

/** Builds the origin key of an object: `source/namespace/name` or `source/name`. */
export function originOf(
  source: string,
  meta: { readonly namespace?: string; readonly name?: string },
): string {
  return meta.namespace ? `${source}/${meta.namespace}/${meta.name}` : `${source}/${meta.name}`;
}
