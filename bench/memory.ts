/**
 * Scenario 7, memory by build: the daemon's peak RSS on an empty cluster
 * (the node daemon's fixed cost, first start included) and at 10,000
 * WorkflowTemplates, with its sync time, for each build variant side by side
 * in one run, interleaved round by round so the machine's load falls on all
 * of them alike. Every number is also given as a ratio to the first variant,
 * today's build.
 *
 * @module
 */
import { configMaps, imagePool, workflowTemplates } from "./generate.ts";
import {
  daemonArgs,
  idleDenoPeakKiB,
  machineLoad,
  NAMESPACE,
  PART_OF,
  print,
  round,
  sleep,
  spawnDaemonChild,
  startCluster,
  syncedPeakKiB,
} from "./harness.ts";
import { expectedImages, initialSyncScale } from "./initial_sync.ts";
import { listParseCost } from "./list_parse.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";
import { BUNDLE_ENTRY } from "../testing/daemon_process.ts";
import { SHIPPED_V8_FLAGS } from "../build/v8_flags.ts";
import { encodeShards } from "../publication/published_set.ts";

const NODE = "node-1";
const ROOT = new URL("../", import.meta.url);

/**
 * Today's build, the baseline: the last commit before the bundle and the
 * streamed lists (issue #19), run from source as `deno task start` ran it.
 */
export const BASELINE_REV = "73f64cd";

/** One way of building and running the daemon. */
export interface Variant {
  readonly name: string;
  /** Entry point, relative to `cwd`. */
  readonly entry: string;
  readonly denoFlags: readonly string[];
  /** Working directory (another checkout for the baseline). */
  readonly cwd?: string;
}

/** The V8 flag sets compared on the shipped bundle in a full run. */
export const FLAG_CANDIDATES: readonly (readonly string[])[] = [
  ["--max-semi-space-size=2"],
  ["--max-semi-space-size=2", "--heap-growing-percent=20"],
  ["--optimize-for-size", "--max-semi-space-size=2"],
];

function v8(flags: readonly string[]): string[] {
  return flags.length ? [`--v8-flags=${flags.join(",")}`] : [];
}

/** Extracts `rev` of this repository into a temporary directory; undefined if git cannot. */
async function checkout(rev: string): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "icd-baseline-" });
  const archive = await new Deno.Command("sh", {
    args: ["-c", `git archive --format=tar ${rev} | tar -x -C "${dir}"`],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!archive.success) {
    await Deno.remove(dir, { recursive: true });
    return undefined;
  }
  return dir;
}

interface Sample {
  emptyPeakKiB: number;
  peakAtSyncKiB: number;
  peakKiB: number;
  syncMs: number;
  complete: boolean;
}

