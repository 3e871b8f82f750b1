/**
 * The key a reflector files an object under. Its own module, free of the
 * Kubernetes client, so the list parser worker (sources/list_parser.ts) keys
 * what it parses exactly as the reflector keys what it lists and watches.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";

/** The key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const m = obj.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : `${m.name}`;
}
