/**
 * The extraction of each API-backed source, by source name: what the
 * sources run on watch events and what the list parser worker runs on listed
 * objects, so both read an object alike. Imports only the pure extraction
 * modules (no Kubernetes client), so the worker stays small.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { objectKey } from "../kube/object_key.ts";
import type { ItemBatch } from "../kube/reflector.ts";
import {
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowTemplate,
} from "./argo_images.ts";
import { imagesFromConfigMap } from "./configmap_images.ts";
import { type Entry, entryOf, type EntrySpec } from "./object_entry.ts";

/**
 * The references an object asks for, as written, by source name. Each throws
 * a `TypeError` when the object's image data cannot be read at all, and an
 * `ObjectLimitError` when reading it would pass a limit.
 */
export const EXTRACTORS = {
  configmap: (obj: KubernetesObject): Iterable<string> => imagesFromConfigMap(obj).images,
  workflowtemplate: imagesFromWorkflowTemplate,
  clusterworkflowtemplate: imagesFromClusterWorkflowTemplate,
  cronworkflow: imagesFromCronWorkflow,
} as const satisfies Record<string, (obj: KubernetesObject) => Iterable<string>>;

/** A source whose extraction is in {@linkcode EXTRACTORS}. */
export type ExtractorName = keyof typeof EXTRACTORS;

/** Whether `name` is a source in {@linkcode EXTRACTORS}. */
export function isExtractorName(name: string): name is ExtractorName {
  return Object.hasOwn(EXTRACTORS, name);
}

/**
 * Parses a batch of listed objects' JSON and reads each one's entry, keyed
 * as a reflector keys it. What the list parser worker runs; the same on the
 * main thread.
 *
 * @throws {SyntaxError} when an item is not JSON (the list is then read
 *   again, as for any malformed page).
 * @throws {TypeError} when `spec.name` has no extraction.
 */
export function parseEntries(spec: EntrySpec, batch: ItemBatch): Array<[string, Entry]> {
  if (!isExtractorName(spec.name)) {
    throw new TypeError(`No extraction for the source "${spec.name}"`);
  }
  const extract = EXTRACTORS[spec.name];
  // Not fatal: invalid UTF-8 becomes U+FFFD, as in `Response.text()`.
  const decoder = new TextDecoder();
  const entries: Array<[string, Entry]> = [];
  let start = 0;
  for (const end of batch.ends) {
    const obj = JSON.parse(decoder.decode(batch.bytes.subarray(start, end))) as KubernetesObject;
    start = end;
    entries.push([objectKey(obj), entryOf(spec, obj, extract)]);
  }
  return entries;
}
