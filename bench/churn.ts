/**
 * Scenario 2, churn: WorkflowTemplate updates at a steady rate, each adding
 * or removing one image; latency from the fake API server emitting the watch
 * event to the pull pod for the added image existing in the API server.
 *
 * Measurement: the fake server's store emits watch events synchronously
 * inside `update()`, so the clock starts just before that call. It stops when
 * the store commits a pod in the daemon's namespace whose `main` container
 * runs the image (the daemon's create request has been answered by then, so
 * both network hops and the daemon's whole reaction are inside the number).
 * The daemon runs as its own process, as in production, so its event loop is
 * not shared with the fake server's. The first two seconds of churn run at the
 * same rate but are not measured: they warm up the JIT of both processes, a
 * one-time cost of a daemon's life rather than steady-state churn.
 *
 * @module
 */
import { normalizeReference } from "../images/reference.ts";
import {
  daemonArgs,
  machineLoad,
  NAMESPACE,
  percentile,
  printTable,
  round,
  sleep,
  spawnDaemonChild,
  startCluster,
} from "./harness.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

const NODE = "node-1";
const OBJECTS = 100;
const BASE_IMAGES = 50;

/** Scale of scenario 2. */
function churnScale(quick: boolean): {
  ratePerSecond: number;
  warmupMs: number;
  durationMs: number;
  maxConcurrentPulls: number;
} {
  return {
    ratePerSecond: 50,
    warmupMs: 2_000,
    durationMs: quick ? 8_000 : 60_000,
    maxConcurrentPulls: 10,
  };
}

function template(name: string, base: readonly string[], churn: readonly string[]) {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplate",
    metadata: { namespace: "churn", name },
    spec: {
      entrypoint: "main",
      templates: [
        {
          name: "main",
          steps: [[{ name: "run", template: "run" }], [{ name: "extra", template: "extra" }]],
        },
        { name: "run", container: { image: base[0], command: ["/bin/run"] } },
        {
          name: "extra",
          containerSet: {
            containers: [base[1], ...churn].map((image, i) => ({
              name: `c${i}`,
              image,
              command: ["/bin/step"],
            })),
          },
        },
      ],
    },
  };
}

/** The layout a churn run measures. */
export type ChurnLayout = "all" | "split";

/** One churn run's numbers. */
export interface ChurnRun {
  layout: ChurnLayout;
  ratePerSecond: number;
  updates: number;
  warmupUpdates: number;
  achievedRatePerSecond: number;
  adds: number;
  removes: number;
  measured: number;
  missed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  pacingLagMaxMs: number;
  /** The slowest samples: [ms into the run, ms]. */
  slowest: [number, number][];
}

/** What {@linkcode measureChurn} varies. */
export interface ChurnOptions {
  /** `all`: one daemon process; `split`: an aggregator process and a `--role=node` process. */
  layout: ChurnLayout;
  ratePerSecond: number;
  warmupMs: number;
  durationMs: number;
  maxConcurrentPulls: number;
  denoFlags?: string[];
  /** Extra flags for the aggregator (split layout). */
  aggregatorArgs?: string[];
}

/**
 * Edits WorkflowTemplates at `ratePerSecond` and measures, for each added
 * image, the time from the edit to its pull pod existing on the node.
 */
