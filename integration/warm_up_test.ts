/**
 * Warm before work, on the fake cluster: the whole daemon with
 * `--startup-taint` against the fake API server and its simulated kubelet,
 * through the real client-node.
 */
import { Watch } from "@kubernetes/client-node";
import type { V1Node, V1NodeCondition, V1Taint } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import {
  type FakeApiServer,
  type FakeKubelet,
  startFakeApiServer,
} from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { type Config, loadConfig } from "../config/config.ts";
import { recordingLogger } from "../log/logger.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";
import { apiCallOf, installedRulesOf, isAllowed } from "../manifests/rbac_expectations.ts";

const NS = "image-cache";
const NODE = "node-1";
const KEY = "startup-taint.cluster-autoscaler.kubernetes.io/images";
const TAINT = { key: KEY, value: "true", effect: "NoSchedule" };
const OTHER = { key: "example.com/other", value: "x", effect: "NoSchedule" };

interface Run {
  server: FakeApiServer;
  kubelet: FakeKubelet;
  parts: DaemonParts;
  log: ReturnType<typeof recordingLogger>;
  /** Each version of the Node as watched: taint keys and the images it reports. */
  versions: { taints: string[]; images: string[]; condition?: V1NodeCondition }[];
  stop(): Promise<void>;
  /** Stops the daemon only (the cluster stays). */
  stopDaemon(): Promise<void>;
  /** Starts the daemon again on the same cluster, optionally with other settings. */
  startDaemon(override?: Partial<Config>): Promise<void>;
}

function node(server: FakeApiServer): V1Node {
  return server.get("nodes", undefined, NODE) as unknown as V1Node;
}

function taintKeys(n: V1Node): string[] {
  return (n.spec?.taints ?? []).map((t: V1Taint) => t.key);
}

function condition(n: V1Node): V1NodeCondition | undefined {
  return n.status?.conditions?.find((c) => c.type === "ImagesPrePulled");
}

async function start(
  args: string[],
  setup: (kubelet: FakeKubelet, server: FakeApiServer) => void,
  config: Partial<Config> = {},
  taints: V1Taint[] = [TAINT],
): Promise<Run> {
  const server = await startFakeApiServer({});
  server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
  const kubelet = server.addNode(NODE, {
    taints: taints as { key: string; value?: string; effect: string }[],
  });
  server.create("pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NS, name: "icd-self" },
    spec: {
      nodeName: "elsewhere",
      containers: [{
        name: "daemon",
        image: "ghcr.io/image-cache-daemon/image-cache-daemon:0.1.0",
      }],
      tolerations: [{ operator: "Exists" }],
    },
  });
  setup(kubelet, server);
  const versions: Run["versions"] = [];
  const watching = new AbortController();
  const watch = await new Watch(server.kubeConfig()).watch(
    "/api/v1/nodes",
    { resourceVersion: "0" },
    (_type: string, n: V1Node) => {
      versions.push({
        taints: taintKeys(n),
        images: (n.status?.images ?? []).flatMap((i) => i.names ?? []),
        condition: condition(n),
      });
    },
    () => {},
  );
  watching.signal.addEventListener("abort", () => watch.abort());
  const { config: loaded } = loadConfig([
    `--node-name=${NODE}`,
    `--pod-namespace=${NS}`,
    "--pod-name=icd-self",
    "--metrics-bind-address=0",
    `--startup-taint=${KEY}:NoSchedule`,
    ...args,
  ], () => undefined);
  const log = recordingLogger();
  let controller = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const run: Run = {
    server,
    kubelet,
    parts: undefined as unknown as DaemonParts,
    log,
    versions,
    async startDaemon(override: Partial<Config> = {}) {
      controller = new AbortController();
      let parts: DaemonParts | undefined;
      running = runDaemon({ ...loaded, ...config, ...override }, {
        kubeConfig: server.kubeConfig(),
        log,
        sourceBackoffBaseMs: 20,
        sourceBackoffMaxMs: 200,
        onStarted: (p) => parts = p,
      }, controller.signal);
      await waitFor(() => parts?.ready(), { what: "daemon ready" });
      run.parts = parts!;
    },
    async stopDaemon() {
      controller.abort();
      await running;
    },
    async stop() {
      await run.stopDaemon();
      watching.abort();
      await server.close();
    },
  };
  await run.startDaemon();
  return run;
}

