/**
 * Scenario 9, warm before work (issue #17): a node joins a cluster with 50
 * desired images and a startup taint; the time from its registration to the
 * taint lifted, beside the floor (the sum of the simulated pull times divided
 * by the pulls allowed at once). Two settings side by side in one run:
 * `--max-concurrent-pulls=1` (floor: the plain sum), and the default limit
 * with `--warm-max-concurrent-pulls=4` (floor: the sum / 4).
 *
 * @module
 */
import type { V1Node } from "@kubernetes/client-node";
import { machineLoad, printTable, round, startCluster, startInProcessDaemon } from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

const NODE = "node-new";
const KEY = "startup-taint.cluster-autoscaler.kubernetes.io/image-cache";

/** Scale of scenario 9. */
export function warmUpScale(quick: boolean): { images: number; pullMs: number } {
  return quick ? { images: 50, pullMs: 100 } : { images: 50, pullMs: 500 };
}

interface WarmRun {
  label: string;
  /** Pulls allowed at once while warming. */
  concurrency: number;
  /** Registration to taint lifted. */
  openMs: number;
  /** The floor: sum of pull times / concurrency. */
  floorMs: number;
  /** Last image present to taint lifted. */
  liftAfterLastPullMs: number;
}

async function once(
  label: string,
  args: string[],
  concurrency: number,
  scale: { images: number; pullMs: number },
): Promise<WarmRun> {
  const cluster = await startCluster();
  try {
    const images = Array.from(
      { length: scale.images },
      (_, i) => `registry.example/warm/app-${i}:1`,
    );
    // Registration: the node appears with its startup taint, as an autoscaler makes it.
    const registered = Date.now();
    const kubelet = cluster.server.addNode(NODE, {
      taints: [{ key: KEY, value: "true", effect: "NoSchedule" }],
    });
    kubelet.defaultPullDelayMs = scale.pullMs;
    const daemon = await startInProcessDaemon(cluster, NODE, {
      args: [
        `--startup-taint=${KEY}:NoSchedule`,
        ...images.map((i) => `--image=${i}`),
        ...args,
      ],
    });
    try {
      await cluster.server.waitFor(
        "nodes",
        (n) => !((n as unknown as V1Node).spec?.taints ?? []).some((t) => t.key === KEY),
        { name: NODE, timeoutMs: 600_000 },
      );
      const opened = Date.now();
      const wanted = new Set(images);
      const lastPull = Math.max(...kubelet.pulls.filter((p) => wanted.has(p.ref)).map((p) => p.at));
      return {
        label,
        concurrency,
        openMs: opened - registered,
        floorMs: scale.images * scale.pullMs / concurrency,
        liftAfterLastPullMs: opened - lastPull,
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    await cluster.close();
  }
}

/** Runs scenario 9. */
export async function warmUp(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = warmUpScale(options.quick);
  const load = machineLoad();
  const runs = [
    await once("--max-concurrent-pulls=1", ["--max-concurrent-pulls=1"], 1, scale),
    await once("--warm-max-concurrent-pulls=4", ["--warm-max-concurrent-pulls=4"], 4, scale),
  ];
  for (const run of runs) {
    printTable(`Warm-up, ${scale.images} images × ${scale.pullMs} ms, ${run.label}`, [
      ["registration → taint lifted", `${run.openMs} ms`],
      ["floor (sum of pulls / concurrency)", `${run.floorMs} ms`],
      ["ratio", round(run.openMs / run.floorMs, 2)],
      ["last image present → taint lifted", `${run.liftAfterLastPullMs} ms`],
    ]);
  }
  return {
    scenario: "warm-up",
    images: scale.images,
    pullMs: scale.pullMs,
    load,
    runs: runs.map((r) => ({ ...r, ratio: round(r.openMs / r.floorMs, 2) })),
  };
}
