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
} from "@kubernetes/client-node";
import type { Lister, ListPage } from "./reflector.ts";

/** A lister and the matching watch path. */
export interface Collection {
  readonly list: Lister;
  readonly watchPath: string;
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
      watchPath: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
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
    watchPath: "/api/v1/configmaps",
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
    watchPath: `/apis/${group}/${version}/${plural}`,
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
    watchPath: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
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
    watchPath: "/api/v1/nodes",
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