export async function measureChurn(o: ChurnOptions): Promise<ChurnRun> {
  const cluster = await startCluster({ nodes: [NODE] });
  const { server } = cluster;
  const children: { stop(): Promise<unknown> }[] = [];
  try {
    const base = (i: number) => [
      `registry.example.com/base/app-${i % BASE_IMAGES}:1.0`,
      `registry.example.com/base/app-${(i + 1) % BASE_IMAGES}:1.0`,
    ];
    const churnImages: string[][] = [];
    for (let i = 0; i < OBJECTS; i++) {
      churnImages.push([]);
      server.create("workflowtemplates", template(`churn-${i}`, base(i), []));
    }
    const pulls = [`--max-concurrent-pulls=${o.maxConcurrentPulls}`];
    if (o.layout === "split") {
      children.push(
        await spawnDaemonChild(cluster, [
          "--role=aggregator",
          `--pod-namespace=${NAMESPACE}`,
          "--pod-name=aggregator-0",
          "--metrics-bind-address=0",
          "--status-bind-address=0",
          ...(o.aggregatorArgs ?? []),
        ], { denoFlags: o.denoFlags }),
      );
    }
    const child = await spawnDaemonChild(
      cluster,
      daemonArgs(cluster, NODE, o.layout === "split" ? ["--role=node", ...pulls] : pulls),
      { denoFlags: o.denoFlags },
    );
    children.push(child);
    const latencies: number[] = [];
    let missed = 0;
    let sent = 0;
    let adds = 0;
    let removes = 0;
    let lagMaxMs = 0;
    const samples: [number, number][] = [];
    await child.waitForLog("Every desired image is present on this node");
    const waits: Promise<void>[] = [];
    const interval = 1000 / o.ratePerSecond;
    const warmup = Math.round(o.warmupMs / interval);
    const total = warmup + Math.round(o.durationMs / interval);
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      // Pace against absolute times so a slow tick does not lower the rate.
      const due = start + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      lagMaxMs = Math.max(lagMaxMs, performance.now() - due);
      const k = i % OBJECTS;
      const list = churnImages[k];
      const adding = Math.floor(i / OBJECTS) % 2 === 0 || list.length === 0;
      let added: string | undefined;
      if (adding) {
        added = `registry.example.com/churn/obj-${k}:rev-${i}`;
        list.push(added);
        adds++;
      } else {
        list.shift();
        removes++;
      }
      if (added !== undefined && i >= warmup) {
        const ref = normalizeReference(added);
        const t0 = performance.now();
        const seen = server.waitFor(
          "pods",
          (pod) =>
            ((pod.spec as { containers?: { image?: string }[] })?.containers ?? [])
              .some((c) => c.image === ref),
          { namespace: NAMESPACE, timeoutMs: 30_000 },
        );
        waits.push(seen.then(
          () => {
            const ms = performance.now() - t0;
            latencies.push(ms);
            samples.push([round(t0 - start, 0), round(ms)]);
          },
          () => {
            missed++;
          },
        ));
      }
      server.update("workflowtemplates", template(`churn-${k}`, base(k), list));
      sent++;
    }
    const elapsedMs = performance.now() - start;
    await Promise.all(waits);
    latencies.sort((a, b) => a - b);
    return {
      layout: o.layout,
      ratePerSecond: o.ratePerSecond,
      updates: sent,
      warmupUpdates: warmup,
      achievedRatePerSecond: round(sent / (elapsedMs / 1000)),
      adds,
      removes,
      measured: latencies.length,
      missed,
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(latencies[latencies.length - 1] ?? NaN),
      pacingLagMaxMs: round(lagMaxMs),
      // When the slowest happened (ms into the run), to tell warm-up from steady state.
      slowest: samples.sort((a, b) => b[1] - a[1]).slice(0, 8),
    };
  } finally {
    for (const child of children.reverse()) await child.stop();
    await cluster.close();
  }
}

/** Runs scenario 2. */
export async function churn(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = churnScale(options.quick);
  const loadBefore = machineLoad();
  const run = await measureChurn({ layout: "all", ...scale, denoFlags: options.denoFlags });
  const { slowest, ...numbers } = run;
  const result: ScenarioResult = {
    scenario: "churn",
    quick: options.quick,
    ...numbers,
    maxConcurrentPulls: scale.maxConcurrentPulls,
    slowestAtMs: slowest,
    targets: { p99Ms: 50 },
    met: run.missed === 0 && run.p99Ms <= 50,
    loadBefore,
    loadAfter: machineLoad(),
  };
  printTable("Scenario 2: churn (watch event → pull pod created; daemon as a process)", [
    [
      `updates incl. ${scale.warmupMs / 1000} s warm-up (rate)`,
      `${run.updates} (${run.achievedRatePerSecond}/s), ${run.adds} add, ${run.removes} remove`,
    ],
    ["pulls measured / missed", `${run.measured} / ${run.missed}`],
    ["p50 / p99 / max", `${run.p50Ms} / ${run.p99Ms} / ${run.maxMs} ms (target p99 ≤ 50)`],
    ["--max-concurrent-pulls", scale.maxConcurrentPulls],
    ["bench pacing lag max", `${run.pacingLagMaxMs} ms`],
    ["slowest [ms into run, ms]", JSON.stringify(slowest.slice(0, 4))],
    ["load before / after", `${loadBefore} / ${result.loadAfter}`],
  ]);
  return result;
}
