/**
 * The whole daemon (sources → dedupe map → node puller → warden pods) against
 * the fake API server and its simulated kubelet, through the real client-node.
 */
import { Watch } from "@kubernetes/client-node";
import type { V1Pod } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { type Config, loadConfig } from "../config/config.ts";
import { recordingLogger } from "../log/logger.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";
import { restrictedViolations } from "../testing/restricted_profile.ts";
import { readinessReport } from "../operate/health.ts";

const NS = "image-cache";
const NODE = "node-1";
const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };
const DIGEST = "sha256:" + "b".repeat(64);

interface Run {
  server: FakeApiServer;
  parts: DaemonParts;
  log: ReturnType<typeof recordingLogger>;
  /** Pull pods seen, in creation order, with the most alive at once. */
  pods: { created: V1Pod[]; maxAlive: number; alive: Set<string>; events: string[] };
  stop(): Promise<void>;
}

/** Watches pull pods from the outside, to assert what the daemon created. */
async function trackPods(server: FakeApiServer, signal: AbortSignal) {
  const seen = {
    created: [] as V1Pod[],
    maxAlive: 0,
    alive: new Set<string>(),
    /** `ADDED name` / `DELETED name`, in the order the watch delivered them. */
    events: [] as string[],
  };
  const controller = await new Watch(server.kubeConfig()).watch(
    `/api/v1/namespaces/${NS}/pods`,
    { resourceVersion: "0", labelSelector: "app.kubernetes.io/part-of=image-cache-daemon" },
    (type: string, pod: V1Pod) => {
      const name = pod.metadata!.name!;
      if (type === "ADDED" || type === "DELETED") seen.events.push(`${type} ${name}`);
      if (type === "ADDED") {
        seen.created.push(pod);
        seen.alive.add(name);
        seen.maxAlive = Math.max(seen.maxAlive, seen.alive.size);
      } else if (type === "DELETED") {
        seen.alive.delete(name);
      }
    },
    () => {},
  );
  signal.addEventListener("abort", () => controller.abort());
  return seen;
}

async function startDaemon(
  args: string[],
  setup: (server: FakeApiServer) => void | Promise<void> = () => {},
  serverOptions: Parameters<typeof startFakeApiServer>[0] = {},
  options: {
    waitReady?: boolean;
    /**
     * Values set past the flags' bounds: the minimums that protect a real
     * cluster (1 m resync, 1 s timeout) would make these tests slow.
     */
    config?: Partial<Config>;
  } = {},
): Promise<Run> {
  const server = await startFakeApiServer({ nodes: [NODE], ...serverOptions });
  server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
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
  const self = server.get("pods", NS, "icd-self") as unknown as V1Pod;
  await setup(server);
  const controller = new AbortController();
  const pods = await trackPods(server, controller.signal);
  const { config: loaded } = loadConfig([
    `--node-name=${NODE}`,
    `--pod-namespace=${NS}`,
    "--pod-name=icd-self",
    `--pod-uid=${self.metadata!.uid}`,
    "--metrics-bind-address=0",
    ...args,
  ], () => undefined);
  const config: Config = { ...loaded, ...options.config };
  const log = recordingLogger();
  let parts: DaemonParts | undefined;
  const running = runDaemon(config, {
    kubeConfig: server.kubeConfig(),
    log,
    sourceBackoffBaseMs: 20,
    sourceBackoffMaxMs: 200,
    onStarted: (p) => parts = p,
  }, controller.signal);
  if (options.waitReady ?? true) await waitFor(() => parts?.ready(), { what: "daemon ready" });
  else await waitFor(() => parts, { what: "daemon started" });
  return {
    server,
    parts: parts!,
    log,
    pods,
    async stop() {
      controller.abort();
      await running;
      await server.close();
    },
  };
}

const state = (run: Run, ref: string) => run.parts.puller.status().find((s) => s.ref === ref);