/** Runs scenario 7. */
export async function memoryByBuild(options: ScenarioOptions): Promise<ScenarioResult> {
  const scale = initialSyncScale(options.quick);
  const pullMs = 3_000;
  const rounds = options.quick ? 1 : 2;
  const extra = options.denoFlags ?? [];
  const baselineDir = options.quick ? undefined : await checkout(BASELINE_REV);
  const variants: Variant[] = [];
  if (baselineDir) {
    variants.push({
      name: `today (${BASELINE_REV}, main.ts)`,
      entry: "main.ts",
      denoFlags: [],
      cwd: baselineDir,
    });
  }
  variants.push(
    { name: "source (main.ts), streamed lists", entry: "main.ts", denoFlags: [] },
    // --quick keeps CI short: today's source against the shipped build only.
    ...(options.quick ? [] : [{ name: "bundle, no V8 flags", entry: BUNDLE_ENTRY, denoFlags: [] }]),
    {
      name: `bundle + ${SHIPPED_V8_FLAGS.join(" ")} (shipped)`,
      entry: BUNDLE_ENTRY,
      denoFlags: v8(SHIPPED_V8_FLAGS),
    },
  );
  if (!options.quick) {
    for (const flags of FLAG_CANDIDATES) {
      variants.push({
        name: `bundle + ${flags.join(" ")}`,
        entry: BUNDLE_ENTRY,
        denoFlags: v8(flags),
      });
    }
  }
  const role = await nodeRoleFlag();

  const pool = imagePool(scale.images);
  const templates = workflowTemplates({ count: scale.templates, pool });
  const maps = configMaps({ count: scale.configMaps, pool, labels: PART_OF });
  // What "complete" means: the same extraction, offline, before any timing.
  const expected = expectedImages(templates, maps);
  const full = await startCluster({ nodes: [NODE] });
  const empty = await startCluster({ nodes: [NODE] });
  // A node daemon syncs once the aggregator's set is published: an empty one
  // here, so it measures the node daemon's own cost.
  if (role.length > 0) {
    for (const shard of encodeShards([], { namespace: NAMESPACE, generation: 1 })) {
      empty.server.create("configmaps", shard);
    }
  }
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  const loadBefore = machineLoad();
  let idleKiB = NaN, coldKiB = NaN, warmKiB = NaN;
  try {
    for (const obj of templates) full.server.create("workflowtemplates", obj);
    for (const obj of maps) full.server.create("configmaps", obj);
    idleKiB = await idleDenoPeakKiB();
    // The first start of the shipped bundle with an empty Deno cache (a pod
    // whose image did not warm it), then the same again (a warmed cache).
    const denoDir = await Deno.makeTempDir({ prefix: "icd-deno-dir-" });
    try {
      const shipped = variants.find((v) => v.name.endsWith("(shipped)"))!;
      coldKiB = await emptyPeak(empty, shipped, role, extra, { DENO_DIR: denoDir });
      warmKiB = await emptyPeak(empty, shipped, role, extra, { DENO_DIR: denoDir });
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
    for (let r = 0; r < rounds; r++) {
      // Alternate the order so a load trend does not favour one variant.
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        const emptyPeakKiB = await emptyPeak(empty, variant, role, extra);
        // --quick (CI) measures the fixed cost only; scenario 1 covers a quick sync.
        const loaded = options.quick
          ? { peakAtSyncKiB: NaN, peakKiB: NaN, syncMs: NaN, complete: true }
          : await syncPeak(full, variant, extra, pullMs, expected.size);
        samples.get(variant.name)!.push({ emptyPeakKiB, ...loaded });
      }
    }
  } finally {
    await full.close();
    await empty.close();
    if (baselineDir) await Deno.remove(baselineDir, { recursive: true }).catch(() => {});
  }

  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const rows = variants.map((v) => {
    const s = samples.get(v.name)!;
    return {
      variant: v.name,
      emptyPeakMiB: round(median(s.map((x) => x.emptyPeakKiB)) / 1024),
      peakAtSyncMiB: round(median(s.map((x) => x.peakAtSyncKiB)) / 1024),
      peakMiB: round(median(s.map((x) => x.peakKiB)) / 1024),
      syncMs: round(median(s.map((x) => x.syncMs))),
      complete: s.every((x) => x.complete),
      samples: s.length,
    };
  });
  const base = rows[0];
  const withRatios = rows.map((row) => ({
    ...row,
    emptyRatio: round(row.emptyPeakMiB / base.emptyPeakMiB, 2),
    peakRatio: round(row.peakMiB / base.peakMiB, 2),
    syncRatio: round(row.syncMs / base.syncMs, 2),
  }));
  const shipped = withRatios.find((r) => r.variant.endsWith("(shipped)"))!;
  const today = baselineDir ? withRatios[0] : undefined;
  const nodeTargetMiB = 100;
  const allTargetMiB = 140;
  const firstStartMiB = round(Math.max(coldKiB, shipped.emptyPeakMiB * 1024) / 1024);
  const met = firstStartMiB <= nodeTargetMiB &&
    (options.quick || shipped.peakMiB <= allTargetMiB) &&
    (today === undefined || shipped.syncMs <= today.syncMs) && shipped.complete;
  print(
    `\nScenario 7: memory by build (${scale.templates} WorkflowTemplates, ${rounds} round(s), ` +
      `medians; ratios to "${base.variant}"; node daemon run with ${
        role.join(" ") || "--role=all"
      })`,
  );
  print(
    "  variant                                               | empty MiB (x) | peak at sync | peak incl. pulls (x) | sync ms (x)",
  );
  for (const r of withRatios) {
    print(
      `  ${r.variant.padEnd(53)} | ${String(r.emptyPeakMiB).padStart(6)} (${
        r.emptyRatio.toFixed(2)
      }) | ${String(r.peakAtSyncMiB).padStart(12)} | ${String(r.peakMiB).padStart(13)} (${
        r.peakRatio.toFixed(2)
      }) | ${String(r.syncMs).padStart(6)} (${r.syncRatio.toFixed(2)})${
        r.complete ? "" : " INCOMPLETE"
      }`,
    );
  }
  print(
    `  shipped bundle, first start: empty Deno cache ${round(coldKiB / 1024)} MiB, warmed ${
      round(warmKiB / 1024)
    } MiB; idle Deno ${round(idleKiB / 1024)} MiB`,
  );
  const bytes = templates.reduce((n, obj) => n + JSON.stringify(obj).length, 0);
  const parse = listParseCost(bytes);
  print(
    `  list pages item by item vs one JSON.parse per page (${parse.pageBytes} B pages, this process): ` +
      `${parse.splitMsPerMB} vs ${parse.wholeMsPerMB} ms/MB (x${parse.ratio}), ` +
      `+${parse.extraMs} ms CPU for ${
        round(bytes / 1e6)
      } MB of WorkflowTemplates (sync target 2000 ms)`,
  );
  print(`  load before / after: ${loadBefore} / ${machineLoad()}`);
  return {
    scenario: "memory-by-build",
    quick: options.quick,
    workflowTemplates: scale.templates,
    rounds,
    nodeRole: role.join(" ") || "--role=all (no --role flag yet)",
    variants: withRatios,
    idleDenoPeakMiB: round(idleKiB / 1024),
    shippedFirstStartColdCacheMiB: round(coldKiB / 1024),
    shippedFirstStartWarmCacheMiB: round(warmKiB / 1024),
    listParse: parse,
    targets: {
      nodePeakMiB: nodeTargetMiB,
      allPeakAt10kMiB: allTargetMiB,
      syncNoSlowerThanToday: true,
    },
    met,
    loadBefore,
    loadAfter: machineLoad(),
  };
}

