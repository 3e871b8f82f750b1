/**
 * Scenario 4, resync: digest-pinned images that are all present on the node;
 * how many pull pods the daemon creates at start and in one resync.
 *
 * The simulated kubelet reports at most 50 images in the Node's
 * `status.images`, like the real kubelet's default `--node-status-max-images`,
 * so with more pinned images than that the node's own report cannot prove
 * every one present.
 *
 * @module
 */
import { NODE_STATUS_MAX_IMAGES } from "../testing/fake_apiserver/mod.ts";
import {
  daemonArgs,
  machineLoad,
  PART_OF,
  printTable,
  sleep,
  spawnDaemonChild,
  startCluster,
  until,
  watchPullPods,
} from "./harness.ts";
import { seededRandom } from "./generate.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

const NODE = "node-1";

/** Scale of scenario 4. */
function resyncScale(quick: boolean): { cases: number[]; resyncSeconds: number } {
  // The 200, and the most the Node reports (so all are visible).
  return { cases: [200, NODE_STATUS_MAX_IMAGES], resyncSeconds: quick ? 3 : 10 };
}

interface CaseResult {
  pinnedImages: number;
  nodeReportsImages: number;
  podsAtStart: number;
  podsInOneResync: number;
  registryPulls: number;
}

async function runCase(
  count: number,
  resyncSeconds: number,
  options: ScenarioOptions,
): Promise<CaseResult> {
  const random = seededRandom(4);
  const hex = () =>
    Array.from({ length: 64 }, () => Math.floor(random() * 16).toString(16)).join("");
  const images = Array.from(
    { length: count },
    (_, i) => `registry.example.com/pinned/app-${i}@sha256:${hex()}`,
  );
  const cluster = await startCluster({ nodes: [NODE] });
  const { server } = cluster;
  const stopWatch = new AbortController();
  try {
    const kubelet = server.kubelet(NODE);
    for (const image of images) kubelet.preloadImage(image);
    server.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "pinned", labels: PART_OF },
      data: { images: JSON.stringify(images) },
    });
    const reported =
      ((server.get("nodes", undefined, NODE)?.status as { images?: unknown[] })?.images ?? [])
        .length;
    let alive = 0;
    const seen = await watchPullPods(cluster, stopWatch.signal, {
      onAdded: () => alive++,
      onGone: () => alive--,
    });
    const child = await spawnDaemonChild(
      cluster,
      daemonArgs(cluster, NODE, [`--resync-period=${resyncSeconds}s`]),
      { denoFlags: options.denoFlags },
    );
    try {
      await child.waitForLog("Node puller started");
      // Present images found on the node need no pod and log nothing; wait
      // until no pod has been alive for a second.
      let quietSince = performance.now();
      await until(
        () => {
          if (alive > 0) quietSince = performance.now();
          return performance.now() - quietSince >= 1_000;
        },
        "initial pulls done",
        { timeoutMs: 120_000 },
      );
      const podsAtStart = seen.length;
      const pullsBefore = kubelet.pulls.length;
      // Every image comes up for resync at least once in a window of 1.2 periods
      // (the puller spreads each resync by ±10 %); each is counted once.
      const from = performance.now();
      await sleep(resyncSeconds * 1200);
      const to = performance.now();
      const resynced = new Set(seen.filter((p) => p.at > from && p.at <= to).map((p) => p.image));
      await until(() => alive === 0, "resync pull pods gone", { timeoutMs: 120_000 });
      return {
        pinnedImages: count,
        nodeReportsImages: reported,
        podsAtStart,
        podsInOneResync: resynced.size,
        registryPulls: kubelet.pulls.length - pullsBefore,
      };
    } finally {
      await child.stop();
    }
  } finally {
    stopWatch.abort();
    await cluster.close();
  }
}

/** Runs scenario 4. */
export async function resync(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = resyncScale(options.quick);
  const loadBefore = machineLoad();
  const cases: CaseResult[] = [];
  for (const count of scale.cases) cases.push(await runCase(count, scale.resyncSeconds, options));
  const visible = cases.filter((c) => c.pinnedImages <= c.nodeReportsImages);
  const result: ScenarioResult = {
    scenario: "resync",
    quick: options.quick,
    resyncPeriodSeconds: scale.resyncSeconds,
    cases,
    targets: { podsInOneResync: 0 },
    // Met for every image the node reports; the rest are beyond what it can prove present.
    met: cases.every((c) => c.podsInOneResync === 0),
    // The cases where the node reports every pinned image.
    metForReportedImages: visible.every((c) => c.podsInOneResync === 0),
    loadBefore,
    loadAfter: machineLoad(),
  };
  printTable("Scenario 4: resync of present digest-pinned images (daemon as a process)", [
    ...cases.flatMap((c): [string, string | number][] => [
      [`${c.pinnedImages} pinned images present`, `the Node reports ${c.nodeReportsImages}`],
      ["  pull pods at start", c.podsAtStart],
      [`  pull pods in one resync (${scale.resyncSeconds} s)`, `${c.podsInOneResync} (target 0)`],
      ["  registry pulls in that resync", c.registryPulls],
    ]),
    ["load before / after", `${loadBefore} / ${result.loadAfter}`],
  ]);
  return result;
}
