/**
 * Scenario 8's node daemon memory row on its own, with another build beside
 * it: issue #15's "a node daemon's peak RSS within 10 % of its idle RSS".
 * One cluster of part A's sources and one aggregator (this build) publish the
 * set; then, per round, a node daemon of each build runs on a fresh node of
 * its own ({@linkcode nodeMemoryRun}: spawn, pull every image, idle on the
 * same set), both as the DaemonSet ships them ({@linkcode SHIPPED_NODE_FLAGS}),
 * alternating which goes first. Each build first starts once unmeasured, on a
 * node of its own, as the image's build does (Dockerfile): a build's first
 * start fills Deno's cache for it and peaks higher.
 *
 * ```sh
 * deno run -A bench/node_memory.ts [--quick] [--rounds=2] [--daemon-flags="--v8-flags=…"]
 *   [--old=/tmp/old-build] [--old-daemon-flags="--v8-flags=…"]
 * ```
 *
 * `--old=DIR` holds another build's `dist/` and `deno.json` (it may be this
 * checkout, to compare flags). `--daemon-flags` and `--old-daemon-flags`
 * replace the shipped flags of each.
 *
 * @module
 */
import {
  argValue,
  daemonArgs,
  flagsArg,
  machineLoad,
  print,
  round,
  spawnDaemonChild,
  startCluster,
} from "./harness.ts";
import { fill, nodeMemoryRun, SHIPPED_NODE_FLAGS, spawnAggregator, splitScale } from "./split.ts";

if (import.meta.main) {
  const args = Deno.args;
  const quick = args.includes("--quick");
  const rounds = Number(argValue(args, "rounds") ?? 2);
  const old = argValue(args, "old");
  const headFlags = flagsArg(args, "daemon-flags");
  const oldFlags = flagsArg(args, "old-daemon-flags");
  const scale = splitScale(quick);
  const builds = [
    { name: "head", cwd: undefined, denoFlags: headFlags ?? SHIPPED_NODE_FLAGS },
    ...(old ? [{ name: "old", cwd: old, denoFlags: oldFlags ?? SHIPPED_NODE_FLAGS }] : []),
  ];
  const cluster = await startCluster({ nodes: [] });
  try {
    fill(cluster, scale);
    const aggregator = await spawnAggregator(cluster, undefined);
    const published = await aggregator.waitForLog("Published the desired images");
    print(`published ${published.fields.images} images`);
    let nodes = 0;
    for (const build of builds) {
      const node = `node-${++nodes}`;
      cluster.server.addNode(node);
      const warm = await spawnDaemonChild(cluster, daemonArgs(cluster, node, ["--role=node"]), {
        denoFlags: [...build.denoFlags],
        cwd: build.cwd,
      });
      await warm.waitForLog("All sources synced");
      await warm.stop();
    }
    const results: { build: string; ratio: number }[] = [];
    for (let round_ = 0; round_ < rounds; round_++) {
      const order = round_ % 2 === 0 ? builds : [...builds].reverse();
      for (const build of order) {
        const node = `node-${++nodes}`;
        cluster.server.addNode(node);
        const load = machineLoad();
        const run = await nodeMemoryRun(cluster, node, {
          denoFlags: build.denoFlags,
          cwd: build.cwd,
          idleMs: scale.nodeIdleMs,
          settleTimeoutMs: scale.nodeSettleTimeoutMs,
        });
        const ratio = round(run.peakKiB / run.idleKiB, 3);
        results.push({ build: build.name, ratio });
        print(JSON.stringify({
          build: build.name,
          load,
          images: run.images,
          settledMs: run.settledMs,
          peakMiB: round(run.peakKiB / 1024),
          idleMiB: round(run.idleKiB / 1024),
          peakOverIdle: ratio,
        }));
      }
    }
    await aggregator.stop();
    for (const build of builds) {
      const mine = results.filter((r) => r.build === build.name).map((r) => r.ratio);
      print(`${build.name}: peak / idle ${mine.join(", ")} (target ≤ 1.10)`);
    }
  } finally {
    await cluster.close();
  }
}
