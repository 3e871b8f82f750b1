/**
 * Scenario 6, CRI overhead: pulling an image from the local registry through
 * the daemon's CRI strategy (what the daemon does per image: ImageStatus,
 * PullImage, ImageStatus over the runtime's socket) against `ctr images pull`
 * of the same image, alternating, with every record of the image removed
 * (`ctr images rm --sync`, so its content is garbage-collected and each run
 * fetches every blob again) before every run.
 *
 * The image is built for the run: random layers, so no other image on the
 * runtime shares a blob with it (the shared test images do share theirs, and
 * a pull of present content would only resolve the manifest).
 *
 * Needs the containerd and registry that `sudo bash .ci/containerd.sh up`
 * starts (it writes `.ci/containerd.env`); without them it is skipped.
 *
 * @module
 */
import { nullLogger } from "../log/logger.ts";
import { CriPullStrategy } from "../puller/cri/cri_strategy.ts";
import { machineLoad, percentile, printTable, round } from "./harness.ts";
import { buildRandomImage, type BuiltImage, pushImage } from "./oci_image.ts";
import type { ScenarioOptions, ScenarioResult } from "./scenario.ts";

/** The test image: 3 layers of 8 MiB random bytes (24 MiB, incompressible). */
const LAYERS = 3;
const LAYER_BYTES = 8 * 1024 * 1024;

const ENV_FILE = new URL("../.ci/containerd.env", import.meta.url).pathname;

function readEnvFile(): Map<string, string> | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(ENV_FILE);
  } catch {
    return undefined;
  }
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = line.match(/^([A-Z_]+)=(.*)$/);
    if (match) vars.set(match[1], match[2]);
  }
  return vars;
}

async function ctr(
  socket: string,
  args: string[],
): Promise<{ ok: boolean; ms: number; err: string }> {
  const started = performance.now();
  const out = await new Deno.Command("ctr", {
    args: ["-n", "k8s.io", "--address", socket, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output().catch((error: Error) => ({
    success: false,
    stderr: new TextEncoder().encode(error.message),
  }));
  return {
    ok: out.success,
    ms: performance.now() - started,
    err: new TextDecoder().decode(out.stderr).trim(),
  };
}

function skipped(options: ScenarioOptions, reason: string): ScenarioResult {
  printTable("Scenario 6: CRI overhead", [["skipped", reason]]);
  return { scenario: "cri-overhead", quick: options.quick, skipped: reason };
}

/** Runs scenario 6 (skipped under `--quick` and without containerd). */
export async function criOverhead(options: ScenarioOptions): Promise<ScenarioResult> {
  if (options.quick) return skipped(options, "--quick");
  const env = readEnvFile();
  const socket = env?.get("ICD_CRI_SOCKET");
  const registry = env?.get("ICD_REGISTRY");
  if (!socket || !registry) return skipped(options, "no containerd (.ci/containerd.env absent)");
  const version = await ctr(socket, ["version"]);
  if (!version.ok) return skipped(options, `no containerd (${version.err.split("\n")[0]})`);

  const dir = await Deno.makeTempDir({ prefix: "icd-bench-image-" });
  let built: BuiltImage;
  const tag = `run-${Date.now().toString(36)}`;
  const image = `${registry}/icd-bench/random:${tag}`;
  try {
    built = await buildRandomImage(dir, {
      layers: LAYERS,
      layerBytes: LAYER_BYTES,
      architecture:
        ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ??
          Deno.build.arch,
    });
    await pushImage(dir, image);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Every record containerd keeps for it: the tag, repo@digest and the image ID.
  const records = [image, `${registry}/icd-bench/random@${built.digest}`, built.configDigest];
  const startupMs: number[] = [];

  const runs = 9;
  const strategy = new CriPullStrategy({ socket, log: nullLogger, timeoutMs: 60_000 });
  const loadBefore = machineLoad();
  const daemonMs: number[] = [];
  const ctrMs: number[] = [];
  const remove = async () => {
    for (const record of records) {
      const rm = await ctr(socket, ["images", "rm", "--sync", record]);
      if (!rm.ok && !/not found/i.test(rm.err)) throw new Error(`ctr images rm failed: ${rm.err}`);
    }
  };
  try {
    await strategy.start(AbortSignal.timeout(30_000));
    // One unmeasured round each warms the connection, the registry and the page cache.
    for (let i = -1; i < runs; i++) {
      const order = i % 2 === 0 ? ["daemon", "ctr"] : ["ctr", "daemon"];
      for (const which of order) {
        await remove();
        let ms: number;
        if (which === "daemon") {
          const started = performance.now();
          await strategy.pull(image, { signal: AbortSignal.timeout(60_000), refresh: false });
          ms = performance.now() - started;
        } else {
          const pulled = await ctr(socket, ["images", "pull", "--plain-http", image]);
          if (!pulled.ok) throw new Error(`ctr images pull failed: ${pulled.err}`);
          ms = pulled.ms;
          // What ctr's own process start and one round trip cost, for comparison.
          if (i >= 0) startupMs.push((await ctr(socket, ["version"])).ms);
        }
        if (i >= 0) (which === "daemon" ? daemonMs : ctrMs).push(ms);
      }
    }
    await remove();
  } finally {
    await strategy.close();
  }
  daemonMs.sort((a, b) => a - b);
  ctrMs.sort((a, b) => a - b);
  startupMs.sort((a, b) => a - b);
  const daemonMedian = percentile(daemonMs, 50);
  const ctrMedian = percentile(ctrMs, 50);
  const ratio = daemonMedian / ctrMedian;
  const result: ScenarioResult = {
    scenario: "cri-overhead",
    quick: false,
    image,
    imageBytes: built.bytes,
    runs,
    daemonMedianMs: round(daemonMedian),
    ctrMedianMs: round(ctrMedian),
    daemonMs: daemonMs.map((ms) => round(ms)),
    ctrMs: ctrMs.map((ms) => round(ms)),
    ctrVersionMedianMs: round(percentile(startupMs, 50)),
    ratio: round(ratio, 3),
    targets: { ratio: 1.05 },
    met: ratio <= 1.05,
    loadBefore,
    loadAfter: machineLoad(),
  };
  printTable("Scenario 6: CRI overhead (CriPullStrategy vs ctr images pull, same image)", [
    ["image (compressed bytes)", `${image} (${built.bytes})`],
    ["runs each (alternating, image removed before each)", runs],
    ["daemon CRI strategy median", `${result.daemonMedianMs} ms`],
    ["ctr images pull median (incl. ctr process start)", `${result.ctrMedianMs} ms`],
    ["ctr version median (its process start)", `${result.ctrVersionMedianMs} ms`],
    ["ratio daemon / ctr", `${result.ratio} (target ≤ 1.05)`],
    ["load before / after", `${loadBefore} / ${result.loadAfter}`],
  ]);
  return result;
}
