/**
 * The fault suite's harness: a fake cluster (API server, one node with its
 * simulated kubelet, the daemon's namespace and own pod), an outside observer
 * of pull pods, and the real daemon as a process under the production
 * permission set, read through its stderr log lines and its `/status` and
 * `/metrics` endpoints.
 *
 * @module
 */
import { Watch } from "@kubernetes/client-node";
import { assert, assertEquals } from "../../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../../testing/fake_apiserver/mod.ts";
import type { FakeApiServerOptions, KubeObject } from "../../testing/fake_apiserver/mod.ts";
import { BUNDLE_ENTRY, freePort, spawnDaemon } from "../../testing/daemon_process.ts";
import { DAEMON_MEMORY_LIMIT_MIB, IMAGE_V8_FLAGS } from "../../build/v8_flags.ts";
import { waitFor } from "../../testing/wait.ts";
import { normalizeReference } from "../../images/reference.ts";
import { DEFAULT_WARDEN_IMAGE } from "../../config/config.ts";

/** The daemon's namespace, where pull pods are created. */
export const NS = "image-cache";
/** The one node of the fake cluster. */
export const NODE = "node-1";
/** The daemon's own pod. */
export const SELF = "icd-self";
/** Labels the ConfigMap source selects by default. */
export const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };
/** Selects pull pods. */
export const POD_SELECTOR = "app.kubernetes.io/part-of=image-cache-daemon";
/** Pull attempts in flight at once that the daemons in this suite allow. */
export const LIMIT = 3;

/**
 * How long a fault lasts and how often it repeats: short in CI, the issue's
 * full length under `deno task soak` (`FAULT_SOAK=1`).
 */
export const SOAK = (() => {
  try {
    return Deno.env.get("FAULT_SOAK") === "1";
  } catch {
    // Why absorb: without --allow-env the suite runs its short CI version.
    return false;
  }
})();

/** Milliseconds, shortened in CI. */
export function scaled(ciMs: number, soakMs: number): number {
  return SOAK ? soakMs : ciMs;
}

/** A generous bound for waits that depend on a loaded machine. */
export const SETTLE_MS = 45_000;

/** Normalises references for comparisons. */
export function refs(...images: string[]): string[] {
  return images.map(normalizeReference).sort();
}

/** A labelled ConfigMap listing images. */
export function configMap(
  namespace: string,
  name: string,
  data: Record<string, string>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace, name, labels: LABELS },
    data,
    ...extra,
  };
}

/** A WorkflowTemplate with one container template per image. */
export function workflowTemplate(
  namespace: string,
  name: string,
  images: string[],
): Record<string, unknown> {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplate",
    metadata: { namespace, name },
    spec: {
      entrypoint: "t0",
      templates: images.map((image, i) => ({ name: `t${i}`, container: { image } })),
    },
  };
}

/** What the outside observer saw of pull pods. */
export interface PodObservation {
  /** Names of every pull pod ever seen. */
  readonly created: Set<string>;
  /** Pull pods that exist now, as far as the watch has told. */
  readonly alive: Set<string>;
  /** The most pull pods that existed at once. */
  maxAlive: number;
}

/**
 * Follows pull pods through a client-node Watch, counting ADDED and DELETED.
 * The watch itself suffers the injected faults, so it resumes from its last
 * resourceVersion after a drop and relists (directly from the store, which
 * no fault touches) after 410 Gone or an outage.
 */
