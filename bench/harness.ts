/**
 * What every benchmark scenario shares: a fake cluster with the daemon's
 * namespace and own pod, the daemon as a child process (production
 * permissions, its own RSS) or in-process (for many nodes and hooks), process
 * memory from `/proc`, machine load, and percentiles.
 *
 * @module
 */
import { type V1Pod, Watch } from "@kubernetes/client-node";
import { loadConfig } from "../config/config.ts";
import { type DaemonDeps, type DaemonParts, runDaemon } from "../daemon.ts";
import { type Logger, nullLogger } from "../log/logger.ts";
import {
  type FakeApiServer,
  type FakeApiServerOptions,
  startFakeApiServer,
} from "../testing/fake_apiserver/mod.ts";
import { spawnDaemon } from "../testing/daemon_process.ts";

/** One pull pod the benchmark saw created. */
export interface SeenPod {
  readonly name: string;
  readonly node: string;
  /** The image of its `main` container. */
  readonly image: string;
  /** `performance.now()` when the ADDED event arrived. */
  readonly at: number;
}

/** The daemon's namespace in every scenario. */
export const NAMESPACE = "image-cache-daemon";
/** The label that selects the daemon's ConfigMaps (the default `--configmap-selector`). */
export const PART_OF = { "app.kubernetes.io/part-of": "image-cache-daemon" } as const;
/** The daemon's own pod, owner of its pull pods. */
const SELF_POD = "image-cache-daemon-self";

/** A fake cluster ready for daemons: namespace and the daemon's own pod exist. */
export interface Cluster {
  readonly server: FakeApiServer;
  /** UID of the daemon's own pod. */
  readonly selfUid: string;
  close(): Promise<void>;
}

/** Starts a fake API server with the daemon's namespace and own pod. */
export async function startCluster(options: FakeApiServerOptions = {}): Promise<Cluster> {
  const server = await startFakeApiServer(options);
  server.create("namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: NAMESPACE },
  });
  const self = server.create("pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NAMESPACE, name: SELF_POD },
    spec: {
      // Bound to no simulated node, so no kubelet runs it.
      nodeName: "control-plane",
      containers: [{
        name: "daemon",
        image: "ghcr.io/image-cache-daemon/image-cache-daemon:0.1.0",
      }],
      tolerations: [{ operator: "Exists" }],
    },
  }) as unknown as V1Pod;
  return { server, selfUid: self.metadata!.uid!, close: () => server.close() };
}

/** The flags every benchmark daemon gets, for one node. */
export function daemonArgs(
  cluster: Cluster,
  node: string,
  extra: readonly string[] = [],
): string[] {
  return [
    `--node-name=${node}`,
    `--pod-namespace=${NAMESPACE}`,
    `--pod-name=${SELF_POD}`,
    `--pod-uid=${cluster.selfUid}`,
    "--metrics-bind-address=0",
    "--status-bind-address=0",
    ...extra,
  ];
}

/** `/proc/<pid>/status` memory fields, in KiB. */
export interface ProcMemory {
  /** Peak resident set size (VmHWM). */
  readonly peakKiB: number;
  /** Current resident set size (VmRSS). */
  readonly rssKiB: number;
}

/** Reads a process's peak and current RSS; undefined once it has exited. */
function procMemory(pid: number): ProcMemory | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const field = (name: string) =>
      Number(text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
    return { peakKiB: field("VmHWM"), rssKiB: field("VmRSS") };
  } catch {
    return undefined;
  }
}