Deno.test("Daemon pulls a ConfigMap's images with warden pods, records the digest and deletes the pods", async () => {
  const run = await startDaemon([], (server) => {
    server.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["alpine:3.20", "nginx:1.27"]' },
    });
  });
  try {
    await waitFor(() => run.parts.puller.allPresent() && run.parts.desired.size === 2, {
      what: "all present",
    });
    const alpine = state(run, "docker.io/library/alpine:3.20")!;
    assertEquals(alpine.state, "present");
    assertMatch(alpine.digest ?? "", /sha256:[0-9a-f]{64}/);
    await waitFor(
      () =>
        run.server.list("pods", {
          namespace: NS,
          labelSelector: "app.kubernetes.io/part-of=image-cache-daemon",
        }).length === 0,
      {
        what: "pull pods deleted",
      },
    );
    assertEquals(run.pods.created.length, 2);
    assertEquals(
      run.server.kubelet(NODE).imagesPresent().includes("docker.io/library/nginx:1.27"),
      true,
    );
  } finally {
    await run.stop();
  }
});

Deno.test("Warden pods carry the owner, pull secrets, tolerations and pass the restricted profile", async () => {
  const run = await startDaemon([
    "--image=alpine:3.20",
    "--image-pull-secret=regcred",
    "--pull-priority-class=low",
  ]);
  try {
    await waitFor(() => run.pods.created.length === 1, { what: "pod created" });
    const pod = run.pods.created[0];
    const self = run.server.get("pods", NS, "icd-self") as unknown as V1Pod;
    assertEquals(pod.spec!.nodeName, NODE);
    assertEquals(pod.metadata!.ownerReferences![0].uid, self.metadata!.uid);
    assertEquals(pod.metadata!.ownerReferences![0].kind, "Pod");
    assertEquals(pod.spec!.imagePullSecrets, [{ name: "regcred" }]);
    assertEquals(pod.spec!.tolerations, [{ operator: "Exists" }]);
    assertEquals(pod.spec!.priorityClassName, "low");
    assertEquals(pod.spec!.containers[0].image, "docker.io/library/alpine:3.20");
    assertEquals(pod.spec!.containers[0].imagePullPolicy, "Always");
    assertEquals(restrictedViolations(pod), []);
  } finally {
    await run.stop();
  }
});

Deno.test("An unpullable image fails with ErrImagePull, backs off and is retried", async () => {
  const run = await startDaemon(
    ["--image=ghcr.io/nope/missing:1", "--pull-backoff-max=1s"],
    (s) => {
      s.kubelet(NODE).markUnpullable("ghcr.io/nope/missing:1");
    },
  );
  try {
    const ref = "ghcr.io/nope/missing:1";
    await waitFor(() => (state(run, ref)?.attempts ?? 0) >= 2, {
      what: "retried",
      timeoutMs: 15_000,
    });
    const s = state(run, ref)!;
    assertEquals(s.lastErrorReason, "ErrImagePull");
    assertMatch(s.lastError ?? "", /missing/);
    // One Warning on the daemon's pod, naming the image; repeats are aggregated.
    const failed = await waitFor(() => {
      const events = run.server.list("events", { namespace: NS }).filter((e) =>
        (e as { reason?: string }).reason === "PullFailed"
      ) as unknown as { type: string; message: string; involvedObject: { name: string } }[];
      return events.length > 0 ? events : undefined;
    }, { what: "PullFailed Event" });
    assertEquals(failed.length, 1);
    assertEquals(failed[0].type, "Warning");
    assertEquals(failed[0].involvedObject.name, "icd-self");
    assertMatch(failed[0].message, /^ghcr\.io\/nope\/missing:1: /);
    await waitFor(() => run.pods.alive.size === 0, { what: "failed pods deleted" });
  } finally {
    await run.stop();
  }
});

