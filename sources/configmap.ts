/**
 * The ConfigMap source: labelled ConfigMaps that list images under `images`
 * (or the key named by the `image-cache-daemon/key` annotation).
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log/logger.ts";
import type { EventSink } from "../kube/events.ts";
import { configMapCollection } from "../kube/listers.ts";
import { imagesFromConfigMap } from "./configmap_images.ts";
import type { ImageSink } from "./source.ts";
import { WatchedSource } from "./watched_source.ts";

/** Options for {@linkcode newConfigMapSource}. */
export interface ConfigMapSourceOptions {
  kubeConfig: KubeConfig;
  /** `--configmap-selector`. */
  labelSelector: string;
  /** `--configmap-namespaces`; empty means all namespaces. */
  namespaces?: readonly string[];
  sink: ImageSink;
  log: Logger;
  events: EventSink;
  clock?: Clock;
  backoffMaxMs?: number;
  backoffBaseMs?: number;
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
    extract: (obj) => imagesFromConfigMap(obj).images,
  });
}
