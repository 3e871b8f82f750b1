/**
 * What a watched source keeps of one object, computed from the object alone:
 * its origin, a reference for Events, and its images or its error. Pure, so
 * that it can run on the main thread (watch events) or in the list parser
 * worker (sources/list_parser.ts) with the same result.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { truncateEcho } from "../images/desired_images.ts";
import type { InvolvedObject } from "../kube/events.ts";
import { ObjectLimitError } from "./object_limit_error.ts";
import { originOf } from "./source.ts";

/**
 * Longest Event message, in characters. The API server keeps at most 1 KiB
 * of an Event's message; the count comes first so it always survives.
 */
export const MAX_EVENT_MESSAGE = 1_000;

/** What a source keeps of one object: its images or its error, never the object. */
export interface Entry {
  readonly origin: string;
  readonly ref: InvolvedObject;
  readonly images?: readonly string[];
  readonly error?: string;
  /** The limit's constant when the object was rejected for passing one. */
  readonly limit?: string;
}

/** Which source an entry belongs to, and the objects' kind when they omit it. */
export interface EntrySpec {
  /** Source name and origin prefix: `configmap`, `workflowtemplate`, … */
  readonly name: string;
  readonly kind: string;
  readonly apiVersion: string;
}

/**
 * The entry of `obj`: the references `extract` reads from it, or the error
 * it throws (an object past a limit is rejected whole, like one that cannot
 * be read). Never throws for the object's content.
 */
export function entryOf(
  spec: EntrySpec,
  obj: KubernetesObject,
  extract: (obj: KubernetesObject) => Iterable<string>,
): Entry {
  const meta = obj.metadata ?? {};
  const ref: InvolvedObject = {
    apiVersion: obj.apiVersion ?? spec.apiVersion,
    kind: obj.kind ?? spec.kind,
    name: meta.name ?? "",
    namespace: meta.namespace,
    uid: meta.uid,
    resourceVersion: meta.resourceVersion,
  };
  const origin = originOf(spec.name, meta);
  try {
    return { origin, ref, images: [...extract(obj)] };
  } catch (error) {
    // Why absorb: bad data in one object is reported and must never stop
    // the source or the daemon.
    const limit = error instanceof ObjectLimitError ? error.limit : undefined;
    return {
      origin,
      ref,
      error: truncateEcho((error as Error).message, MAX_EVENT_MESSAGE - 24),
      limit,
    };
  }
}
