/**
 * Scenario 8, the split layout beside `--role=all`, in one run:
 *
 * - **A. Sources to a published set.** 10,000 WorkflowTemplates and 2,000
 *   ConfigMaps (as scenario 1). An `all` daemon process: spawn to `All
 *   sources synced`, its peak RSS, the bytes it read. An aggregator process:
 *   spawn to its first `Published the desired images`. A node daemon
 *   process (as the DaemonSet ships it: {@linkcode SHIPPED_NODE_FLAGS}): the
 *   bytes it read to apply the set (against the set's size), and its peak
 *   RSS from spawn through pulling the whole set over its own idle RSS on
 *   that set once the pulls settle ({@linkcode nodeMemoryRun}); beside it the
 *   peaks of node daemons on an empty and a 10-image set, and the same run
 *   without V8 flags on a second node.
 * - **B. API load with N node daemons** (light in-process instances, as in
 *   scenario 5): requests and response bytes at install and in an idle
 *   window (scaled to an hour), for one aggregator plus N node daemons; for
 *   `all`, per-node numbers measured on in-process `all` daemons in the same
 *   run, times N (each `all` daemon reads every source itself, whatever N).
 * - **C. Churn** (as scenario 2, {@linkcode measureChurn}): a WorkflowTemplate
 *   edit to the pull pod for the image it added, at 50 edits a second and at
 *   one a second, `all` beside the split (an aggregator and a node daemon
 *   process; one hop more, through the published set).
 *
 * @module
 */