Deno.test("Pull secrets go only on warden pods of images the operator's own origins ask for", async () => {
  const cm = (namespace: string, name: string, images: string[]) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace, name, labels: LABELS },
    data: { images: JSON.stringify(images) },
  });
  const run = await startDaemon([
    "--image=alpine:3.20",
    "--image-pull-secret=regcred",
    "--trusted-namespaces=platform",
  ], (s) => {
    // A tenant asks for a private image, another image only it names, and one
    // the operator also lists.
    s.create("configmaps", cm("tenant", "list", ["ghcr.io/acme/private:1", "alpine:3.20"]));
    s.create("configmaps", cm("platform", "list", ["ghcr.io/acme/tools:2"]));
  });
  try {
    await waitFor(() => run.pods.created.length === 3, { what: "three pull pods" });
    const secrets = Object.fromEntries(
      run.pods.created.map((p) => [p.spec!.containers[0].image, p.spec!.imagePullSecrets]),
    );
    assertEquals(secrets, {
      "docker.io/library/alpine:3.20": [{ name: "regcred" }],
      "ghcr.io/acme/tools:2": [{ name: "regcred" }],
      "ghcr.io/acme/private:1": undefined,
    });
  } finally {
    await run.stop();
  }
});

Deno.test("A NODE_NAME naming no node is reported and makes the daemon not ready, with no pull pod, until the node exists", async () => {
  const run = await startDaemon(["--image=alpine:3.20", "--node-name=ghost"], undefined, {}, {
    waitReady: false,
  });
  try {
    await waitFor(
      () =>
        run.log.lines.some((l) => l.msg === "Node not found; nothing is pulled until it exists"),
      {
        what: "the node-not-found line",
      },
    );
    const line = run.log.lines.find((l) =>
      l.msg === "Node not found; nothing is pulled until it exists"
    )!;
    assertEquals(line.node, "ghost");
    const report = readinessReport(run.parts);
    assertEquals(report.ready, false);
    assert(
      report.notReady.some((r) => /Node "ghost" does not exist: --node-name \(NODE_NAME\)/.test(r)),
    );
    assertEquals(run.pods.created.length, 0);
    assertEquals(
      run.log.lines.filter((l) => l.msg === "Node not found; nothing is pulled until it exists")
        .length,
      1,
    );
    run.server.addNode("ghost");
    await waitFor(() => run.parts.ready(), { what: "ready once the node exists" });
    await waitFor(() => run.pods.created.length === 1, { what: "a pull pod for the node" });
    assertEquals(run.pods.created[0].spec!.nodeName, "ghost");
  } finally {
    await run.stop();
  }
});

Deno.test("A pull stuck past --pull-timeout is abandoned, its pod deleted, and counted as Timeout", async () => {
  const run = await startDaemon(
    ["--image=alpine:3.20"],
    (s) => {
      s.kubelet(NODE).stickPending(true);
    },
    {},
    { config: { pullTimeoutMs: 300 } },
  );
  try {
    await waitFor(
      () => state(run, "docker.io/library/alpine:3.20")?.lastErrorReason === "Timeout",
      {
        what: "timeout",
      },
    );
    await waitFor(() => run.pods.alive.size === 0, { what: "timed-out pod deleted" });
  } finally {
    await run.stop();
  }
});

Deno.test("Never more pull pods in flight than --max-concurrent-pulls over 50 images", async () => {
  const images = Array.from({ length: 50 }, (_, i) => `registry.example.com/app/img${i}:v1`);
  const run = await startDaemon(
    ["--max-concurrent-pulls=3", ...images.map((i) => `--image=${i}`)],
    (s) => {
      s.kubelet(NODE).defaultPullDelayMs = 15;
    },
  );
  try {
    await waitFor(() => run.parts.puller.allPresent(), { what: "50 present", timeoutMs: 30_000 });
    assertEquals(run.pods.created.length, 50);
    assert(run.pods.maxAlive <= 3, `saw ${run.pods.maxAlive} pods at once`);
    assert(run.pods.maxAlive >= 2, "pulls ran concurrently");
  } finally {
    await run.stop();
  }
});

