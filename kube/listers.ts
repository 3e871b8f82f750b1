/**
 * Listers for the collections the daemon watches, each paired with the API
 * path its watch uses. Every page is read item by item as it arrives
 * ({@linkcode streamList}), through client-node's transport.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Lister } from "./reflector.ts";
import { type ListQuery, streamList } from "./stream_list.ts";

/** A lister and the matching watch path. */
export interface Collection {
  readonly list: Lister;
  readonly watchPath: string;
}

/** The collection at `path`, listed with `selectors` on every page. */
function collection(
  kc: KubeConfig,
  path: string,
  selectors: Pick<ListQuery, "labelSelector" | "fieldSelector"> = {},
): Collection {
  return {
    watchPath: path,
    list: (options, onItem) => streamList(kc, path, { ...selectors, ...options }, onItem),
  };
}

/** ConfigMaps matching `labelSelector`, in one namespace or all. */
export function configMapCollection(
  kc: KubeConfig,
  options: { labelSelector: string; namespace?: string },
): Collection {
  const { labelSelector, namespace } = options;
  const path = namespace
    ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`
    : "/api/v1/configmaps";
  return collection(kc, path, { labelSelector });
}

/** A custom resource listed across all namespaces (or cluster-scoped). */
export function customObjectCollection(
  kc: KubeConfig,
  options: { group: string; version: string; plural: string },
): Collection {
  const { group, version, plural } = options;
  const e = encodeURIComponent;
  return collection(kc, `/apis/${e(group)}/${e(version)}/${e(plural)}`);
}

/** Pods in one namespace matching label and field selectors. */
export function podCollection(
  kc: KubeConfig,
  options: { namespace: string; labelSelector?: string; fieldSelector?: string },
): Collection {
  const { namespace, labelSelector, fieldSelector } = options;
  return collection(kc, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, {
    labelSelector,
    fieldSelector,
  });
}

/** One node, by name (`fieldSelector=metadata.name=<node>`): never the whole node list. */
export function nodeCollection(kc: KubeConfig, options: { name: string }): Collection {
  return collection(kc, "/api/v1/nodes", { fieldSelector: `metadata.name=${options.name}` });
}