const IMAGES = ["docker.io/library/a:1", "docker.io/library/b:1", "docker.io/library/c:1"];

Deno.test("a node registered with the startup taint gets it lifted only after its images are present", async () => {
  const run = await start(
    [...IMAGES.map((i) => `--image=${i}`), "--max-concurrent-pulls=1"],
    (kubelet) => {
      for (const image of IMAGES) kubelet.setPullDelay(image, 300);
    },
  );
  try {
    await waitFor(() => !taintKeys(node(run.server)).includes(KEY), {
      what: "taint lifted",
      timeoutMs: 30_000,
    });
    // Every version of the Node without the taint reports all three images;
    // some earlier version had the taint with fewer (the pulls were observed).
    // The watch may trail the store: wait for it to deliver the open Node.
    await waitFor(() => run.versions.some((v) => !v.taints.includes(KEY)));
    const open = run.versions.filter((v) => !v.taints.includes(KEY));
    for (const v of open) {
      for (const image of IMAGES) assert(v.images.includes(image), `${image} in ${v.images}`);
    }
    assert(
      run.versions.some((v) =>
        v.taints.includes(KEY) &&
        [1, 2].includes(IMAGES.filter((i) => v.images.includes(i)).length)
      ),
      "the taint stayed while images were being pulled",
    );
    // While warming the condition said so; once open it says warm.
    assert(run.versions.some((v) => v.condition?.status === "False"), "False while warming");
    const done = condition(node(run.server))!;
    assertEquals([done.status, done.reason], ["True", "AllImagesPresent"]);
    // The kubelet's own Ready condition survived the status patches.
    assert(node(run.server).status!.conditions!.some((c) => c.type === "Ready"), "Ready kept");
    const event = await waitFor(() =>
      run.server.list("events", { namespace: "default" }).find((e) =>
        (e as { reason?: string }).reason === "NodeWarm"
      )
    );
    assertMatch(
      (event as { message?: string }).message!,
      /^Node warm .* after registration: 3 of 3 images present$/,
    );
    assertEquals(run.parts.warmUp!.status().taintState, "lifted");
    // Every request is allowed by the install with the warm-up component, and
    // the Node writes are exactly what the component adds to the base.
    const withWarmUp = installedRulesOf("pod", "all", NS, ["warm-up"]);
    const base = installedRulesOf("pod", "all", NS);
    const calls = run.server.requests.entries()
      .filter((r) => r.url.startsWith("/api/") || r.url.startsWith("/apis/"))
      .map((r) => apiCallOf(r.method, r.url));
    for (const call of calls) assert(isAllowed(withWarmUp, call), JSON.stringify(call));
    assertEquals(
      [...new Set(calls.filter((c) => !isAllowed(base, c)).map((c) => `${c.verb} ${c.resource}`))]
        .sort(),
      ["get nodes", "patch nodes", "patch nodes/status"],
    );
  } finally {
    await run.stop();
  }
});

Deno.test("--warm-timeout lifts the taint while an image keeps failing", async () => {
  const run = await start(
    [...IMAGES.map((i) => `--image=${i}`)],
    (kubelet) => kubelet.markUnpullable(IMAGES[2]),
    { warmTimeoutMs: 1_500 },
  );
  try {
    await waitFor(() => !taintKeys(node(run.server)).includes(KEY), {
      what: "taint lifted by timeout",
      timeoutMs: 30_000,
    });
    assertEquals(condition(node(run.server))?.status, "False");
    assertMatch(condition(node(run.server))!.message!, /1 of 3 desired images missing/);
    const event = await waitFor(() =>
      run.server.list("events", { namespace: "default" }).find((e) =>
        (e as { reason?: string }).reason === "WarmUpTimedOut"
      )
    );
    assertMatch((event as { message?: string }).message!, /2 of 3 images present, 1 failed/);
  } finally {
    await run.stop();
  }
});

