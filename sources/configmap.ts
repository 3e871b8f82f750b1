/**
 * The ConfigMap source: labelled ConfigMaps that list images under `images`
 * (or the key named by the `image-cache-daemon/key` annotation).
 *
 * @module
 */
import { configMapCollection } from "../kube/listers.ts";
import { EXTRACTORS } from "./extractors.ts";
import { WatchedSource, type WatchedSourceDeps } from "./watched_source.ts";

/** Options for {@linkcode newConfigMapSource}. */
export interface ConfigMapSourceOptions extends WatchedSourceDeps {
  /** `--configmap-selector`. */
  labelSelector: string;
  /** `--configmap-namespaces`; empty means all namespaces. */
  namespaces?: readonly string[];
}

/**
 * Watches ConfigMaps matching the selector, cluster-wide or in the named
 * namespaces (where RBAC forbids a cluster-wide list).
 */
export function newConfigMapSource(options: ConfigMapSourceOptions): WatchedSource {
  const scopes = options.namespaces?.length ? options.namespaces : [undefined];
  return new WatchedSource({
    ...options,
    name: "configmap",
    kind: "ConfigMap",
    apiVersion: "v1",
    collections: scopes.map((namespace) =>
      configMapCollection(options.kubeConfig, {
        labelSelector: options.labelSelector,
        namespace,
      })
    ),
    extract: EXTRACTORS.configmap,
  });
}