/** `--role=node` when the daemon has that flag, else nothing (`all` on an empty cluster). */
async function nodeRoleFlag(): Promise<string[]> {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=daemon", "--quiet", BUNDLE_ENTRY, "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  return /--role\b/.test(new TextDecoder().decode(help.stdout)) ? ["--role=node"] : [];
}

/**
 * The daemon's arguments for `variant`: the baseline checkout predates
 * `--role` and `--status-bind-address` (its `all` on an empty cluster is the
 * node daemon of its day), so they are left out for it.
 */
function argsFor(variant: Variant, args: readonly string[]): string[] {
  if (variant.cwd === undefined) return [...args];
  return args.filter((a) => !/^--(role|status-bind-address)=/.test(a));
}

/** Peak RSS of `variant` on `cluster` (empty), a second after it synced. */
export async function emptyPeak(
  cluster: Awaited<ReturnType<typeof startCluster>>,
  variant: Variant,
  args: readonly string[],
  extra: readonly string[],
  env?: Record<string, string>,
): Promise<number> {
  return await syncedPeakKiB(cluster, argsFor(variant, daemonArgs(cluster, NODE, args)), {
    entry: variant.entry,
    denoFlags: [...variant.denoFlags, ...extra],
    cwd: variant.cwd,
    env,
  });
}

/** Peak RSS and sync time of `variant` on a loaded `cluster`, then after `pullMs` of pulling. */
export async function syncPeak(
  cluster: Awaited<ReturnType<typeof startCluster>>,
  variant: Variant,
  extra: readonly string[],
  pullMs: number,
  expectedImages: number,
): Promise<Omit<Sample, "emptyPeakKiB">> {
  const child = await spawnDaemonChild(cluster, argsFor(variant, daemonArgs(cluster, NODE)), {
    entry: variant.entry,
    denoFlags: [...variant.denoFlags, ...extra],
    cwd: variant.cwd,
  });
  try {
    const synced = await child.waitForLog("All sources synced");
    const peakAtSyncKiB = child.memory()?.peakKiB ?? NaN;
    await sleep(pullMs);
    return {
      peakAtSyncKiB,
      peakKiB: child.memory()?.peakKiB ?? NaN,
      syncMs: synced.at - child.spawnedAt,
      complete: synced.fields.images === expectedImages,
    };
  } finally {
    await child.stop();
  }
}
