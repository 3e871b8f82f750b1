/**
 * Scenario 10, the tag ledger (#16): N nodes, T tags pulled with `Always`,
 * every node's simulated kubelet pulling from one fake registry that counts
 * manifest requests (one per pull of a tag). For `--role=all` (every node
 * checks every tag each period) and for the split layout with the ledger
 * (one canary per tag), side by side in one run:
 *
 * - manifest requests and pull pods per unchanged period, after install;
 * - then one tag moves: the time until every node has pulled the new digest.
 *
 * `all` is measured on a few in-process daemons and scaled to N (each `all`
 * daemon checks every tag itself, whatever N), as scenario 8 does.
 *
 * @module
 */
import {
  type Cluster,
  type InProcessDaemon,
  machineLoad,
  NAMESPACE,
  PART_OF,
  printTable,
  round,
  sleep,
  startCluster,
  startInProcessDaemon,
  until,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";
import { loadConfig } from "../config/config.ts";
import { runDaemon } from "../daemon.ts";
import { nullLogger } from "../log/logger.ts";
import type { AggregatorParts } from "../aggregator.ts";
import { parseReference } from "../images/reference.ts";

/** The size of one run of scenario 10. */
export interface LedgerScale {
  nodes: number;
  tags: number;
  periodMs: number;
  periods: number;
  allSamples: number;
}

/** Scale of scenario 10. */
export function ledgerScale(quick: boolean): LedgerScale {
  return quick
    ? { nodes: 20, tags: 20, periodMs: 4_000, periods: 3, allSamples: 2 }
    : { nodes: 100, tags: 100, periodMs: 15_000, periods: 3, allSamples: 3 };
}

interface ManifestRequest {
  readonly ref: string;
  readonly node: string;
  readonly digest: string;
  readonly at: number;
}

/** The registry every kubelet pulls from: tag → digest, and every manifest request. */
function fakeRegistry(cluster: Cluster, nodes: readonly string[], tags: readonly string[]) {
  const digests = new Map(
    tags.map((t, i) => [t, `sha256:${(i + 1).toString(16).padStart(64, "0")}`]),
  );
  const requests: ManifestRequest[] = [];
  for (const node of nodes) {
    cluster.server.kubelet(node).setPullHook((image) => {
      const { domain, path, tag } = parseReference(image);
      const ref = `${domain}/${path}:${tag}`;
      const digest = digests.get(ref)!;
      requests.push({ ref, node, digest, at: performance.now() });
      return Promise.resolve({ imageID: `${domain}/${path}@${digest}` });
    });
  }
  return { digests, requests };
}

function podCreations(cluster: Cluster): number {
  return cluster.server.requests.entries().filter((r) =>
    r.verb === "create" && r.resource === "pods"
  ).length;
}

/** Runs scenario 10 (at `scale`, by default the full or quick one). */
export async function ledger(
  options: ScenarioOptions,
  scale: ReturnType<typeof ledgerScale> = ledgerScale(options.quick),
): Promise<ScenarioResult> {
  const loadBefore = machineLoad();
  const names = Array.from({ length: scale.nodes }, (_, i) => `node-${String(i).padStart(3, "0")}`);
  const tags = Array.from(
    { length: scale.tags },
    (_, i) => `registry.example.com/bench/app-${i}:v1`,
  );
  const cluster = await startCluster({ nodes: names });
  const { server } = cluster;
  server.create("configmaps", {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace: "default", name: "tags", labels: PART_OF },
    data: { images: JSON.stringify(tags) },
  });
  const registry = fakeRegistry(cluster, names, tags);
  const period = `--resync-period=${scale.periodMs / 1000}s`;
  const window = scale.periodMs * scale.periods;
  const stops: (() => Promise<void>)[] = [];
  try {
    // --role=all: a few daemons; per node, times N.
    const alls: InProcessDaemon[] = [];
    for (let i = 0; i < scale.allSamples; i++) {
      alls.push(await startInProcessDaemon(cluster, names[i], { args: [period] }));
    }
    await until(() => alls.every((d) => d.parts.puller.allPresent()), "all: present", {
      timeoutMs: 300_000,
    });
    let requests = registry.requests.length;
    let pods = podCreations(cluster);
    await sleep(window);
    const allPerPeriod = (registry.requests.length - requests) / scale.allSamples *
      scale.nodes / scale.periods;
    const allPodsPerPeriod = (podCreations(cluster) - pods) / scale.allSamples * scale.nodes /
      scale.periods;
    for (const d of alls) await d.stop();

    // The split layout with the ledger: one aggregator, N node daemons.
    const { config } = loadConfig([
      "--role=aggregator",
      `--pod-namespace=${NAMESPACE}`,
      "--pod-name=aggregator-0",
      "--metrics-bind-address=0",
      "--status-bind-address=0",
    ], () => undefined);
    const controller = new AbortController();
    let aggregator: AggregatorParts | undefined;
    const running = runDaemon(config, {
      kubeConfig: server.kubeConfig(),
      log: nullLogger,
      onAggregatorStarted: (p) => aggregator = p,
    }, controller.signal);
    stops.push(async () => {
      controller.abort();
      await running;
    });
    await until(() => (aggregator?.publisher.status().publishes ?? 0) > 0, "published", {
      timeoutMs: 120_000,
    });
    const daemons: InProcessDaemon[] = [];
    for (let i = 0; i < names.length; i += 25) {
      daemons.push(
        ...await Promise.all(
          names.slice(i, i + 25).map((n) =>
            startInProcessDaemon(cluster, n, { args: ["--role=node", period] })
          ),
        ),
      );
    }
    for (const d of daemons) stops.push(() => d.stop());
    const installStart = performance.now();
    await until(
      () =>
        daemons.every((d) => d.parts.puller.allPresent()) &&
        aggregator!.ledger.entries().every((e) => e.digest !== undefined),
      "split: installed",
      { timeoutMs: 1_800_000, intervalMs: 100 },
    );
    const installMs = performance.now() - installStart;
    // One period for the last install pulls to settle into the resync rhythm.
    await sleep(scale.periodMs);
    requests = registry.requests.length;
    pods = podCreations(cluster);
    await sleep(window);
    const splitPerPeriod = (registry.requests.length - requests) / scale.periods;
    const splitPodsPerPeriod = (podCreations(cluster) - pods) / scale.periods;

    // One tag moves.
    const moved = tags[0];
    const newDigest = `sha256:${"f".repeat(64)}`;
    const movedAt = performance.now();
    registry.digests.set(moved, newDigest);
    const holds = () =>
      new Set(
        registry.requests.filter((r) => r.ref === moved && r.digest === newDigest).map((r) =>
          r.node
        ),
      );
    // Split the wait: the canary's next check (up to a period), the ledger
    // learning it, then every other node pulling it.
    let ledgerAt: number | undefined;
    await until(
      () => {
        if (ledgerAt === undefined && aggregator!.ledger.entry(moved)?.digest === newDigest) {
          ledgerAt = performance.now();
        }
        return holds().size === names.length;
      },
      "every node holds the moved digest",
      {
        timeoutMs: 10 * scale.periodMs + 120_000,
        intervalMs: 20,
      },
    );
    const movedConvergeMs = Math.round(performance.now() - movedAt);
    const firstNewPull = new Map<string, number>();
    for (const r of registry.requests) {
      if (r.ref === moved && r.digest === newDigest && !firstNewPull.has(r.node)) {
        firstNewPull.set(r.node, r.at);
      }
    }
    const after = [...firstNewPull.values()].map((at) => at - movedAt).sort((a, b) => a - b);
    const movedLedgerMs = Math.round((ledgerAt ?? NaN) - movedAt);
    const movedNodesP50Ms = Math.round(after[Math.floor(after.length / 2)]);
    const ratio = round(allPerPeriod / splitPerPeriod, 1);
    const result: ScenarioResult = {
      scenario: "ledger",
      quick: options.quick,
      nodes: scale.nodes,
      tags: scale.tags,
      periodMs: scale.periodMs,
      allManifestRequestsPerPeriod: Math.round(allPerPeriod),
      allPullPodsPerPeriod: Math.round(allPodsPerPeriod),
      splitManifestRequestsPerPeriod: round(splitPerPeriod, 1),
      splitPullPodsPerPeriod: round(splitPodsPerPeriod, 1),
      requestRatio: ratio,
      splitInstallMs: Math.round(installMs),
      movedConvergeMs,
      movedLedgerMs,
      movedNodesP50Ms,
      targets: {
        splitManifestRequestsPerPeriod: `≤ ${scale.tags}`,
        movedConvergeMs: `≤ one period (${scale.periodMs} ms) plus pull time`,
      },
      met: splitPerPeriod <= scale.tags * 1.05,
      loadBefore,
      loadAfter: machineLoad(),
    };
    printTable("Scenario 10: tag ledger beside --role=all", [
      ["nodes × tags, period", `${scale.nodes} × ${scale.tags}, ${scale.periodMs} ms`],
      [
        "manifest requests / period: all / ledger",
        `${result.allManifestRequestsPerPeriod} / ${result.splitManifestRequestsPerPeriod} (ratio ${ratio})`,
      ],
      [
        "pull pods / period: all / ledger",
        `${result.allPullPodsPerPeriod} / ${result.splitPullPodsPerPeriod}`,
      ],
      [
        "moved tag: in the ledger / half the nodes / every node after",
        `${movedLedgerMs} / ${movedNodesP50Ms} / ${movedConvergeMs} ms`,
      ],
      ["load before / after", `${loadBefore} / ${result.loadAfter}`],
    ]);
    return result;
  } finally {
    for (const stop of stops.reverse()) await stop();
    await cluster.close();
  }
}