function observePods(server: FakeApiServer, signal: AbortSignal): {
  seen: PodObservation;
  stopped: Promise<void>;
} {
  const seen: PodObservation = {
    created: new Set(),
    alive: new Set(),
    maxAlive: 0,
  };
  let rv = "";
  const relist = () => {
    // Reading the store and its resourceVersion in one synchronous step is consistent.
    const pods = server.list("pods", { namespace: NS, labelSelector: POD_SELECTOR });
    rv = server.resourceVersion;
    seen.alive.clear();
    for (const pod of pods) {
      seen.alive.add(pod.metadata.name!);
      seen.created.add(pod.metadata.name!);
    }
    seen.maxAlive = Math.max(seen.maxAlive, seen.alive.size);
  };
  const watchOnce = async (): Promise<void> => {
    const watch = new Watch(server.kubeConfig());
    let expired = false;
    await new Promise<void>((resolve) => {
      let controller: AbortController | undefined;
      let idle: ReturnType<typeof setTimeout> | undefined;
      // An abruptly dropped connection is never reported by client-node on Deno
      // (nor ended by abort), so silence longer than three bookmarks ends it.
      const quiet = () => {
        clearTimeout(idle);
        idle = setTimeout(done, 3_000);
      };
      const onAbort = () => done();
      let finished = false;
      const done = () => {
        finished = true;
        clearTimeout(idle);
        signal.removeEventListener("abort", onAbort);
        controller?.abort();
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      quiet();
      watch.watch(
        `/api/v1/namespaces/${NS}/pods`,
        { resourceVersion: rv, labelSelector: POD_SELECTOR, allowWatchBookmarks: true },
        (type: string, obj: KubeObject & { code?: number }) => {
          if (finished) return;
          quiet();
          if (type === "ERROR") {
            expired = obj.code === 410;
            return;
          }
          if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
          const name = obj.metadata?.name;
          if (type === "BOOKMARK" || !name) return;
          if (type === "DELETED") seen.alive.delete(name);
          else {
            seen.created.add(name);
            seen.alive.add(name);
            seen.maxAlive = Math.max(seen.maxAlive, seen.alive.size);
          }
        },
        () => done(),
      ).then((c) => {
        controller = c;
        if (signal.aborted) c.abort();
      }, () => done());
    });
    if (expired) relist();
  };
  relist();
  const stopped = (async () => {
    while (!signal.aborted) {
      await watchOnce();
      if (server.faults.isDown) relist();
      if (!signal.aborted) await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { seen, stopped };
}

/** One parsed JSON log line of the daemon. */
export type LogLine = Record<string, unknown> & { level: string; msg: string };

/** What `/status` reports about one image. */
export interface ImageReport {
  image: string;
  state: string;
  attempts: number;
  lastErrorReason?: string;
  lastError?: string;
  origins: string[];
}

/** The `/status` document, as far as the suite reads it. */
export interface StatusReport {
  ready: boolean;
  desired: number;
  inFlight: number;
  images: ImageReport[];
  sources: {
    name: string;
    available: boolean;
    synced: boolean;
    errors: number;
    /** When it last heard from its API (list, event or bookmark), ISO 8601. */
    lastActivity?: string;
  }[];
  /** One entry per object with rejections (at most 50), with the exact count and a few samples. */
  rejected: { origin: string; count: number; samples: { input: string; reason: string }[] }[];
  /** Exact totals of objects with rejections and of rejected entries. */
  rejectedObjects: number;
  rejectedEntries: number;
}

/** A daemon process. */
export interface DaemonProcess {
  readonly child: Deno.ChildProcess;
  /** Port of its operations server. */
  readonly port: number;
  /** Every JSON log line so far. */
  readonly lines: LogLine[];
  /** Non-JSON stderr text (a crash's stack trace would land here). */
  readonly rawErrors: string[];
  /** Resolves with the exit status. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Whether it has exited. */
  readonly hasExited: boolean;
  /** Log lines with this message. */
  count(msg: string, where?: (line: LogLine) => boolean): number;
  /** GET /status. */
  status(): Promise<StatusReport>;
  /** process_resident_memory_bytes from GET /metrics. */
  rss(): Promise<number>;
  /** Sends SIGTERM and waits for the exit; returns the code and how long it took. */
  term(): Promise<{ code: number; ms: number }>;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const body = await response.text();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${body}`);
  return body;
}

/** The entry point the daemon processes run: the shipped bundle. */
const ENTRY = BUNDLE_ENTRY;

function startProcess(
  kubeconfigPath: string,
  args: readonly string[],
  denoFlags: readonly string[] = [],
): DaemonProcess {
  const port = freePort();
  const child = spawnDaemon([
    `--kubeconfig=${kubeconfigPath}`,
    `--metrics-bind-address=127.0.0.1:${port}`,
    // /status on the same port, so the suite reads everything from one server.
    `--status-bind-address=127.0.0.1:${port}`,
    ...args,
  ], { denoFlags: [`--allow-read=${kubeconfigPath}`, ...denoFlags], entry: ENTRY });
  const lines: LogLine[] = [];
  const rawErrors: string[] = [];
  let exited = false;
  const read = async (stream: ReadableStream<Uint8Array>, json: boolean) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const text = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (!json || text.trim() === "") continue;
        try {
          lines.push(JSON.parse(text));
        } catch {
          rawErrors.push(text);
        }
      }
    }
    if (json && rest.trim()) rawErrors.push(rest);
  };
  const readers = Promise.all([read(child.stderr, true), read(child.stdout, false)]);
  const status = child.status.then(async (s) => {
    exited = true;
    await readers;
    return s;
  });
  const base = `http://127.0.0.1:${port}`;
  const proc: DaemonProcess = {
    child,
    port,
    lines,
    rawErrors,
    exited: status,
    get hasExited() {
      return exited;
    },
    count: (msg, where) => lines.filter((l) => l.msg === msg && (!where || where(l))).length,
    status: async () => JSON.parse(await fetchText(`${base}/status`)),
    rss: async () => {
      const text = await fetchText(`${base}/metrics`);
      const m = text.match(/^process_resident_memory_bytes (\S+)$/m);
      if (!m) throw new Error("No process_resident_memory_bytes in /metrics");
      return Number(m[1]);
    },
    term: async () => {
      const started = Date.now();
      if (!exited) child.kill("SIGTERM");
      const s = await status;
      return { code: s.code, ms: Date.now() - started };
    },
    kill: async () => {
      if (!exited) child.kill("SIGKILL");
      await status;
    },
  };
  return proc;
}

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  server?: FakeApiServerOptions;
  /** Pull time of every image. @default {150} */
  pullDelayMs?: number;
}

/** A fake cluster with an observer of pull pods. */
export interface Cluster {
  readonly server: FakeApiServer;
  readonly pods: PodObservation;
  readonly kubeconfigPath: string;
  /** The daemons started so far. */
  readonly daemons: DaemonProcess[];
  /**
   * Starts a daemon for {@linkcode NODE} with the suite's defaults plus
   * `args`, and `denoFlags` after `-P=daemon`.
   */
  spawn(args?: readonly string[], denoFlags?: readonly string[]): Promise<DaemonProcess>;
  /** Normalised references the kubelet pulled (the warden image left out), oldest first. */
  pulled(): string[];
  /** Pull pods that exist in the store now. */
  podsNow(): KubeObject[];
  /** Stops every daemon still running (SIGKILL), the observer and the server. */
  [Symbol.asyncDispose](): Promise<void>;
}

const WARDEN = normalizeReference(DEFAULT_WARDEN_IMAGE);

/** Starts the fake cluster. Dispose it with `await using`. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const server = await startFakeApiServer({ nodes: [NODE], ...options.server });
  server.kubelet(NODE).defaultPullDelayMs = options.pullDelayMs ?? 150;
  server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
  const self = server.create("pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NS, name: SELF },
    spec: {
      nodeName: "elsewhere",
      containers: [{
        name: "daemon",
        image: "ghcr.io/image-cache-daemon/image-cache-daemon:0.1.0",
      }],
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "icd-faults-" });
  const kubeconfigPath = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfigPath, server.kubeconfigYaml({ namespace: NS }));
  const controller = new AbortController();
  const observer = observePods(server, controller.signal);
  const daemons: DaemonProcess[] = [];
  return {
    server,
    pods: observer.seen,
    kubeconfigPath,
    daemons,
    async spawn(args = [], denoFlags = []) {
      const daemon = await startProcess(kubeconfigPath, [
        `--node-name=${NODE}`,
        `--pod-namespace=${NS}`,
        `--pod-name=${SELF}`,
        `--pod-uid=${self.metadata.uid}`,
        `--max-concurrent-pulls=${LIMIT}`,
        "--resync-period=10m",
        "--pull-backoff-max=2s",
        ...args,
      ], denoFlags);
      daemons.push(daemon);
      return daemon;
    },
    pulled: () => server.kubelet(NODE).pulls.map((p) => p.ref).filter((ref) => ref !== WARDEN),
    podsNow: () => server.list("pods", { namespace: NS, labelSelector: POD_SELECTOR }),
    async [Symbol.asyncDispose]() {
      for (const daemon of daemons) await daemon.kill();
      controller.abort();
      await observer.stopped;
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Waits until the daemon reports ready on /readyz-equivalent `/status`. */
export async function waitReady(daemon: DaemonProcess, timeoutMs = SETTLE_MS): Promise<void> {
  await waitFor(async () => {
    if (daemon.hasExited) throw new Error(`Daemon exited: ${daemon.rawErrors.join("\n")}`);
    return (await daemon.status()).ready;
  }, { what: "daemon ready", timeoutMs, intervalMs: 50 });
}

/**
 * Waits until the daemon is ready and its `source` has then heard from its
 * API server again, with the cluster left unchanged meanwhile: a bookmark
 * (its list is done by then, and nothing changed). Then the daemon knows its
 * server's heartbeat, as one running for longer than a bookmark interval
 * does; before it, a watch cut without a word is found dead only after its
 * server-side timeout (see the Reflector's watchdog).
 */
export async function waitHeartbeat(daemon: DaemonProcess, source = "configmap"): Promise<void> {
  await waitReady(daemon);
  const since = Date.now();
  await waitFor(async () => {
    const heard = (await daemon.status()).sources.find((s) => s.name === source)?.lastActivity;
    return heard !== undefined && Date.parse(heard) > since;
  }, { what: `a bookmark on the ${source} watch`, timeoutMs: 10_000, intervalMs: 50 });
}

/** Options of {@linkcode assertSettles}. */
export interface SettleOptions {
  /** Images that may have been pulled during the scenario besides `expected`. */
  alsoAllowed?: string[];
  /** How long the daemon has to get there. @default {SETTLE_MS} */
  timeoutMs?: number;
  /** The most pull pods allowed at once. @default {LIMIT} */
  limit?: number;
}

/**
 * The pass condition: the daemon's desired set is exactly
 * `expected`, every one is present on the node, nothing else was pulled, the
 * pull pods never exceeded the limit and none is left, and the daemon is
 * still the one process that started (no crash, no restart).
 */
export async function assertSettles(
  cluster: Cluster,
  daemon: DaemonProcess,
  expected: string[],
  options: SettleOptions = {},
): Promise<StatusReport> {
  const want = refs(...expected);
  let last: StatusReport | undefined;
  // When /status last answered: a daemon whose loop stalled stops answering.
  let lastAt: number | undefined;
  await waitFor(async () => {
    if (daemon.hasExited) throw new Error(`Daemon exited: ${daemon.rawErrors.join("\n")}`);
    last = await daemon.status();
    lastAt = Date.now();
    const have = last.images.map((i) => i.image).sort();
    return last.ready && JSON.stringify(have) === JSON.stringify(want) &&
      last.images.every((i) => i.state === "present") && last.inFlight === 0 &&
      cluster.podsNow().length === 0 && cluster.pods.alive.size === 0;
  }, {
    what: `the desired set ${JSON.stringify(want)} to be present with no pull pod left (last: ${
      JSON.stringify(last?.images.map((i) => [i.image, i.state, i.lastErrorReason]))
    }, pods ${cluster.podsNow().length})`,
    timeoutMs: options.timeoutMs ?? SETTLE_MS,
    intervalMs: 100,
  }).catch((error) => {
    const images = last?.images.map((i) => `${i.image}=${i.state}/${i.lastErrorReason ?? ""}`);
    const sources = last?.sources?.map((s) => JSON.stringify(s)).join("\n");
    // The daemon's own account of the wait, for whoever reads a failure.
    const recent = daemon.lines.slice(-40).map((l) => JSON.stringify(l)).join("\n");
    throw new Error(
      `${(error as Error).message}\nlast status (read at ${
        lastAt === undefined ? "never" : new Date(lastAt).toISOString()
      }, now ${new Date().toISOString()}): ${
        images?.join(", ")
      }\nsources:\n${sources}\ndaemon log (last 40 lines):\n${recent}`,
    );
  });
  const present = new Set(cluster.server.kubelet(NODE).imagesPresent());
  for (const ref of want) assert(present.has(ref), `${ref} is not on the node`);
  const allowed = new Set([...want, ...refs(...(options.alsoAllowed ?? []))]);
  const unwanted = [...new Set(cluster.pulled())].filter((ref) => !allowed.has(ref));
  assertEquals(unwanted, [], "images pulled that nobody wanted");
  const limit = options.limit ?? LIMIT;
  assert(
    cluster.pods.maxAlive <= limit,
    `${cluster.pods.maxAlive} pull pods existed at once; the limit is ${limit}`,
  );
  assertEquals(daemon.hasExited, false, "the daemon exited");
  assertEquals(daemon.count("Starting image-cache-daemon"), 1, "the daemon restarted");
  assertEquals(daemon.rawErrors, [], "the daemon wrote something other than JSON log lines");
  assertEquals(
    daemon.lines.filter((l) => l.msg === "Daemon failed" || l.msg === "Pull hook failed"),
    [],
  );
  return last!;
}

/** Stops the daemon with SIGTERM and asserts a clean exit (code 0, within 10 s, no pod left). */
export async function assertCleanExit(cluster: Cluster, daemon: DaemonProcess): Promise<void> {
  const { code, ms } = await daemon.term();
  assertEquals(code, 0, `exit code after SIGTERM (stderr: ${daemon.rawErrors.join("\n")})`);
  assert(ms < 10_000, `SIGTERM took ${ms} ms`);
  assertEquals(cluster.podsNow().map((p) => p.metadata.name), [], "pull pods left after exit");
}

/**
 * Makes the API answer `status` to every request for `ms`: failures are
 * queued in small batches as the daemon consumes them, and whatever is left
 * at the end is drained with requests of our own, so the outage ends on time.
 */
export async function failFor(
  server: FakeApiServer,
  status: 500 | 429 | 503,
  ms: number,
  options: { retryAfterSeconds?: number } = {},
): Promise<void> {
  const deadline = Date.now() + ms;
  let queued = 0;
  const batch = 2;
  while (Date.now() < deadline) {
    server.faults.failNext(batch, status, options);
    queued += batch;
    await new Promise((r) => setTimeout(r, 250));
  }
  // Drain: each failed request of ours consumes one queued failure.
  for (let i = 0; i < queued; i++) {
    const response = await fetch(`${server.url}/api/v1/namespaces/${NS}/configmaps?limit=1`, {
      headers: { authorization: `Bearer ${server.token}` },
    });
    await response.body?.cancel();
    if (response.ok) return;
  }
}

/** Drops every open watch each `everyMs` for `forMs`; returns how many were dropped. */
export async function dropWatchesFor(
  server: FakeApiServer,
  everyMs: number,
  forMs: number,
  during: (round: number) => void = () => {},
): Promise<number> {
  const deadline = Date.now() + forMs;
  let dropped = 0;
  for (let round = 0; Date.now() < deadline; round++) {
    during(round);
    dropped += server.faults.dropWatches({ abrupt: round % 2 === 1 });
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return dropped;
}

/**
 * The scenarios chosen by `--filter` after `--` (`deno test -A
 * integration/faults_test.ts -- --filter 410`) or by `FAULT_FILTER`: a substring of
 * the scenario's name, or a `/regular expression/`, as for `deno test
 * --filter`. Deno's own `--filter` cannot be used: it is not visible to the
 * module, and the scenarios start when it loads.
 */
export function scenarioFilter(
  args: readonly string[],
  env: string | undefined,
): ((name: string) => boolean) | undefined {
  let pattern = env || undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--filter") pattern = args[++i];
    else if (args[i].startsWith("--filter=")) pattern = args[i].slice("--filter=".length);
  }
  if (pattern === undefined) return undefined;
  const regex = /^\/(.*)\/([a-z]*)$/.exec(pattern);
  if (regex) {
    const re = new RegExp(regex[1], regex[2]);
    return (name) => re.test(name);
  }
  return (name) => name.includes(pattern);
}

/**
 * The DaemonSet's memory limit in MiB, read from the manifest, so a daemon
 * started with {@linkcode daemonSetHeapFlag} fails here as it would in its pod.
 */
export function daemonSetMemoryLimitMiB(): number {
  const text = Deno.readTextFileSync(
    new URL("../../manifests/base/daemonset.yaml", import.meta.url),
  );
  const match = text.match(/limits:\s*\n\s*memory:\s*(\d+)(Mi|Gi)\b/);
  if (!match) throw new Error("No memory limit in manifests/base/daemonset.yaml");
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

/**
 * The image's V8 flags: the shipped flags and the old-space limit matched to
 * the DaemonSet's memory limit (build/v8_flags.ts), so V8's heap is bounded
 * as in the pod.
 */
export function daemonSetHeapFlag(): string {
  if (DAEMON_MEMORY_LIMIT_MIB !== daemonSetMemoryLimitMiB()) {
    throw new Error("build/v8_flags.ts and manifests/base/daemonset.yaml disagree on the limit");
  }
  return `--v8-flags=${IMAGE_V8_FLAGS}`;
}