/** The value of `--name=value` among a script's `args`, if given. */
export function argValue(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** Deno flags given as one space-separated `--name="…"` value, if given. */
export function flagsArg(args: readonly string[], name: string): string[] | undefined {
  return argValue(args, name)?.split(" ").filter((f) => f !== "");
}

/** The 1, 5 and 15 minute load averages and the CPU count, e.g. `"1.52 0.98 0.80 (2 cpus)"`. */
export function machineLoad(): string {
  let avg = "?";
  try {
    avg = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    // Not Linux: the load is unknown, which the report says.
  }
  return `${avg} (${navigator.hardwareConcurrency} cpus)`;
}

/** The `p`-th percentile (0–100) of already sorted numbers, nearest-rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Rounds to `digits` decimals. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function until(
  predicate: () => boolean,
  what: string,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = performance.now() + (options.timeoutMs ?? 60_000);
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(options.intervalMs ?? 5);
  }
}

/** One parsed JSON log line of a daemon child, with when the bench read it. */
export interface ChildLogLine {
  readonly msg: string;
  readonly at: number;
  readonly fields: Record<string, unknown>;
}

/** A daemon running as a child process under `-P=daemon`. */
export interface DaemonChild {
  readonly pid: number;
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  /** Every log line so far. */
  readonly lines: readonly ChildLogLine[];
  /** Resolves with the first line (past or future) whose `msg` is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<ChildLogLine>;
  /** Peak and current RSS now. */
  memory(): ProcMemory | undefined;
  /** SIGTERM, then waits for the exit; returns the exit code. */
  stop(): Promise<number>;
}

/**
 * Spawns the daemon (by default the shipped bundle) under the production permission set, reading its kubeconfig
 * from a temporary file (the only extra read permission), and follows its
 * JSON logs on standard error.
 */
export async function spawnDaemonChild(
  cluster: Cluster,
  args: readonly string[],
  options: {
    denoFlags?: string[];
    entry?: string;
    env?: Record<string, string>;
    cwd?: string;
  } = {},
): Promise<DaemonChild> {
  const kubeconfig = await Deno.makeTempFile({ prefix: "icd-bench-", suffix: ".yaml" });
  await Deno.writeTextFile(kubeconfig, cluster.server.kubeconfigYaml({ namespace: NAMESPACE }));
  const spawnedAt = performance.now();
  const child = spawnDaemon([`--kubeconfig=${kubeconfig}`, ...args], {
    denoFlags: [`--allow-read=${kubeconfig}`, ...(options.denoFlags ?? [])],
    entry: options.entry,
    env: options.env,
    cwd: options.cwd,
  });
  const lines: ChildLogLine[] = [];
  const waiters = new Set<(line: ChildLogLine) => boolean>();
  const drain = async (stream: ReadableStream<Uint8Array>, parse: boolean) => {
    let buffer = "";
    // Always read: the daemon writes its logs synchronously and would block on a full pipe.
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      if (!parse) continue;
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let fields: Record<string, unknown>;
        try {
          fields = JSON.parse(text);
        } catch {
          fields = { msg: text };
        }
        const line = { msg: String(fields.msg), at: performance.now(), fields };
        lines.push(line);
        for (const waiter of [...waiters]) if (waiter(line)) waiters.delete(waiter);
      }
    }
  };
  const draining = Promise.all([drain(child.stdout, false), drain(child.stderr, true)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    for (const waiter of [...waiters]) waiter({ msg: "", at: performance.now(), fields: {} });
    return s;
  });
  return {
    pid: child.pid,
    spawnedAt,
    lines,
    waitForLog(msg, timeoutMs = 120_000) {
      const found = lines.find((l) => l.msg === msg);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`Timed out waiting for the daemon to log "${msg}"`));
        }, timeoutMs);
        const check = (line: ChildLogLine) => {
          if (exited) {
            clearTimeout(timer);
            const tail = lines.slice(-5).map((l) => JSON.stringify(l.fields)).join("\n");
            reject(new Error(`The daemon exited before logging "${msg}":\n${tail}`));
            return true;
          }
          if (line.msg !== msg) return false;
          clearTimeout(timer);
          resolve(line);
          return true;
        };
        waiters.add(check);
      });
    },
    memory: () => procMemory(child.pid),
    async stop() {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
      }
      const { code } = await status;
      await draining;
      await Deno.remove(kubeconfig).catch(() => {});
      return code;
    },
  };
}

/** The peak RSS (KiB) of a Deno process that loads nothing and waits, for comparison. */
export async function idleDenoPeakKiB(): Promise<number> {
  const script = await Deno.makeTempFile({ prefix: "icd-idle-", suffix: ".ts" });
  // A timer keeps it alive: a bare never-settling top-level await makes Deno
  // exit at once ("top-level await promise never resolved").
  await Deno.writeTextFile(script, "setInterval(() => {}, 1 << 30);\n");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await sleep(1_000);
    return procMemory(child.pid)?.peakKiB ?? NaN;
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(script).catch(() => {});
  }
}

/** The pull hooks a benchmark can observe (the shape `runDaemon` calls on `metrics`). */
export interface PullHooks {
  pullStarted?(ref: string): void;
  pullFinished?(ref: string, result: unknown): void;
}

