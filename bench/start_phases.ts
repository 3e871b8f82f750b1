/**
 * Where scenario 8's "aggregator: spawn → published" goes: the cluster of
 * part A (10,000 WorkflowTemplates + 2,000 ConfigMaps, {@linkcode fill}), an
 * aggregator process spawned as part A spawns it (`-P=daemon`, the bundle in
 * `dist/`), and its phases from its logs and the fake API server's request
 * log. With `--old=DIR` (a directory holding another build's `dist/` and its
 * `deno.json`) the two builds run interleaved on fresh clusters, side by side.
 *
 * ```sh
 * deno run -A bench/start_phases.ts [--quick] [--runs=3] [--old=/tmp/old-build] [--daemon-flags="--cpu-prof"]
 *   [--old-daemon-flags="--v8-flags=…"]
 * ```
 *
 * Both builds run as the aggregator's Deployment ships this build
 * (`SHIPPED_AGGREGATOR_FLAGS`) unless `--daemon-flags` says otherwise; the
 * old one takes `--old-daemon-flags` when given (the old build as it shipped).
 *
 * Every time is ms after the spawn. The fake's serving cost is measured after
 * each run by replaying the aggregator's list requests from this process
 * (fetch and read the body, no parsing): the part of the lists' time that is
 * the fake's, not the aggregator's.
 *
 * @module
 */
import { argValue, flagsArg, machineLoad, print, round, sleep, startCluster } from "./harness.ts";
import { fill, spawnAggregator, splitScale } from "./split.ts";

interface Phases {
  build: string;
  load: string;
  firstLogMs: number;
  startingMs: number;
  sourcesSyncedMs: Record<string, number>;
  lists: Record<string, { pages: number; bytes: number; firstMs: number; lastMs: number }>;
  leaseFirstRequestMs?: number;
  becameLeaderMs?: number;
  createConfigMapMs?: number;
  publishedMs: number;
  peakMiB: number;
  /** CPU time (user + system) the aggregator had used when it published: robust to the machine's load. */
  cpuMs: number;
  /** The same CPU time per thread name (`/proc/<pid>/task/*`): which thread the start waits on. */
  threadCpuMs: Record<string, number>;
  /** The fake's own time to serve the same list requests, replayed one after another. */
  fakeServeMs: number;
}

/** User + system CPU time of a process so far, from `/proc/<pid>/stat` (clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  return cpuMsOf(`/proc/${pid}/stat`);
}

/** User + system CPU time from a `stat` file of `/proc` (a process's or a thread's). */
function cpuMsOf(path: string): number {
  const stat = Deno.readTextFileSync(path);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** {@linkcode processCpuMs} per thread of the process, summed by thread name. */
function threadCpuMs(pid: number): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      const ms = cpuMsOf(`/proc/${pid}/task/${task.name}/stat`);
      if (ms > 0) byName[name] = (byName[name] ?? 0) + ms;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byName;
}

async function runOnce(
  build: { name: string; cwd?: string },
  scale: { templates: number; configMaps: number; images: number },
  denoFlags?: string[],
): Promise<Phases> {
  const cluster = await startCluster({ nodes: ["node-1"] });
  try {
    fill(cluster, scale);
    const startIndex = cluster.server.requests.entries().length;
    const load = machineLoad();
    const wallAtSpawn = Date.now();
    const child = await spawnAggregator(cluster, denoFlags, { cwd: build.cwd });
    let peak = 0;
    let done = false;
    const sampling = (async () => {
      while (!done) {
        peak = Math.max(peak, child.memory()?.peakKiB ?? 0);
        await sleep(50);
      }
    })();
    const published = await child.waitForLog("Published the desired images");
    const cpuMs = processCpuMs(child.pid);
    const threads = threadCpuMs(child.pid);
    done = true;
    await sampling;
    peak = Math.max(peak, child.memory()?.peakKiB ?? 0);
    const rel = (at: number) => round(at - child.spawnedAt, 0);
    const entries = cluster.server.requests.entries().slice(startIndex);
    const lists: Phases["lists"] = {};
    for (const r of entries) {
      if (r.verb !== "list") continue;
      const l = lists[r.resource] ??= {
        pages: 0,
        bytes: 0,
        firstMs: r.at - wallAtSpawn,
        lastMs: 0,
      };
      l.pages++;
      l.bytes += r.bytes;
      l.lastMs = r.at - wallAtSpawn;
    }
    const firstOf = (select: (r: typeof entries[number]) => boolean) => {
      const r = entries.find(select);
      return r ? r.at - wallAtSpawn : undefined;
    };
    const line = (msg: string) => child.lines.find((l) => l.msg === msg);
    const phases: Phases = {
      build: build.name,
      load,
      firstLogMs: rel(child.lines[0].at),
      startingMs: rel(line("Starting image-cache-daemon")?.at ?? NaN),
      sourcesSyncedMs: Object.fromEntries(
        child.lines.filter((l) => l.msg === "Source synced").map((l) => [
          String(l.fields.source),
          rel(l.at),
        ]),
      ),
      lists,
      leaseFirstRequestMs: firstOf((r) => r.resource === "leases"),
      becameLeaderMs: line("Became leader") && rel(line("Became leader")!.at),
      createConfigMapMs: firstOf((r) => r.verb === "create" && r.resource === "configmaps"),
      publishedMs: rel(published.at),
      peakMiB: round(peak / 1024),
      cpuMs,
      threadCpuMs: threads,
      fakeServeMs: 0,
    };
    await child.stop();
    // The fake's share: the same list URLs, fetched and read whole, in order.
    const headers = { authorization: `Bearer ${cluster.server.token}`, accept: "application/json" };
    const started = performance.now();
    for (const r of entries) {
      if (r.verb !== "list") continue;
      const response = await fetch(`${cluster.server.url}${r.url}`, { headers });
      await response.arrayBuffer();
    }
    phases.fakeServeMs = round(performance.now() - started, 0);
    return phases;
  } finally {
    await cluster.close();
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const quick = args.includes("--quick");
  const runs = Number(argValue(args, "runs") ?? 1);
  const old = argValue(args, "old");
  const denoFlags = flagsArg(args, "daemon-flags");
  const scale = splitScale(quick);
  const builds = [
    { name: "head", denoFlags },
    ...(old
      ? [{ name: "old", cwd: old, denoFlags: flagsArg(args, "old-daemon-flags") ?? denoFlags }]
      : []),
  ];
  const all: Phases[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, alternating which goes first, so load drifts hit both alike.
    const order = i % 2 === 0 ? builds : [...builds].reverse();
    for (const build of order) {
      const p = await runOnce(build, scale, build.denoFlags);
      all.push(p);
      print(JSON.stringify(p));
    }
  }
  for (const build of builds) {
    const mine = all.filter((p) => p.build === build.name);
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
    const wall = mine.map((p) => p.publishedMs);
    const cpu = mine.map((p) => p.cpuMs);
    const peak = mine.map((p) => p.peakMiB);
    print(
      `${build.name}: spawn → published ${wall.join(", ")} ms (median ${median(wall)}); ` +
        `CPU ${cpu.join(", ")} ms (median ${median(cpu)}); peak ${peak.join(", ")} MiB`,
    );
  }
}