Deno.test("another writer's taint edit between the daemon's read and its patch is kept", async () => {
  const run = await start([`--image=${IMAGES[0]}`], (kubelet, server) => {
    kubelet.setPullDelay(IMAGES[0], 200);
    // Just before the daemon's taint patch, another writer adds a taint.
    server.faults.beforeNext({ verb: "patch", resource: "nodes" }, () => {
      const n = node(server);
      server.update("nodes", { ...n, spec: { ...n.spec, taints: [...n.spec!.taints!, OTHER] } });
    });
  });
  try {
    await waitFor(() => !taintKeys(node(run.server)).includes(KEY), {
      what: "taint lifted",
      timeoutMs: 30_000,
    });
    assertEquals(node(run.server).spec!.taints, [OTHER]);
    // The first patch's test op failed; the daemon read again and retried.
    await waitFor(() =>
      run.versions.some((v) => v.taints.includes(KEY) && v.taints.includes(OTHER.key))
    );
  } finally {
    await run.stop();
  }
});

Deno.test("the condition flips back to False when new images are desired, and the taint is not re-added", async () => {
  const run = await start(
    ["--configmap-namespaces=" + NS],
    (kubelet, server) => {
      kubelet.setPullDelay("docker.io/library/late:1", 500);
      server.create("configmaps", {
        metadata: {
          namespace: NS,
          name: "images",
          labels: { "app.kubernetes.io/part-of": "image-cache-daemon" },
        },
        data: { images: JSON.stringify([IMAGES[0]]) },
      });
    },
  );
  try {
    await waitFor(() => condition(node(run.server))?.status === "True", { timeoutMs: 30_000 });
    await waitFor(() => taintKeys(node(run.server)).length === 0, { timeoutMs: 30_000 });
    const cm = run.server.get("configmaps", NS, "images")!;
    run.server.update("configmaps", {
      ...cm,
      data: { images: JSON.stringify([IMAGES[0], "docker.io/library/late:1"]) },
    });
    await waitFor(() => condition(node(run.server))?.status === "False", { timeoutMs: 30_000 });
    assertMatch(condition(node(run.server))!.message!, /^1 of 2 desired images missing/);
    await waitFor(() => condition(node(run.server))?.status === "True", { timeoutMs: 30_000 });
    assertEquals(taintKeys(node(run.server)), []);
  } finally {
    await run.stop();
  }
});

Deno.test("a daemon restarted mid-warm-up keeps the taint until the node is warm", async () => {
  const run = await start(
    [...IMAGES.map((i) => `--image=${i}`), "--max-concurrent-pulls=1"],
    (kubelet) => {
      for (const image of IMAGES) kubelet.setPullDelay(image, 300);
    },
  );
  try {
    await waitFor(() => run.kubelet.imagesPresent().length >= 1, { timeoutMs: 30_000 });
    await run.stopDaemon();
    assertEquals(taintKeys(node(run.server)), [KEY]);
    assertEquals(condition(node(run.server))?.status, "False");
    await run.startDaemon();
    await waitFor(() => !taintKeys(node(run.server)).includes(KEY), { timeoutMs: 30_000 });
    for (const v of run.versions.filter((v) => !v.taints.includes(KEY))) {
      for (const image of IMAGES) assert(v.images.includes(image), `${image} in ${v.images}`);
    }
    assertEquals(condition(node(run.server))?.status, "True");
  } finally {
    await run.stop();
  }
});

Deno.test("after a restart the warm-timeout still counts from the Node's registration", async () => {
  const run = await start(
    [...IMAGES.map((i) => `--image=${i}`)],
    (kubelet) => kubelet.markUnpullable(IMAGES[2]),
    { warmTimeoutMs: 60 * 60_000 },
  );
  try {
    await waitFor(() => condition(node(run.server))?.status === "False", { timeoutMs: 30_000 });
    await run.stopDaemon();
    assertEquals(taintKeys(node(run.server)), [KEY]);
    const created = new Date(node(run.server).metadata!.creationTimestamp!).getTime();
    // creationTimestamp has whole seconds: wait until the node is surely older than 2 s.
    await waitFor(() => Date.now() - created > 3_000, { timeoutMs: 10_000 });
    // A fresh process reports the deadline as registration plus timeout.
    await run.startDaemon();
    await waitFor(() => run.parts.warmUp?.status().taintState === "waiting");
    assertEquals(run.parts.warmUp!.status().deadline, created + 60 * 60_000);
    await run.stopDaemon();
    // One whose timeout the node's age already exceeds lifts the taint at once.
    await run.startDaemon({ warmTimeoutMs: 2_000 });
    await waitFor(() => !taintKeys(node(run.server)).includes(KEY), { timeoutMs: 30_000 });
    assertEquals(condition(node(run.server))?.status, "False");
  } finally {
    await run.stop();
  }
});