/** A daemon running in the benchmark's own process. */
export interface InProcessDaemon {
  readonly parts: DaemonParts;
  stop(): Promise<void>;
}

/** Runs the daemon in-process for `node`; resolves once its parts exist and every source synced. */
export async function startInProcessDaemon(
  cluster: Cluster,
  node: string,
  options: { args?: readonly string[]; hooks?: PullHooks; log?: Logger } = {},
): Promise<InProcessDaemon> {
  const { config } = loadConfig(daemonArgs(cluster, node, options.args ?? []), () => undefined);
  const controller = new AbortController();
  let parts: DaemonParts | undefined;
  const hooks = options.hooks ?? {};
  const deps: DaemonDeps = {
    kubeConfig: cluster.server.kubeConfig(),
    log: options.log ?? nullLogger,
    onStarted: (p) => parts = p,
    // runDaemon calls only pullStarted, pullFinished (the benchmark's hooks
    // have exactly that shape) and, with warm-up, nodeWarm on its metrics.
    metrics: {
      pullStarted: (ref: string) => hooks.pullStarted?.(ref),
      pullFinished: (ref: string, result: unknown) => hooks.pullFinished?.(ref, result),
      nodeWarm: () => {},
    } as unknown as DaemonDeps["metrics"],
  };
  const running = runDaemon(config, deps, controller.signal);
  let failure: unknown;
  running.catch((error) => failure = error);
  await until(() => failure !== undefined || parts?.ready() === true, `daemon on ${node} ready`, {
    timeoutMs: 300_000,
  });
  if (failure !== undefined) throw failure;
  return {
    parts: parts!,
    async stop() {
      controller.abort();
      await running;
    },
  };
}

const encoder = new TextEncoder();

/** Writes a line to standard output (results, not logs). */
export function print(text = ""): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

/** Prints a two-column table of labelled values. */
export function printTable(title: string, rows: readonly [string, string | number][]): void {
  const width = Math.max(...rows.map(([label]) => label.length));
  print(`\n${title}`);
  print("-".repeat(title.length));
  for (const [label, value] of rows) print(`  ${label.padEnd(width)}  ${value}`);
}

/** Follows pull pods from the outside, as another API client would; stop it with `signal`. */
export async function watchPullPods(
  cluster: Cluster,
  signal: AbortSignal,
  options: {
    onAdded?(pod: SeenPod): void;
    /** The pod is going (deletionTimestamp set) or gone; called once per pod. */
    onGone?(pod: SeenPod): void;
  } = {},
): Promise<SeenPod[]> {
  const seen: SeenPod[] = [];
  const alive = new Map<string, SeenPod>();
  const controller = await new Watch(cluster.server.kubeConfig()).watch(
    `/api/v1/namespaces/${NAMESPACE}/pods`,
    {
      resourceVersion: cluster.server.resourceVersion,
      labelSelector: "app.kubernetes.io/part-of=image-cache-daemon",
    },
    (type: string, pod: V1Pod) => {
      const name = pod.metadata?.name ?? "";
      if (type === "ADDED") {
        const entry = {
          name,
          node: pod.spec?.nodeName ?? "",
          image: pod.spec?.containers?.find((c) => c.name === "main")?.image ?? "",
          at: performance.now(),
        };
        seen.push(entry);
        alive.set(name, entry);
        options.onAdded?.(entry);
      }
      const gone = type === "DELETED" || pod.metadata?.deletionTimestamp !== undefined;
      const entry = alive.get(name);
      if (gone && entry) {
        alive.delete(name);
        options.onGone?.(entry);
      }
    },
    () => {},
  );
  signal.addEventListener("abort", () => controller.abort(), { once: true });
  return seen;
}

/**
 * Peak RSS of a daemon child spawned with `options` a second after its
 * "All sources synced" line: on an empty cluster, its fixed cost.
 */
export async function syncedPeakKiB(
  cluster: Cluster,
  args: readonly string[],
  options: Parameters<typeof spawnDaemonChild>[2] = {},
): Promise<number> {
  const child = await spawnDaemonChild(cluster, args, options);
  try {
    await child.waitForLog("All sources synced");
    await sleep(1_000);
    return child.memory()?.peakKiB ?? NaN;
  } finally {
    await child.stop();
  }
}
