/**
 * Scenario 5, many nodes: one daemon per simulated node, all in this process
 * against one fake API server; total API requests and watches, and the time
 * until every node holds a batch of new images, with the concurrency limit
 * checked on every node from the outside (pull pods alive per node, as the
 * API server sees them; a pod stops counting once its deletion starts).
 *
 * @module
 */
import { normalizeReference } from "../images/reference.ts";
import { configMaps, imagePool } from "./generate.ts";
import {
  type InProcessDaemon,
  machineLoad,
  PART_OF,
  printTable,
  round,
  startCluster,
  startInProcessDaemon,
  until,
  watchPullPods,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

/** Scale of scenario 5. */
function manyNodesScale(quick: boolean): {
  nodes: number;
  newImages: number;
  maxConcurrentPulls: number;
} {
  return quick
    ? { nodes: 20, newImages: 10, maxConcurrentPulls: 2 }
    : { nodes: 100, newImages: 50, maxConcurrentPulls: 2 };
}

function sum(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

/** Runs scenario 5. */
export async function manyNodes(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = manyNodesScale(options.quick);
  const nodes = Array.from(
    { length: scale.nodes },
    (_, i) => `node-${String(i + 1).padStart(3, "0")}`,
  );
  const cluster = await startCluster({ nodes });
  const { server } = cluster;
  const stopWatch = new AbortController();
  const daemons: InProcessDaemon[] = [];
  try {
    // A little existing state, pulled before the measurement starts.
    const pool = imagePool(5, 5);
    for (const obj of configMaps({ count: 3, pool, labels: PART_OF })) {
      server.create("configmaps", obj);
    }
    const alive = new Map<string, number>();
    const maxAlive = new Map<string, number>();
    await watchPullPods(cluster, stopWatch.signal, {
      onAdded: (pod) => {
        const n = (alive.get(pod.node) ?? 0) + 1;
        alive.set(pod.node, n);
        maxAlive.set(pod.node, Math.max(maxAlive.get(pod.node) ?? 0, n));
      },
      onGone: (pod) => alive.set(pod.node, (alive.get(pod.node) ?? 1) - 1),
    });
    const loadBefore = machineLoad();
    server.requests.reset();
    const startedAt = performance.now();
    const args = [`--max-concurrent-pulls=${scale.maxConcurrentPulls}`];
    daemons.push(
      ...await Promise.all(nodes.map((node) => startInProcessDaemon(cluster, node, { args }))),
    );
    const readyMs = performance.now() - startedAt;
    await until(() => daemons.every((d) => d.parts.puller.allPresent()), "existing images", {
      timeoutMs: 300_000,
      intervalMs: 50,
    });
    const startup = server.requests.counts();
    const watches = server.openWatches();
    let maxInFlight = 0;

    // The measurement: one ConfigMap with a batch of new images.
    server.requests.reset();
    const fresh = Array.from(
      { length: scale.newImages },
      (_, i) => `registry.example.com/rollout/service-${i}:2.0`,
    );
    const kubelets = nodes.map((node) => server.kubelet(node));
    const t0 = performance.now();
    server.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "rollout", labels: PART_OF },
      data: { images: JSON.stringify(fresh) },
    });
    const wanted = fresh.map((image) => normalizeReference(image));
    await until(
      () => {
        for (const d of daemons) maxInFlight = Math.max(maxInFlight, d.parts.puller.inFlight());
        return kubelets.every((k) => {
          const present = new Set(k.imagesPresent());
          return wanted.every((ref) => present.has(ref));
        });
      },
      "every node holds the new images",
      { timeoutMs: 600_000, intervalMs: 20 },
    );
    const rolloutMs = performance.now() - t0;
    // Count the rollout's requests once its pods are all deleted too.
    await until(() => [...alive.values()].every((n) => n === 0), "rollout pods gone", {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    const rollout = server.requests.counts();
    const worstNode = Math.max(...maxAlive.values());
    const result: ScenarioResult = {
      scenario: "many-nodes",
      quick: options.quick,
      nodes: scale.nodes,
      newImages: scale.newImages,
      maxConcurrentPulls: scale.maxConcurrentPulls,
      allReadyMs: round(readyMs),
      startupRequests: sum(startup),
      startupRequestsByVerb: startup,
      openWatches: watches,
      watchesPerNode: round(watches / scale.nodes, 2),
      rolloutMs: round(rolloutMs),
      rolloutRequests: sum(rollout),
      rolloutRequestsPerNodePerImage: round(sum(rollout) / (scale.nodes * scale.newImages), 2),
      rolloutRequestsByVerb: rollout,
      maxPullPodsAliveOnANode: worstNode,
      maxInFlightOnAPuller: maxInFlight,
      targets: { maxPullPodsPerNode: scale.maxConcurrentPulls },
      met: worstNode <= scale.maxConcurrentPulls && maxInFlight <= scale.maxConcurrentPulls,
      loadBefore,
      loadAfter: machineLoad(),
    };
    printTable(
      `Scenario 5: ${scale.nodes} nodes, one in-process daemon each, one fake API server`,
      [
        ["all daemons synced and running", `${result.allReadyMs} ms`],
        ["requests to start them all", `${result.startupRequests}`],
        ["open watches (per node)", `${watches} (${result.watchesPerNode})`],
        [`every node holds ${scale.newImages} new images`, `${result.rolloutMs} ms`],
        [
          "requests for that rollout (per node·image)",
          `${result.rolloutRequests} (${result.rolloutRequestsPerNodePerImage})`,
        ],
        [
          "max pull pods alive on one node",
          `${worstNode} (--max-concurrent-pulls=${scale.maxConcurrentPulls})`,
        ],
        ["max in flight on one puller", maxInFlight],
        ["load before / after", `${loadBefore} / ${result.loadAfter}`],
      ],
    );
    return result;
  } finally {
    stopWatch.abort();
    await Promise.all(daemons.map((d) => d.stop()));
    await cluster.close();
  }
}
