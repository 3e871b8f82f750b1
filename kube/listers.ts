/**
 * Listers for the collections the daemon watches, each paired with the
 * watcher of the same collection and selectors. Every page is read item by
 * item as it arrives ({@linkcode streamList}), through client-node's
 * transport; watches go through client-node's `Watch`.
 *
 * @module
 */
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import { type Lister, ServerHeartbeat, type Watcher } from "./reflector.ts";
import {
  isConnectionFailure,
  renewConnections,
  renewingOnFailure,
  WATCH_START_TIMEOUT_MS,
  withTimeout,
} from "./client.ts";
import { type ListQuery, streamList } from "./stream_list.ts";

/** A lister and the matching watcher: one collection, one set of selectors. */
export interface Collection {
  readonly list: Lister;
  readonly watch: Watcher;
  /** The heartbeat of the API server it is on, shared with its other collections. */
  readonly heartbeat?: ServerHeartbeat;
}

const HEARTBEATS = new WeakMap<KubeConfig, ServerHeartbeat>();

/** The {@linkcode ServerHeartbeat} of `kc`'s API server, one per KubeConfig. */
function heartbeatOf(kc: KubeConfig): ServerHeartbeat {
  let heartbeat = HEARTBEATS.get(kc);
  if (heartbeat === undefined) {
    heartbeat = new ServerHeartbeat();
    HEARTBEATS.set(kc, heartbeat);
  }
  return heartbeat;
}

/**
 * A {@linkcode Watcher} of `path` through client-node's `Watch`.
 *
 * Its start (until the response's headers) is bounded by `startTimeoutMs`:
 * client-node bounds it only by the whole watch's timeout plus 30 s, five
 * minutes or more, and on this runtime a request sent on a pooled connection
 * that died unreported (an API server that restarted) is never answered and
 * not ended by an abort. A watch that cannot start within the bound fails
 * with {@linkcode RequestTimeoutError}, renewing `kc`'s connections, as does
 * one its reflector ends for silence; the reflector then opens a new one.
 */
export function clientWatcher(
  kc: KubeConfig,
  path: string,
  selectors: { labelSelector?: string; fieldSelector?: string } = {},
  startTimeoutMs = WATCH_START_TIMEOUT_MS,
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
    /** Given up at its start's bound (and its connections renewed then). */
    let abandoned = false;
    // A watch that failed on its connection renews kc's connections, as a
    // failed request does (renewConnections): the restarted API server's
    // first requests must not meet the dead ones. Not once abandoned: its
    // late failure would throw away the new connections its retry is on.
    const renewing = (error?: unknown) => {
      if (error && !abandoned && isConnectionFailure(error)) renewConnections(kc);
      done(error);
    };
    const started = watch.watch(path, query, onEvent, renewing);
    // Started after its bound: nobody holds the handle, so end it here.
    started.then((controller) => abandoned && controller.abort(), () => {});
    const controller = await renewingOnFailure(
      kc,
      withTimeout(started, startTimeoutMs, `watch ${path}`),
    ).catch((error) => {
      abandoned = true;
      throw error;
    });
    return {
      abort: (reason?: unknown) => {
        if (isConnectionFailure(reason)) renewConnections(kc);
        controller.abort();
      },
    };
  };
}

/**
 * The collection at `path`: listed page by page and watched, with `selectors`
 * on both; sharing its API server's heartbeat unless `cached` is false (a
 * resource the server keeps no watch cache for gets no bookmarks).
 */
function collection(
  kc: KubeConfig,
  path: string,
  selectors: Pick<ListQuery, "labelSelector" | "fieldSelector"> = {},
  cached = true,
): Collection {
  return {
    heartbeat: cached ? heartbeatOf(kc) : undefined,
    watch: clientWatcher(kc, path, selectors),
    list: (options, onItem, onMeta, onItemBytes) =>
      renewingOnFailure(
        kc,
        streamList(kc, path, { ...selectors, ...options }, onItem, { onMeta, onItemBytes }),
      ),
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

/**
 * Events in one namespace, selected by field (such as `reason=…`). Not held
 * to the server's heartbeat: kube-apiserver keeps no watch cache for Events
 * by default, so their watches get no bookmarks.
 */
export function eventCollection(
  kc: KubeConfig,
  options: { namespace: string; fieldSelector?: string },
): Collection {
  const { namespace, fieldSelector } = options;
  return collection(
    kc,
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
    { fieldSelector },
    false,
  );
}

/**
 * Every node: only the aggregator's tag ledger reads the whole list (a node
 * daemon reads its own Node, {@linkcode nodeCollection}).
 */
export function allNodesCollection(kc: KubeConfig): Collection {
  return collection(kc, "/api/v1/nodes");
}

/** One node, by name (`fieldSelector=metadata.name=<node>`): never the whole node list. */
export function nodeCollection(kc: KubeConfig, options: { name: string }): Collection {
  return collection(kc, "/api/v1/nodes", { fieldSelector: `metadata.name=${options.name}` });
}
