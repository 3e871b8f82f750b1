/**
 * The published set as one replica sees it: a reflector over the shards (by
 * label, in one namespace) keeping each one read, shared by the aggregator's
 * publisher and the node daemon's source.
 *
 * @module
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Clock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { configMapCollection } from "../kube/listers.ts";
import { Reflector } from "../kube/reflector.ts";
import { PUBLISHED_SET_SELECTOR, readShard, type Shard } from "./published_set.ts";

/** Options for {@linkcode watchPublishedSet}. */
export interface PublishedSetWatchOptions {
  kubeConfig: KubeConfig;
  /** Where the set is published: the aggregator's namespace. */
  namespace: string;
  log: Logger;
  clock?: Clock;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Called after every change of `shards`, once the first list is in. */
  onChange(): void;
  /** The collection is missing (404) or forbidden (403). */
  onUnavailable?(status: number, message: string): void;
}

/**
 * A reflector over the published set's ConfigMaps that keeps `shards`
 * (keyed `namespace/name`) level-triggered in step with them.
 */
export function watchPublishedSet(
  shards: Map<string, Shard>,
  options: PublishedSetWatchOptions,
): Reflector<Shard> {
  return new Reflector<Shard>({
    name: "published-set",
    ...configMapCollection(options.kubeConfig, {
      labelSelector: PUBLISHED_SET_SELECTOR,
      namespace: options.namespace,
    }),
    log: options.log,
    clock: options.clock,
    backoffBaseMs: options.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs,
    handler: {
      transform: (obj: KubernetesObject) => readShard(obj),
      replace: (items) => {
        shards.clear();
        for (const [key, shard] of items) shards.set(key, shard);
        options.onChange();
      },
      upsert: (key, shard) => {
        shards.set(key, shard);
        options.onChange();
      },
      remove: (key) => {
        shards.delete(key);
        options.onChange();
      },
      unavailable: (status, message) => options.onUnavailable?.(status, message),
    },
  });
}