Deno.test("An image removed from the desired set has its in-flight pod deleted", async () => {
  const run = await startDaemon([], (s) => {
    s.kubelet(NODE).setPullDelay("docker.io/library/slow:1", 60_000);
    s.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["slow:1"]' },
    });
  });
  try {
    await waitFor(() => run.pods.alive.size === 1, { what: "pod in flight" });
    run.server.delete("configmaps", "apps", "list");
    await waitFor(() => run.pods.alive.size === 0, { what: "pod cancelled" });
    assertEquals(run.parts.puller.status(), []);
  } finally {
    await run.stop();
  }
});

Deno.test("At start, pull pods left on this node by an earlier instance are deleted before new ones", async () => {
  const run = await startDaemon(["--image=alpine:3.20"], (s) => {
    s.kubelet(NODE).stickPending(true);
    for (const name of ["old-1", "old-2"]) {
      s.create("pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          namespace: NS,
          name,
          labels: {
            "app.kubernetes.io/part-of": "image-cache-daemon",
            "app.kubernetes.io/managed-by": "image-cache-daemon",
            "image-cache-daemon/node": NODE,
          },
        },
        spec: { nodeName: NODE, containers: [{ name: "main", image: "x" }] },
      });
    }
  });
  try {
    await waitFor(() => run.pods.created.some((p) => !p.metadata!.name!.startsWith("old-")), {
      what: "new pod",
    });
    assertEquals(run.server.get("pods", NS, "old-1"), undefined);
    assertEquals(run.server.get("pods", NS, "old-2"), undefined);
    // In that order: both leftovers gone before the first new pod exists.
    const events = run.pods.events;
    const firstNew = events.findIndex((e) => e.startsWith("ADDED") && !e.includes(" old-"));
    for (const old of ["old-1", "old-2"]) {
      const deleted = events.indexOf(`DELETED ${old}`);
      assert(deleted !== -1 && deleted < firstNew, `order: ${events.join(", ")}`);
    }
  } finally {
    await run.stop();
  }
});

Deno.test("A digest-pinned image the node already reports is never pulled, not even at resync", async () => {
  const ref = `docker.io/library/alpine@${DIGEST}`;
  const run = await startDaemon(
    [`--image=${ref}`],
    (s) => {
      s.kubelet(NODE).preloadImage(ref);
    },
    {},
    { config: { resyncPeriodMs: 200 } },
  );
  try {
    await waitFor(() => state(run, ref)?.state === "present", { what: "present" });
    // Three resync checks happen (each schedules the next); none may create a pod.
    const checks = new Set<number>();
    await waitFor(() => {
      const next = state(run, ref)?.nextAttempt;
      if (next !== undefined) checks.add(next);
      return checks.size > 3;
    }, { what: "three resync checks" });
    assertEquals(run.pods.created.length, 0);
  } finally {
    await run.stop();
  }
});

Deno.test("Resync pulls tag references again, with imagePullPolicy Always", async () => {
  const run = await startDaemon(["--image=alpine:3.20"], undefined, {}, {
    config: { resyncPeriodMs: 300 },
  });
  try {
    await waitFor(() => run.pods.created.length >= 2, { what: "resync pull", timeoutMs: 10_000 });
    assert(run.pods.created.every((p) => p.spec!.containers[0].imagePullPolicy === "Always"));
  } finally {
    await run.stop();
  }
});

