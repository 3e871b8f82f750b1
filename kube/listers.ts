/**
 * Listers for the collections the daemon watches, through client-node's
 * typed APIs, each paired with the API path its watch uses.
 *
 * @module
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  Watch,
} from "@kubernetes/client-node";
import type { Lister, ListPage, Watcher } from "./reflector.ts";

/** A lister and the matching watcher: one collection, one set of selectors. */
export interface Collection {
  readonly list: Lister;
  readonly watch: Watcher;
}

/** A {@linkcode Watcher} of `path` through client-node's `Watch`. */
export function clientWatcher(
  kc: KubeConfig,
  path: string,
  selectors: { labelSelector?: string; fieldSelector?: string } = {},
): Watcher {
  return async (options, onEvent, done) => {
    const watch = new Watch(kc);
    // client-node aborts a watch after 30 s without data; the server may be
    // quiet for longer than that between bookmarks, so allow the whole
    // server-side timeout plus a margin.
    // The field is private in the typings but is the documented knob.
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs =
      (options.timeoutSeconds + 30) * 1000;
    const query: Record<string, string | number | boolean> = { ...options };
    if (selectors.labelSelector) query.labelSelector = selectors.labelSelector;
    if (selectors.fieldSelector) query.fieldSelector = selectors.fieldSelector;
    return await watch.watch(path, query, onEvent, done);
  };
}

interface RawList {
  items?: KubernetesObject[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

function page(list: RawList): ListPage {
  return {
    items: list.items ?? [],
    resourceVersion: list.metadata?.resourceVersion ?? "",
    continueToken: list.metadata?._continue ?? list.metadata?.continue,
  };
}

/** ConfigMaps matching `labelSelector`, in one namespace or all. */
export function configMapCollection(
  kc: KubeConfig,
  options: { labelSelector: string; namespace?: string },
): Collection {
  const api = kc.makeApiClient(CoreV1Api);
  const { labelSelector, namespace } = options;
  if (namespace) {
    return {
      watch: clientWatcher(
        kc,
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
        { labelSelector },
      ),
      list: async ({ limit, continueToken, resourceVersion }) =>
        page(
          await api.listNamespacedConfigMap({
            namespace,
            labelSelector,
            limit,
            _continue: continueToken,
            resourceVersion,
          }) as RawList,
        ),
    };
  }
  return {
    watch: clientWatcher(kc, "/api/v1/configmaps", { labelSelector }),
    list: async ({ limit, continueToken, resourceVersion }) =>
      page(
        await api.listConfigMapForAllNamespaces({
          labelSelector,
          limit,
          _continue: continueToken,
          resourceVersion,
        }) as RawList,
      ),
  };
}

/** A custom resource listed across all namespaces (or cluster-scoped). */
export function customObjectCollection(
  kc: KubeConfig,
  options: { group: string; version: string; plural: string },
): Collection {
  const api = kc.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = options;
  return {
    watch: clientWatcher(kc, `/apis/${group}/${version}/${plural}`),
    list: async ({ limit, continueToken, resourceVersion }) =>
      page(
        await api.listClusterCustomObject({
          group,
          version,
          plural,
          limit,
          _continue: continueToken,
          resourceVersion,
        }) as RawList,
      ),
  };
}

/** Pods in one namespace matching label and field selectors. */
export function podCollection(
  kc: KubeConfig,
  options: { namespace: string; labelSelector?: string; fieldSelector?: string },
): Collection {
  const api = kc.makeApiClient(CoreV1Api);
  const { namespace, labelSelector, fieldSelector } = options;
  return {
    watch: clientWatcher(kc, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, {
      labelSelector,
      fieldSelector,
    }),
    list: async ({ limit, continueToken, resourceVersion }) =>
      page(
        await api.listNamespacedPod({
          namespace,
          labelSelector,
          fieldSelector,
          limit,
          _continue: continueToken,
          resourceVersion,
        }) as RawList,
      ),
  };
}

/** One node, by name (`fieldSelector=metadata.name=<node>`): never the whole node list. */
export function nodeCollection(kc: KubeConfig, options: { name: string }): Collection {
  const api = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${options.name}`;
  return {
    watch: clientWatcher(kc, "/api/v1/nodes", { fieldSelector }),
    list: async ({ limit, continueToken, resourceVersion }) =>
      page(
        await api.listNode({
          fieldSelector,
          limit,
          _continue: continueToken,
          resourceVersion,
        }) as RawList,
      ),
  };
}
