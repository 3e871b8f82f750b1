/**
 * Scenario 1, initial sync: thousands of realistic WorkflowTemplates and
 * labelled ConfigMaps; time from the daemon process's spawn until every
 * source has synced with the desired set complete, and its peak RSS.
 *
 * @module
 */
import { DesiredImages } from "../images/desired_images.ts";
import { imagesFromWorkflowTemplate } from "../sources/argo_images.ts";
import { imagesFromConfigMap } from "../sources/configmap_images.ts";
import { configMaps, imagePool, workflowTemplates } from "./generate.ts";
import {
  daemonArgs,
  idleDenoPeakKiB,
  machineLoad,
  PART_OF,
  printTable,
  round,
  sleep,
  spawnDaemonChild,
  startCluster,
  syncedPeakKiB,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

const NODE = "node-1";

/** Scale of scenario 1. */
export function initialSyncScale(quick: boolean): {
  templates: number;
  configMaps: number;
  images: number;
  /** How long the daemon pulls after the sync while its RSS is sampled. */
  pullMs: number;
} {
  return quick
    ? { templates: 1_000, configMaps: 200, images: 400, pullMs: 2_000 }
    : { templates: 10_000, configMaps: 2_000, images: 2_000, pullMs: 10_000 };
}

/** The desired set the daemon must reach for `templates` and `maps`, extracted offline. */
export function expectedImages(
  templates: readonly Parameters<typeof imagesFromWorkflowTemplate>[0][],
  maps: readonly Parameters<typeof imagesFromConfigMap>[0][],
): DesiredImages {
  const expected = new DesiredImages();
  for (const [i, obj] of templates.entries()) {
    expected.set(`t/${i}`, imagesFromWorkflowTemplate(obj));
  }
  for (const [i, obj] of maps.entries()) expected.set(`c/${i}`, imagesFromConfigMap(obj).images);
  return expected;
}

/** Peak RSS of the daemon with nothing to watch, a second after it synced: its fixed cost. */
async function emptyDaemonPeakKiB(options: ScenarioOptions): Promise<number> {
  const cluster = await startCluster({ nodes: [NODE] });
  try {
    return await syncedPeakKiB(cluster, daemonArgs(cluster, NODE), {
      denoFlags: options.denoFlags,
    });
  } finally {
    await cluster.close();
  }
}

/** Runs scenario 1. */
export async function initialSync(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = initialSyncScale(options.quick);
  const pool = imagePool(scale.images);
  const templates = workflowTemplates({ count: scale.templates, pool });
  const maps = configMaps({ count: scale.configMaps, pool, labels: PART_OF });
  // What "complete" means: the same extraction, offline, before any timing.
  const expected = expectedImages(templates, maps);
  const bytes = templates.reduce((n, obj) => n + JSON.stringify(obj).length, 0);

  const cluster = await startCluster({ nodes: [NODE] });
  const { server } = cluster;
  try {
    for (const obj of templates) server.create("workflowtemplates", obj);
    for (const obj of maps) server.create("configmaps", obj);
    // Unlabelled ConfigMaps the selector must skip server-side.
    for (let i = 0; i < scale.configMaps / 4; i++) {
      server.create("configmaps", {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: `apps-${i % 25}`, name: `unrelated-${i}` },
        data: { "settings.yaml": "replicas: 3\n" },
      });
    }
    const idlePeakKiB = await idleDenoPeakKiB();
    const emptyPeakKiB = await emptyDaemonPeakKiB(options);
    server.requests.reset();
    const loadBefore = machineLoad();
    const child = await spawnDaemonChild(cluster, daemonArgs(cluster, NODE), {
      denoFlags: options.denoFlags,
    });
    let peakKiB = 0;
    let stopSampling = false;
    const sampling = (async () => {
      while (!stopSampling) {
        peakKiB = Math.max(peakKiB, child.memory()?.peakKiB ?? 0);
        await sleep(50);
      }
    })();
    let code: number;
    let startedMs: number, syncedMs: number, syncedImages: unknown, atSyncKiB: number;
    const listRequests: Record<string, number> = {};
    try {
      const started = await child.waitForLog("Starting image-cache-daemon");
      const synced = await child.waitForLog("All sources synced");
      startedMs = started.at - child.spawnedAt;
      syncedMs = synced.at - child.spawnedAt;
      syncedImages = synced.fields.images;
      atSyncKiB = child.memory()?.peakKiB ?? NaN;
      for (const [key, n] of Object.entries(server.requests.counts())) {
        if (key.startsWith("list ")) listRequests[key] = n;
      }
      // Keep it running while it pulls: the peak covers work, not just the sync.
      await sleep(scale.pullMs);
    } finally {
      peakKiB = Math.max(peakKiB, child.memory()?.peakKiB ?? 0);
      stopSampling = true;
      await sampling;
      code = await child.stop();
    }
    const pulls = server.kubelet(NODE).pulls.length;
    const complete = syncedImages === expected.size;
    const result: ScenarioResult = {
      scenario: "initial-sync",
      quick: options.quick,
      workflowTemplates: scale.templates,
      workflowTemplateAvgBytes: Math.round(bytes / scale.templates),
      configMaps: scale.configMaps,
      expectedImages: expected.size,
      desiredAtSync: syncedImages,
      complete,
      processStartMs: round(startedMs),
      syncMs: round(syncedMs),
      syncAfterStartMs: round(syncedMs - startedMs),
      peakRssAtSyncMiB: round(atSyncKiB / 1024),
      peakRssMiB: round(peakKiB / 1024),
      idleDenoPeakRssMiB: round(idlePeakKiB / 1024),
      emptyClusterDaemonPeakRssMiB: round(emptyPeakKiB / 1024),
      rssOverIdleMiB: round((peakKiB - idlePeakKiB) / 1024),
      pullWindowMs: scale.pullMs,
      pullsInWindow: pulls,
      listRequests,
      exitCode: code,
      targets: { syncMs: 2_000, peakRssMiB: 100 },
      met: complete && syncedMs <= 2_000 && peakKiB / 1024 <= 100,
      loadBefore,
      loadAfter: machineLoad(),
    };
    printTable("Scenario 1: initial sync (daemon as a child process, -P=daemon)", [
      ["WorkflowTemplates (avg bytes)", `${scale.templates} (${result.workflowTemplateAvgBytes})`],
      ["labelled ConfigMaps", scale.configMaps],
      ["desired images at sync / expected", `${syncedImages} / ${expected.size}`],
      ["spawn → first log line", `${result.processStartMs} ms`],
      ["spawn → all sources synced", `${result.syncMs} ms (target ≤ 2000)`],
      ["peak RSS at sync", `${result.peakRssAtSyncMiB} MiB`],
      [
        `peak RSS incl. ${scale.pullMs / 1000} s of pulling`,
        `${result.peakRssMiB} MiB (target ≤ 100)`,
      ],
      ["idle Deno peak RSS", `${result.idleDenoPeakRssMiB} MiB`],
      ["daemon on an empty cluster, peak RSS", `${result.emptyClusterDaemonPeakRssMiB} MiB`],
      ["list requests", JSON.stringify(listRequests)],
      ["load before / after", `${loadBefore} / ${result.loadAfter}`],
    ]);
    return result;
  } finally {
    await cluster.close();
  }
}