Deno.test("A pull pod deleted while the pod watch was down fails its pull as PodDeleted after the relist, and is retried", async () => {
  const run = await startDaemon(["--pull-backoff-max=1s"], (s) => {
    s.kubelet(NODE).setPullDelay("docker.io/library/slow:1", 60_000);
    s.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["slow:1"]' },
    });
  }, { retainedEvents: 5 });
  try {
    await waitFor(() => run.pods.alive.size === 1, { what: "pod in flight" });
    const [name] = run.pods.alive;
    // In one tick: the watch goes, the pod goes, and the history with it, so
    // the daemon can learn of the deletion only by relisting.
    run.server.faults.dropWatches();
    run.server.delete("pods", NS, name, { gracePeriodSeconds: 0 });
    run.server.compact();
    const ref = "docker.io/library/slow:1";
    await waitFor(() => state(run, ref)?.lastErrorReason === "PodDeleted", {
      what: "PodDeleted",
    });
    // (This test's own pod tracker lost its watch too, so ask the puller.)
    await waitFor(() => (state(run, ref)?.attempts ?? 0) >= 2, { what: "retried" });
    await waitFor(
      () =>
        run.server.list("pods", { namespace: NS, labelSelector: "image-cache-daemon/node=node-1" })
          .length === 1,
      { what: "a new pull pod" },
    );
  } finally {
    await run.stop();
  }
});

Deno.test("The daemon's pod gets one Normal AllImagesPresent Event, also when nothing needed pulling", async (t) => {
  const allPresentEvents = (run: Run) =>
    run.server.list("events", { namespace: NS }).filter((e) =>
      (e as { reason?: string }).reason === "AllImagesPresent"
    ) as unknown as { type: string; involvedObject: { name: string }; message: string }[];
  await t.step("after pulls", async () => {
    const run = await startDaemon(["--image=alpine:3.20", "--image=nginx:1.27"]);
    try {
      await waitFor(() => allPresentEvents(run).length === 1, { what: "Event" });
      const [event] = allPresentEvents(run);
      assertEquals(event.type, "Normal");
      assertEquals(event.involvedObject.name, "icd-self");
      assertMatch(event.message, /Node node-1 holds all 2 desired images/);
    } finally {
      await run.stop();
    }
  });
  await t.step("with every image already on the node", async () => {
    const ref = `docker.io/library/alpine@${DIGEST}`;
    const run = await startDaemon([`--image=${ref}`], (s) => s.kubelet(NODE).preloadImage(ref));
    try {
      await waitFor(() => allPresentEvents(run).length === 1, { what: "Event" });
      assertEquals(run.pods.created.length, 0);
    } finally {
      await run.stop();
    }
  });
});

Deno.test("The daemon's pull-pod and Node watches report their state for health and status", async () => {
  const run = await startDaemon(["--image=alpine:3.20"]);
  try {
    await waitFor(() => run.parts.puller.allPresent(), { what: "present" });
    const watches = run.parts.watches.map((w) => w.status());
    assertEquals(watches.map((w) => [w.name, w.synced, w.available]), [
      ["node", true, true],
      ["pull-pods", true, true],
    ]);
    assert(watches.every((w) => w.lastActivity !== undefined));
  } finally {
    await run.stop();
  }
});

Deno.test("No pull starts until every enabled source has synced", async () => {
  const run = await startDaemon(
    ["--image=alpine:3.20"],
    (s) => {
      // The WorkflowTemplate source cannot list for a while (500 is not
      // "unavailable", so it does not count as synced).
      s.faults.failNext(15, 500, { match: { verb: "list", resource: "workflowtemplates" } });
    },
    {},
    { waitReady: false },
  );
  try {
    await waitFor(
      () => run.server.requests.counts()["list workflowtemplates"] >= 3,
      { what: "the source retrying its list" },
    );
    assertEquals(run.parts.ready(), false);
    assertEquals(run.pods.created.length, 0, "a pull started before every source synced");
    await waitFor(() => run.parts.puller.allPresent(), {
      what: "pulled once synced",
      timeoutMs: 30_000,
    });
    assertEquals(run.pods.created.length, 1);
  } finally {
    await run.stop();
  }
});