import { configMaps, imagePool, workflowTemplates } from "./generate.ts";
import {
  type Cluster,
  daemonArgs,
  type InProcessDaemon,
  machineLoad,
  NAMESPACE,
  PART_OF,
  printTable,
  round,
  sleep,
  spawnDaemonChild,
  startCluster,
  startInProcessDaemon,
  until,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";
import { PUBLISHED_SET_SELECTOR } from "../publication/published_set.ts";
import type { RequestRecord } from "../testing/fake_apiserver/mod.ts";
import { loadConfig } from "../config/config.ts";
import { runDaemon } from "../daemon.ts";
import { nullLogger } from "../log/logger.ts";
import type { AggregatorParts } from "../aggregator.ts";
import { type ChurnLayout, type ChurnRun, measureChurn } from "./churn.ts";
import { AGGREGATOR_V8_FLAGS, IMAGE_V8_FLAGS } from "../build/v8_flags.ts";

const NODE = "node-1";
/** A second node, for the node daemon's run without V8 flags. */
const BARE_NODE = "node-2";
/** Images of the small-cluster baseline a node daemon's peak is held to. */
const SMALL_SET = 10;

/** Scale of scenario 8. */
export function splitScale(quick: boolean): {
  templates: number;
  configMaps: number;
  images: number;
  pullMs: number;
  nodes: readonly number[];
  allSamples: number;
  idleMs: number;
  /** How long a node daemon idles after its pulls settle before its idle RSS is read. */
  nodeIdleMs: number;
  /** Longest a node daemon may take to make the whole set present. */
  nodeSettleTimeoutMs: number;
  loadImages: number;
  /**
   * Churn runs, source change → pull pod (part C); `publishInterval`: the
   * aggregator's `--publish-interval` (default 1s).
   */
  churn: readonly {
    layout: ChurnLayout;
    ratePerSecond: number;
    durationMs: number;
    publishInterval?: string;
  }[];
  /** The low rate at which the split's churn p99 is held to 100 ms. */
  churnSlowRate: number;
} {
  return quick
    ? {
      templates: 1_000,
      configMaps: 200,
      images: 400,
      pullMs: 2_000,
      nodes: [20, 100],
      allSamples: 2,
      idleMs: 10_000,
      // As long as the full run's: V8 gives memory back about 10 s after the pulls end.
      nodeIdleMs: 20_000,
      nodeSettleTimeoutMs: 120_000,
      loadImages: 40,
      // Quick: the split only (scenario 2 measures `all` at 50/s in the same run).
      churn: [
        { layout: "split", ratePerSecond: 50, durationMs: 4_000 },
        { layout: "split", ratePerSecond: 50, durationMs: 4_000, publishInterval: "50ms" },
        { layout: "split", ratePerSecond: 0.5, durationMs: 12_000 },
      ],
      churnSlowRate: 0.5,
    }
    : {
      templates: 10_000,
      configMaps: 2_000,
      images: 2_000,
      pullMs: 10_000,
      nodes: [100, 1_000],
      allSamples: 3,
      idleMs: 60_000,
      nodeIdleMs: 20_000,
      nodeSettleTimeoutMs: 600_000,
      loadImages: 40,
      churn: [
        { layout: "all", ratePerSecond: 50, durationMs: 30_000 },
        { layout: "split", ratePerSecond: 50, durationMs: 30_000 },
        { layout: "split", ratePerSecond: 50, durationMs: 30_000, publishInterval: "50ms" },
        { layout: "all", ratePerSecond: 0.5, durationMs: 60_000 },
        { layout: "split", ratePerSecond: 0.5, durationMs: 60_000 },
      ],
      churnSlowRate: 0.5,
    };
}

/** Bytes and requests served so far, optionally only for requests `select` picks. */
function served(cluster: Cluster, select: (r: RequestRecord) => boolean = () => true) {
  const entries = cluster.server.requests.entries().filter(select);
  return { requests: entries.length, bytes: entries.reduce((n, r) => n + r.bytes, 0) };
}

function publishedBytes(cluster: Cluster): number {
  return cluster.server.list("configmaps", {
    namespace: NAMESPACE,
    labelSelector: PUBLISHED_SET_SELECTOR,
  }).reduce((n, cm) => n + new TextEncoder().encode(JSON.stringify(cm)).byteLength, 0);
}

/** Part A's sources: `scale.templates` WorkflowTemplates and `scale.configMaps` labelled ConfigMaps. */
export function fill(
  cluster: Cluster,
  scale: Pick<ReturnType<typeof splitScale>, "images" | "templates" | "configMaps">,
): void {
  const pool = imagePool(scale.images);
  for (const obj of workflowTemplates({ count: scale.templates, pool })) {
    cluster.server.create("workflowtemplates", obj);
  }
  for (const obj of configMaps({ count: scale.configMaps, pool, labels: PART_OF })) {
    cluster.server.create("configmaps", obj);
  }
}

/** Peak RSS (KiB) of a child while `during` runs, sampled every 50 ms. */
async function samplePeak(memory: () => { peakKiB: number } | undefined, during: Promise<void>) {
  let peak = 0;
  let done = false;
  const sampling = (async () => {
    while (!done) {
      peak = Math.max(peak, memory()?.peakKiB ?? 0);
      await sleep(50);
    }
  })();
  await during;
  done = true;
  await sampling;
  return Math.max(peak, memory()?.peakKiB ?? 0);
}

/**
 * The Deno flags an aggregator runs with as its Deployment ships it: the V8
 * flags it sets in place of the image's (build/v8_flags.ts).
 */
export const SHIPPED_AGGREGATOR_FLAGS: readonly string[] = [`--v8-flags=${AGGREGATOR_V8_FLAGS}`];

/**
 * Spawns an aggregator process (by default the bundle in dist/; `cwd` runs
 * another checkout's), with `denoFlags`, or as shipped
 * ({@linkcode SHIPPED_AGGREGATOR_FLAGS}) when they are undefined.
 */
export function spawnAggregator(
  cluster: Cluster,
  denoFlags: string[] | undefined,
  options: { cwd?: string; extraArgs?: readonly string[] } = {},
): ReturnType<typeof spawnDaemonChild> {
  return spawnDaemonChild(cluster, [
    "--role=aggregator",
    `--pod-namespace=${NAMESPACE}`,
    "--pod-name=aggregator-0",
    "--metrics-bind-address=0",
    "--status-bind-address=0",
    ...(options.extraArgs ?? []),
  ], { denoFlags: denoFlags ?? [...SHIPPED_AGGREGATOR_FLAGS], cwd: options.cwd });
}

/**
 * The Deno flags a node daemon runs with as the DaemonSet ships it: the
 * image's V8 flags and old-space limit (Dockerfile, build/v8_flags.ts).
 */
export const SHIPPED_NODE_FLAGS: readonly string[] = [
  `--v8-flags=${IMAGE_V8_FLAGS}`,
];

/** A node daemon's memory over one run: from spawn through its pulls, then idle on the same set. */
export interface NodeMemoryRun {
  /** Peak RSS (VmHWM) from spawn to the end of the idle window, KiB. */
  readonly peakKiB: number;
  /** RSS once idle: `idleMs` after every desired image became present, KiB. */
  readonly idleKiB: number;
  /** Spawn to "Every desired image is present on this node", ms. */
  readonly settledMs: number;
  /** Images the node daemon held present (its log line). */
  readonly images: number;
}

/**
 * Runs a node daemon on `node` until every desired image is present, lets
 * it idle `idleMs` on the same set, and reads its peak (the whole run, from
 * spawn) and its idle RSS: issue #15's "peak within 10 % of its idle RSS",
 * the same daemon on the same set. `onSynced` runs once it has applied the set.
 */
export async function nodeMemoryRun(
  cluster: Cluster,
  node: string,
  options: {
    denoFlags?: readonly string[];
    cwd?: string;
    idleMs: number;
    settleTimeoutMs: number;
    onSynced?: () => void;
  },
): Promise<NodeMemoryRun> {
  const child = await spawnDaemonChild(cluster, daemonArgs(cluster, node, ["--role=node"]), {
    denoFlags: [...options.denoFlags ?? []],
    cwd: options.cwd,
  });
  try {
    await child.waitForLog("All sources synced");
    options.onSynced?.();
    const settled = await child.waitForLog(
      "Every desired image is present on this node",
      options.settleTimeoutMs,
    );
    await sleep(options.idleMs);
    const memory = child.memory();
    return {
      peakKiB: memory?.peakKiB ?? NaN,
      idleKiB: memory?.rssKiB ?? NaN,
      settledMs: round(settled.at - child.spawnedAt, 0),
      images: settled.fields.images as number,
    };
  } finally {
    await child.stop();
  }
}

/** Part A. */
async function sourcesToSet(options: ScenarioOptions, scale: ReturnType<typeof splitScale>) {
  const denoFlags = options.denoFlags;
  // Node daemons run as shipped unless --daemon-flags says otherwise.
  const nodeFlags = options.denoFlags ?? SHIPPED_NODE_FLAGS;
  // The node daemon's own cost, on a published set of `baselineImages`
  // (none: its fixed cost; a few: the same pull code run, on a small cluster).
  const nodeBaselinePeakKiB = async (baselineImages: number) => {
    const cluster = await startCluster({ nodes: [NODE] });
    try {
      if (baselineImages > 0) {
        cluster.server.create("configmaps", {
          metadata: { namespace: "apps", name: "baseline", labels: PART_OF },
          data: { images: JSON.stringify(imagePool(baselineImages)) },
        });
      }
      const aggregator = await spawnAggregator(cluster, denoFlags);
      await aggregator.waitForLog("Published the desired images");
      const node = await spawnDaemonChild(cluster, daemonArgs(cluster, NODE, ["--role=node"]), {
        denoFlags: [...nodeFlags],
      });
      await node.waitForLog("All sources synced");
      const peak = await samplePeak(() => node.memory(), sleep(scale.pullMs));
      await node.stop();
      await aggregator.stop();
      return peak;
    } finally {
      await cluster.close();
    }
  };
  const nodeEmptyPeakKiB = await nodeBaselinePeakKiB(0);
  const nodeSmallPeakKiB = await nodeBaselinePeakKiB(SMALL_SET);

  const cluster = await startCluster({ nodes: [NODE] });
  try {
    fill(cluster, scale);
    // `all`, as scenario 1 runs it.
    const before = served(cluster);
    const all = await spawnDaemonChild(cluster, daemonArgs(cluster, NODE), { denoFlags });
    const allSynced = await all.waitForLog("All sources synced");
    const allSyncMs = allSynced.at - all.spawnedAt;
    const allReadBytes = served(cluster).bytes - before.bytes;
    const allPeakKiB = await samplePeak(() => all.memory(), sleep(scale.pullMs));
    await all.stop();

    const aggregator = await spawnAggregator(cluster, denoFlags);
    const published = await aggregator.waitForLog("Published the desired images");
    const aggregatorMs = published.at - aggregator.spawnedAt;
    const aggregatorPeakKiB = aggregator.memory()?.peakKiB ?? NaN;
    const setBytes = publishedBytes(cluster);
    const images = published.fields.images as number;
    const shards = published.fields.shards as number;

    // The node daemon on the whole set, on a node that holds none of it:
    // spawn, pull every image, idle on the same set.
    const startIndex = cluster.server.requests.entries().length;
    let nodeReadBytes = NaN;
    let nodeSetBytes = NaN;
    const nodeRun = await nodeMemoryRun(cluster, NODE, {
      denoFlags: nodeFlags,
      idleMs: scale.nodeIdleMs,
      settleTimeoutMs: scale.nodeSettleTimeoutMs,
      // Summed at once: a watch's record keeps counting the bytes it streams later.
      onSynced: () => {
        const entries = cluster.server.requests.entries().slice(startIndex);
        nodeReadBytes = entries.reduce((n, r) => n + r.bytes, 0);
        nodeSetBytes = entries.filter((r) => r.resource === "configmaps")
          .reduce((n, r) => n + r.bytes, 0);
      },
    });
    // The same on a second, fresh node without V8 flags (the bundle as
    // `deno run` starts it), so the flags' share is measured, not assumed.
    let bareRun: NodeMemoryRun | undefined;
    if (options.denoFlags === undefined) {
      cluster.server.addNode(BARE_NODE);
      bareRun = await nodeMemoryRun(cluster, BARE_NODE, {
        idleMs: scale.nodeIdleMs,
        settleTimeoutMs: scale.nodeSettleTimeoutMs,
      });
    }
    await aggregator.stop();
    const mib = (kib: number) => round(kib / 1024);
    return {
      images,
      shards,
      publishedSetBytes: setBytes,
      allSyncMs: round(allSyncMs, 0),
      allReadBytes,
      allPeakMiB: mib(allPeakKiB),
      aggregatorToPublishedMs: round(aggregatorMs, 0),
      aggregatorPeakMiB: mib(aggregatorPeakKiB),
      nodeReadBytesAtStart: nodeReadBytes,
      nodeReadSetBytes: nodeSetBytes,
      nodeStartBytesOverSet: round(nodeReadBytes / setBytes, 2),
      nodeFlags: nodeFlags.join(" "),
      nodeImagesPresent: nodeRun.images,
      nodeSettledMs: nodeRun.settledMs,
      nodePeakMiB: mib(nodeRun.peakKiB),
      nodeIdleMiB: mib(nodeRun.idleKiB),
      nodePeakOverIdle: round(nodeRun.peakKiB / nodeRun.idleKiB, 3),
      nodeEmptySetPeakMiB: mib(nodeEmptyPeakKiB),
      nodePeakOverEmptySet: round(nodeRun.peakKiB / nodeEmptyPeakKiB, 3),
      nodeSmallSetPeakMiB: mib(nodeSmallPeakKiB),
      nodePeakOverSmallSet: round(nodeRun.peakKiB / nodeSmallPeakKiB, 3),
      ...(bareRun === undefined ? {} : {
        nodeNoV8FlagsPeakMiB: mib(bareRun.peakKiB),
        nodeNoV8FlagsIdleMiB: mib(bareRun.idleKiB),
        nodeNoV8FlagsPeakOverIdle: round(bareRun.peakKiB / bareRun.idleKiB, 3),
      }),
    };
  } finally {
    await cluster.close();
  }
}

/** Digest-pinned images, already on every node: node daemons start and idle without pulling. */
function pinnedPool(count: number): string[] {
  return Array.from(
    { length: count },
    (_, i) => `registry.example.com/bench/app-${i}@sha256:${i.toString(16).padStart(64, "0")}`,
  );
}

/** Part B for one N. */
async function apiLoadAt(
  nodes: number,
  scale: ReturnType<typeof splitScale>,
): Promise<Record<string, number>> {
  const names = Array.from({ length: nodes }, (_, i) => `node-${String(i + 1).padStart(4, "0")}`);
  // The sources of part A, naming images every node already holds (at most
  // the 50 a kubelet reports), so N node daemons start and idle without
  // pulling: what is measured is the API's cost of the layout.
  const pool = pinnedPool(scale.loadImages);
  const cluster = await startCluster({});
  const { server } = cluster;
  for (const name of names) server.addNode(name, { images: pool });
  for (const obj of workflowTemplates({ count: scale.templates, pool })) {
    server.create("workflowtemplates", obj);
  }
  for (const obj of configMaps({ count: scale.configMaps, pool, labels: PART_OF })) {
    server.create("configmaps", obj);
  }
  const stops: (() => Promise<void>)[] = [];
  try {
    // `all`: a few daemons, per node.
    let before = served(cluster);
    const alls: InProcessDaemon[] = [];
    for (let i = 0; i < scale.allSamples; i++) {
      alls.push(await startInProcessDaemon(cluster, names[i], { args: ["--resync-period=0"] }));
    }
    await until(() => alls.every((d) => d.parts.puller.allPresent()), "all: present");
    await sleep(500);
    let after = served(cluster);
    const allInstall = {
      requests: (after.requests - before.requests) / alls.length,
      bytes: (after.bytes - before.bytes) / alls.length,
    };
    before = after;
    await sleep(scale.idleMs);
    after = served(cluster);
    const allIdle = {
      requests: (after.requests - before.requests) / alls.length,
      bytes: (after.bytes - before.bytes) / alls.length,
    };
    for (const d of alls) await d.stop();

    // Split: one aggregator and N node daemons.
    before = served(cluster);
    const { config } = loadConfig([
      "--role=aggregator",
      `--pod-namespace=${NAMESPACE}`,
      "--pod-name=aggregator-0",
      "--metrics-bind-address=0",
    ], () => undefined);
    const controller = new AbortController();
    let aggregatorParts: AggregatorParts | undefined;
    const running = runDaemon(config, {
      kubeConfig: server.kubeConfig(),
      log: nullLogger,
      onAggregatorStarted: (p) => aggregatorParts = p,
    }, controller.signal);
    stops.push(async () => {
      controller.abort();
      await running;
    });
    await until(() => (aggregatorParts?.publisher.status().publishes ?? 0) > 0, "published", {
      timeoutMs: 120_000,
    });
    const daemons: InProcessDaemon[] = [];
    for (let i = 0; i < names.length; i += 50) {
      daemons.push(
        ...await Promise.all(
          names.slice(i, i + 50).map((n) =>
            startInProcessDaemon(cluster, n, { args: ["--role=node", "--resync-period=0"] })
          ),
        ),
      );
    }
    for (const d of daemons) stops.push(() => d.stop());
    await until(() => daemons.every((d) => d.parts.puller.allPresent()), "split: present", {
      timeoutMs: 600_000,
    });
    await sleep(500);
    after = served(cluster);
    const splitInstall = {
      requests: after.requests - before.requests,
      bytes: after.bytes - before.bytes,
    };
    before = after;
    await sleep(scale.idleMs);
    after = served(cluster);
    const splitIdle = {
      requests: after.requests - before.requests,
      bytes: after.bytes - before.bytes,
    };
    const perHour = 3_600_000 / scale.idleMs;
    return {
      nodes,
      allInstallBytes: Math.round(allInstall.bytes * nodes),
      allInstallRequests: Math.round(allInstall.requests * nodes),
      allIdleBytesPerHour: Math.round(allIdle.bytes * nodes * perHour),
      allIdleRequestsPerHour: Math.round(allIdle.requests * nodes * perHour),
      splitInstallBytes: splitInstall.bytes,
      splitInstallRequests: splitInstall.requests,
      splitIdleBytesPerHour: Math.round(splitIdle.bytes * perHour),
      splitIdleRequestsPerHour: Math.round(splitIdle.requests * perHour),
      installBytesRatio: round(allInstall.bytes * nodes / splitInstall.bytes, 1),
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await cluster.close();
  }
}

/** Runs scenario 8. */
export async function split(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = splitScale(options.quick);
  const loadBefore = machineLoad();
  const a = await sourcesToSet(options, scale);
  const b = [];
  for (const n of scale.nodes) b.push(await apiLoadAt(n, scale));
  const biggest = b[b.length - 1];
  // Part C: churn, a source change to a pull pod on the node, side by side.
  const c: (ChurnRun & { publishInterval: string })[] = [];
  for (const { layout, ratePerSecond, durationMs, publishInterval } of scale.churn) {
    const run = await measureChurn({
      layout,
      ratePerSecond,
      durationMs,
      warmupMs: 2_000,
      maxConcurrentPulls: 10,
      denoFlags: options.denoFlags,
      aggregatorArgs: publishInterval ? [`--publish-interval=${publishInterval}`] : [],
    });
    c.push({ ...run, publishInterval: layout === "split" ? publishInterval ?? "1s" : "-" });
  }
  const splitAt = (rate: number, interval = "1s") =>
    c.find((r) =>
      r.layout === "split" && r.ratePerSecond === rate && r.publishInterval === interval
    );
  const slow = splitAt(scale.churnSlowRate);
  const fastShortInterval = splitAt(50, "50ms");
  const result: ScenarioResult = {
    scenario: "split",
    quick: options.quick,
    ...a,
    apiLoad: b,
    churn: c.map(({ slowest: _, ...numbers }) => numbers),
    targets: {
      aggregatorToPublishedMs: "≤ 2000 (10,000 templates + 2,000 ConfigMaps)",
      nodePeakOverIdle: "≤ 1.10 (peak from spawn through pulling the whole set / idle RSS on it)",
      nodeStartBytesOverSet: "≤ 2",
      installBytesRatio: "≥ 100 at N = 1,000",
      churnP99Ms:
        `≤ 100 (split: at ${scale.churnSlowRate}/s with the default interval; at 50/s with --publish-interval=50ms, which the default 1s bounds by design)`,
    },
    met: a.aggregatorToPublishedMs <= 2_000 && a.nodePeakOverIdle <= 1.1 &&
      a.nodeStartBytesOverSet <= 2 &&
      (options.quick || biggest.installBytesRatio >= 100) &&
      slow !== undefined && slow.missed === 0 && slow.p99Ms <= 100 &&
      fastShortInterval !== undefined && fastShortInterval.missed === 0 &&
      fastShortInterval.p99Ms <= 100,
    loadBefore,
    loadAfter: machineLoad(),
  };
  printTable("Scenario 8: split layout beside --role=all", [
    ["images / shards / set bytes", `${a.images} / ${a.shards} / ${a.publishedSetBytes}`],
    [
      "all: spawn → synced",
      `${a.allSyncMs} ms, peak ${a.allPeakMiB} MiB, read ${a.allReadBytes} B`,
    ],
    [
      "aggregator: spawn → published",
      `${a.aggregatorToPublishedMs} ms, peak ${a.aggregatorPeakMiB} MiB`,
    ],
    [
      "node: bytes read at start",
      `${a.nodeReadBytesAtStart} B (${a.nodeStartBytesOverSet} × the set; set lists ${a.nodeReadSetBytes} B)`,
    ],
    [
      `node (${a.nodeFlags}): peak / idle RSS on the set`,
      `${a.nodePeakMiB} / ${a.nodeIdleMiB} MiB (${a.nodePeakOverIdle}); ${a.nodeImagesPresent} images present ${a.nodeSettledMs} ms after spawn`,
    ],
    [
      "node: peak / peak on an empty set",
      `${a.nodePeakMiB} / ${a.nodeEmptySetPeakMiB} MiB (${a.nodePeakOverEmptySet})`,
    ],
    [
      `node: peak / peak on a ${SMALL_SET}-image set`,
      `${a.nodePeakMiB} / ${a.nodeSmallSetPeakMiB} MiB (${a.nodePeakOverSmallSet})`,
    ],
    ...(a.nodeNoV8FlagsPeakMiB === undefined ? [] : [[
      "node, no V8 flags: peak / idle RSS on the set",
      `${a.nodeNoV8FlagsPeakMiB} / ${a.nodeNoV8FlagsIdleMiB} MiB (${a.nodeNoV8FlagsPeakOverIdle})`,
    ] as [string, string]]),
    ...b.flatMap((r): [string, string][] => [
      [
        `N=${r.nodes} install: all / split`,
        `${r.allInstallBytes} B ${r.allInstallRequests} req / ${r.splitInstallBytes} B ${r.splitInstallRequests} req (ratio ${r.installBytesRatio})`,
      ],
      [
        `N=${r.nodes} idle per hour: all / split`,
        `${r.allIdleBytesPerHour} B ${r.allIdleRequestsPerHour} req / ${r.splitIdleBytesPerHour} B ${r.splitIdleRequestsPerHour} req`,
      ],
    ]),
    ...c.map((r): [string, string] => [
      `churn ${r.layout} at ${r.ratePerSecond}/s${
        r.layout === "split" ? `, --publish-interval=${r.publishInterval}` : ""
      }: p50 / p99 / max`,
      `${r.p50Ms} / ${r.p99Ms} / ${r.maxMs} ms (${r.measured} measured, ${r.missed} missed)`,
    ]),
    ["load before / after", `${loadBefore} / ${result.loadAfter}`],
  ]);
  return result;
}
