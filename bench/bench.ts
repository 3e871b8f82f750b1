/**
 * `deno task bench [--quick] [--only=1,3] [--json=FILE] [--daemon-flags="…"]`: runs the benchmark
 * scenarios against the fake API server and prints, for each, a readable
 * table and one JSON line (prefixed `RESULT `), and a closing summary.
 *
 * `--quick` is the small run CI can afford (under a minute); the full run
 * takes several minutes (scenario 3 idles for five of them). `--daemon-flags`
 * adds Deno flags to the daemon child processes (scenarios 1–4), e.g.
 * `--daemon-flags=--v8-flags=--optimize-for-size` or `--cpu-prof`.
 *
 * @module
 */
import { apiLoad } from "./api_load.ts";
import { churn } from "./churn.ts";
import { criOverhead } from "./cri_overhead.ts";
import { machineLoad, print } from "./harness.ts";
import { initialSync } from "./initial_sync.ts";
import { ledger } from "./ledger.ts";
import { manyNodes } from "./many_nodes.ts";
import { memoryByBuild } from "./memory.ts";
import { resync } from "./resync.ts";
import { split } from "./split.ts";
import { warmUp } from "./warm_up.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

/** The scenarios, numbered as in issue #9. */
const SCENARIOS: readonly [
  number,
  string,
  (o: ScenarioOptions) => Promise<ScenarioResult>,
][] = [
  [1, "initial sync", initialSync],
  [2, "churn", churn],
  [3, "API load", apiLoad],
  [4, "resync", resync],
  [5, "many nodes", manyNodes],
  [6, "CRI overhead", criOverhead],
  [7, "memory by build", memoryByBuild],
  [8, "split layout", split],
  [9, "warm-up", warmUp],
  [10, "tag ledger", ledger],
];

/** Parsed command line of the benchmark. */
export interface BenchArgs {
  quick: boolean;
  only?: Set<number>;
  json?: string;
  /** Extra Deno flags for daemon child processes, space-separated on the command line. */
  daemonFlags?: string[];
}

/**
 * Parses the benchmark's flags.
 *
 * @throws {TypeError} on an unknown flag or scenario number.
 */
export function parseBenchArgs(args: readonly string[]): BenchArgs {
  const out: BenchArgs = { quick: false };
  for (const arg of args) {
    if (arg === "--quick") out.quick = true;
    else if (arg.startsWith("--only=")) {
      out.only = new Set(arg.slice("--only=".length).split(",").map(Number));
      for (const n of out.only) {
        if (!SCENARIOS.some(([id]) => id === n)) {
          throw new TypeError(`Unknown scenario "${n}" in --only: use 1 to ${SCENARIOS.length}`);
        }
      }
    } else if (arg.startsWith("--json=")) out.json = arg.slice("--json=".length);
    else if (arg.startsWith("--daemon-flags=")) {
      out.daemonFlags = arg.slice("--daemon-flags=".length).split(" ").filter((f) => f !== "");
    } else {
      throw new TypeError(
        `Unknown flag "${arg}": use --quick, --only=1,2, --json=FILE or --daemon-flags="…"`,
      );
    }
  }
  return out;
}

async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    const dirty = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    const sha = new TextDecoder().decode(out.stdout).trim();
    return new TextDecoder().decode(dirty.stdout).trim() ? `${sha}+dirty` : sha;
  } catch {
    return "unknown";
  }
}

/** Runs the selected scenarios; returns the exit code (1 when a scenario failed to run). */
async function runBench(args: BenchArgs): Promise<number> {
  const commit = await gitCommit();
  const started = performance.now();
  print(
    `image-cache-daemon benchmarks${args.quick ? " (--quick)" : ""}: commit ${commit}, ` +
      `load ${machineLoad()}, ${Deno.build.os}/${Deno.build.arch}, deno ${Deno.version.deno}`,
  );
  const results: ScenarioResult[] = [];
  let failed = 0;
  for (const [id, name, run] of SCENARIOS) {
    if (args.only && !args.only.has(id)) continue;
    const t0 = performance.now();
    let result: ScenarioResult;
    try {
      result = await run({ quick: args.quick, denoFlags: args.daemonFlags });
    } catch (error) {
      failed++;
      result = { scenario: name, error: (error as Error).stack ?? String(error) };
      print(`\nScenario ${id} (${name}) failed: ${(error as Error).message}`);
    }
    result = {
      id,
      ...result,
      // Per scenario: child daemons load the working tree as it is when they start.
      commit: await gitCommit(),
      daemonFlags: args.daemonFlags,
      wallMs: Math.round(performance.now() - t0),
    };
    results.push(result);
    print(`RESULT ${JSON.stringify(result)}`);
  }
  print("\nSummary");
  print("-------");
  for (const r of results) {
    const verdict = r.error !== undefined
      ? "ERROR"
      : r.skipped !== undefined
      ? `skipped: ${r.skipped}`
      : r.met === undefined
      ? "measured"
      : r.met
      ? "target met"
      : "TARGET MISSED";
    print(
      `  ${r.id}. ${String(r.scenario).padEnd(14)} ${verdict} (${
        ((r.wallMs as number) / 1000).toFixed(1)
      } s)`,
    );
  }
  print(`  total ${((performance.now() - started) / 1000).toFixed(1)} s, load ${machineLoad()}`);
  if (args.json) {
    await Deno.writeTextFile(args.json, results.map((r) => JSON.stringify(r)).join("\n") + "\n");
  }
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(Deno.args);
  } catch (error) {
    Deno.stderr.writeSync(new TextEncoder().encode(`bench: ${(error as Error).message}\n`));
    Deno.exit(2);
  }
  Deno.exit(await runBench(args));
}
