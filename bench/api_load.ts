/**
 * Scenario 3, API load: requests per verb and resource while the daemon is
 * idle (every image present, nothing changing), what one watch timeout costs,
 * and what one pull costs.
 *
 * The idle window is real time with the daemon's own server-side watch
 * timeouts (random 300–600 s, as client-go does), so a 5-minute window may
 * see no reconnect at all. To show what a reconnect costs, the bench then
 * ends every open watch cleanly — exactly what the API server does when a
 * watch's `timeoutSeconds` runs out — and counts the requests that follow.
 * The steady-state rate is then extrapolated: each watch reconnects once per
 * 300–600 s (450 s on average).
 *
 * @module
 */
import { configMaps, imagePool, workflowTemplates } from "./generate.ts";
import {
  type Cluster,
  daemonArgs,
  machineLoad,
  NAMESPACE,
  PART_OF,
  printTable,
  round,
  sleep,
  spawnDaemonChild,
  startCluster,
  until,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

const NODE = "node-1";

/** Scale of scenario 3. */
function apiLoadScale(quick: boolean): {
  templates: number;
  configMaps: number;
  images: number;
  idleMs: number;
  newImages: number;
} {
  return quick
    ? { templates: 200, configMaps: 50, images: 40, idleMs: 10_000, newImages: 10 }
    : { templates: 1_000, configMaps: 200, images: 100, idleMs: 300_000, newImages: 50 };
}

/** Requests made since the last reset, without the non-resource discovery paths' noise removed. */
function counts(cluster: Cluster): Record<string, number> {
  return Object.fromEntries(
    Object.entries(cluster.server.requests.counts()).sort(([a], [b]) => a.localeCompare(b)),
  );
}

function sum(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

/** Pull pods (not the daemon's own pod) in the daemon's namespace. */
function pullPods(cluster: Cluster): number {
  return cluster.server.list("pods", {
    namespace: NAMESPACE,
    labelSelector: "app.kubernetes.io/part-of=image-cache-daemon",
  }).length;
}

/** Runs scenario 3. */
export async function apiLoad(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = apiLoadScale(options.quick);
  const cluster = await startCluster({ nodes: [NODE] });
  const { server } = cluster;
  try {
    const pool = imagePool(scale.images, 3);
    for (const obj of workflowTemplates({ count: scale.templates, pool })) {
      server.create("workflowtemplates", obj);
    }
    for (const obj of configMaps({ count: scale.configMaps, pool, labels: PART_OF })) {
      server.create("configmaps", obj);
    }
    const child = await spawnDaemonChild(cluster, daemonArgs(cluster, NODE), {
      denoFlags: options.denoFlags,
    });
    const loadBefore = machineLoad();
    try {
      await child.waitForLog("Every desired image is present on this node");
      await until(() => pullPods(cluster) === 0, "pull pods gone");
      // Let the last deletions and Events settle before the window opens.
      await sleep(500);
      const watches = server.openWatches();

      // 1. Idle.
      server.requests.reset();
      await sleep(scale.idleMs);
      const idle = counts(cluster);

      // 2. One round of watch timeouts.
      server.requests.reset();
      const dropped = server.faults.dropWatches();
      await until(() => server.openWatches() >= watches, "watches back", { timeoutMs: 10_000 });
      await sleep(1_000);
      const reconnect = counts(cluster);

      // 3. Pulls.
      server.requests.reset();
      const before = server.kubelet(NODE).pulls.length;
      const fresh = Array.from(
        { length: scale.newImages },
        (_, i) => `registry.example.com/api-load/new-${i}:1.0`,
      );
      server.create("configmaps", {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: "apps-0", name: "api-load-new", labels: PART_OF },
        data: { images: JSON.stringify(fresh) },
      });
      await until(
        () =>
          server.kubelet(NODE).pulls.length - before >= scale.newImages && pullPods(cluster) === 0,
        "new images pulled",
      );
      await sleep(500);
      const pulls = server.kubelet(NODE).pulls.length - before;
      const pulling = counts(cluster);
      const perPull = Object.fromEntries(
        Object.entries(pulling).map(([key, n]) => [key, round(n / pulls, 2)]),
      );

      const idleTotal = sum(idle);
      const reconnectTotal = sum(reconnect);
      const onlyWatches = Object.keys(reconnect).every((key) => key.startsWith("watch "));
      const perFiveMinutes = round(watches * 300 / 450, 1);
      const result: ScenarioResult = {
        scenario: "api-load",
        quick: options.quick,
        idleWindowMs: scale.idleMs,
        openWatches: watches,
        idleRequests: idle,
        idleRequestTotal: idleTotal,
        watchesEnded: dropped,
        afterWatchTimeouts: reconnect,
        requestsPerWatchTimeout: round(reconnectTotal / Math.max(1, dropped), 2),
        extrapolatedIdleRequestsPer5Min: perFiveMinutes,
        pulls,
        requestsDuringPulls: pulling,
        requestsPerPull: perPull,
        targets: { idle: "only the watches' own reconnects: no polling, no per-object GETs" },
        met: idleTotal === 0 && onlyWatches && reconnectTotal === dropped,
        loadBefore,
        loadAfter: machineLoad(),
      };
      printTable("Scenario 3: API load (daemon as a process)", [
        ["open watches", watches],
        [`requests in ${scale.idleMs / 1000} s idle`, `${idleTotal} ${JSON.stringify(idle)}`],
        ["after ending every watch (as a timeout does)", JSON.stringify(reconnect)],
        ["requests per watch timeout", result.requestsPerWatchTimeout as number],
        [
          "extrapolated idle requests / 5 min",
          `${perFiveMinutes} (each watch re-opens every 300–600 s)`,
        ],
        [`per pull (${pulls} pulls)`, JSON.stringify(perPull)],
        ["load before / after", `${loadBefore} / ${result.loadAfter}`],
      ]);
      return result;
    } finally {
      await child.stop();
    }
  } finally {
    await cluster.close();
  }
}
