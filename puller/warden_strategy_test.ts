import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { PullError } from "./errors.ts";
import type { KubeConfig } from "@kubernetes/client-node";
import {
  podOutcome,
  readOwnTolerations,
  WardenPodStrategy,
  type WardenPodStrategyOptions,
} from "./warden_strategy.ts";
import { FakeClock } from "../time/clock.ts";
import { wardenPodSelector } from "./warden_pod.ts";
import { waitFor } from "../testing/wait.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { recordingLogger } from "../log/logger.ts";
import { boundRequests } from "../kube/client.ts";

const REF = "docker.io/library/alpine:3.20";
type Pod = Parameters<typeof podOutcome>[1];
const waiting = (reason: string, message?: string) => ({
  name: "main",
  image: REF,
  imageID: "",
  ready: false,
  restartCount: 0,
  state: { waiting: { reason, message } },
});

Deno.test("podOutcome() reads a pull pod's status", async (t) => {
  const cases: {
    name: string;
    pod: Pod;
    expect:
      | { ok: string }
      | { reason: string; permanent: boolean; message: RegExp }
      | "pending";
  }[] = [
    { name: "just created", pod: { name: "p", phase: "Pending" }, expect: "pending" },
    {
      name: "main terminated with an image ID",
      pod: {
        name: "p",
        phase: "Succeeded",
        main: {
          name: "main",
          image: REF,
          imageID: "docker.io/library/alpine@sha256:" + "a".repeat(64),
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0 } },
        },
      },
      expect: { ok: "docker.io/library/alpine@sha256:" + "a".repeat(64) },
    },
    {
      name: "main terminated with an error but an image ID: pulled all the same",
      pod: {
        name: "p",
        phase: "Failed",
        main: {
          name: "main",
          image: REF,
          imageID: "sha256:" + "b".repeat(64),
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 1, reason: "Error" } },
        },
      },
      expect: { ok: "sha256:" + "b".repeat(64) },
    },
    {
      name: "ErrImagePull: retryable",
      pod: { name: "p", main: waiting("ErrImagePull", "manifest unknown") },
      expect: { reason: "ErrImagePull", permanent: false, message: /manifest unknown/ },
    },
    {
      name: "ImagePullBackOff: retryable",
      pod: { name: "p", main: waiting("ImagePullBackOff", "Back-off pulling image") },
      expect: { reason: "ErrImagePull", permanent: false, message: /Back-off/ },
    },
    {
      name: "no variant for the node's platform: parked",
      pod: {
        name: "p",
        main: waiting(
          "ErrImagePull",
          "no matching manifest for linux/arm64/v8 in the manifest list entries",
        ),
      },
      expect: { reason: "NoMatchingPlatform", permanent: true, message: /no matching manifest/ },
    },
    {
      name: "InvalidImageName: parked",
      pod: { name: "p", main: waiting("InvalidImageName", "couldn't parse image reference") },
      expect: { reason: "InvalidImageName", permanent: true, message: /couldn't parse/ },
    },
    {
      name: "the warden image cannot be pulled",
      pod: {
        name: "p",
        init: { ...waiting("ImagePullBackOff", "not found"), name: "warden" },
      },
      expect: { reason: "ErrImagePull", permanent: false, message: /check --warden-image/ },
    },
    {
      name: "the kubelet rejected the pod",
      pod: {
        name: "p",
        phase: "Failed",
        reason: "OutOfpods",
        message: "Node didn't have enough resource: pods",
      },
      expect: { reason: "PodRejected", permanent: false, message: /OutOfpods: Node didn't have/ },
    },
    {
      name: "main ended without an image ID",
      pod: {
        name: "p",
        main: {
          name: "main",
          image: REF,
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 128, reason: "StartError" } },
        },
      },
      expect: {
        reason: "RuntimeError",
        permanent: false,
        message: /without an image ID: StartError/,
      },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const outcome = podOutcome(REF, c.pod);
      if (c.expect === "pending") return assertEquals(outcome, undefined);
      if ("ok" in c.expect) return assertEquals(outcome, { digest: c.expect.ok });
      assert(outcome instanceof PullError, `expected a PullError, got ${JSON.stringify(outcome)}`);
      assertEquals([outcome.reason, outcome.permanent], [c.expect.reason, c.expect.permanent]);
      assertMatch(outcome.message, c.expect.message);
      assertEquals(outcome.ref, REF);
    });
  }
});

Deno.test("readOwnTolerations() copies the daemon pod's tolerations, and warns and goes on without them", async () => {
  const server = await startFakeApiServer();
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "icd" } });
    const tolerations = [{ key: "gpu", operator: "Exists", effect: "NoSchedule" }];
    server.create("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "icd-abc", namespace: "icd" },
      spec: { containers: [{ name: "daemon", image: "icd:1" }], tolerations },
    });
    const log = recordingLogger();
    const read = (pod?: string) =>
      readOwnTolerations({ kubeConfig: server.kubeConfig(), namespace: "icd", pod, log });
    assertEquals(JSON.parse(JSON.stringify(await read("icd-abc"))), tolerations);
    assertEquals(log.lines, []);
    assertEquals(await read("gone"), undefined);
    assertEquals(log.lines.map((l) => [l.level, l.msg, l.pod]), [
      ["warn", "Cannot read the daemon's own pod; pull pods get no tolerations", "gone"],
    ]);
    assertEquals(server.requests.counts()["get pods"], 2);
    assertEquals(await read(undefined), undefined);
    assertEquals(server.requests.counts()["get pods"], 2, "no pod name, no request");
  } finally {
    await server.close();
  }
});

Deno.test("WardenPodStrategy retries a failed pull-pod delete with doubling, jittered delays up to 30 s", async () => {
  // The pull-pod watch shares the fake clock: its watchdog re-arms at each
  // BOOKMARK, measuring the beat on fake time, so a bookmark arriving (every
  // real second by default) put a timer 5 s ahead that the loop below took
  // for the retry timer. Without bookmarks the watchdog waits out the
  // watch's own timeout (>= 330 s, past this whole schedule).
  const server = await startFakeApiServer({ bookmarkIntervalMs: 3_600_000 });
  const clock = new FakeClock(1_700_000_000_000);
  const strategy = newStrategy(server.kubeConfig(), {
    clock,
    random: () => 0, // the low end of the jitter: 80 % of each nominal delay
  });
  const stop = new AbortController();
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "icd" } });
    // A pull pod an earlier instance left on this node: start() deletes it.
    server.create("pods", newWardenPodLeftover());
    const failures = 7;
    server.faults.failNext(failures, 500, { match: { verb: "delete", resource: "pods" } });
    const starting = strategy.start(stop.signal);
    const deletes = () => server.requests.counts()["delete pods"] ?? 0;
    const waits: number[] = [];
    for (let attempt = 1; attempt <= failures; attempt++) {
      // The server counts a delete before its 500 reaches the strategy, and
      // the watchdog's timer is always pending: wait for a timer within the
      // 30 s cap, which only the retry sets.
      await waitFor(
        () => deletes() === attempt && (clock.nextTimerAt() ?? Infinity) - clock.now() <= 30_000,
        { what: `delete attempt ${attempt} and its retry timer (due within 30 s)` },
      );
      const wait = clock.nextTimerAt()! - clock.now();
      waits.push(wait);
      await clock.advance(wait);
    }
    await starting;
    assertEquals(waits, [800, 1_600, 3_200, 6_400, 12_800, 24_000, 24_000]);
    assertEquals(deletes(), failures + 1);
    assertEquals(server.list("pods", { namespace: "icd" }).length, 0);
  } finally {
    stop.abort();
    await strategy.close();
    await server.close();
  }
});

Deno.test("WardenPodStrategy deletes a finished pull pod whose create timed out on its side, and only that one", async () => {
  const server = await startFakeApiServer({ nodes: ["node-1"], namespaces: ["icd"] });
  const log = recordingLogger();
  // Writes bounded at 200 ms: a create slower than that times out here
  // while the API server still makes the pod.
  const strategy = newStrategy(boundRequests(server.kubeConfig(), 30_000, 200), { log });
  const stop = new AbortController();
  const pods = () => server.list("pods", { namespace: "icd" }).length;
  const deletes = () => server.requests.counts()["delete pods"] ?? 0;
  try {
    await strategy.start(stop.signal);
    server.faults.setLatency(1_000);
    const error = await strategy.pull(REF, { signal: stop.signal, refresh: false }).then(
      () => undefined,
      (e) => e,
    );
    server.faults.setLatency(0);
    assert(error instanceof PullError, String(error));
    assertMatch(error.message, /timed out after 200 ms/);
    // The API server made the pod after all; it runs, and is collected once done.
    await waitFor(() => pods() === 1, { what: "the pod the timed-out create made" });
    await waitFor(() => pods() === 0 && deletes() === 1, { what: "the orphan deleted" });
    assert(log.lines.some((l) => String(l.msg).startsWith("Deleting a finished pull pod no pull")));
    // A pull of this instance's own costs one delete, its own: never taken for an orphan.
    await strategy.pull(REF, { signal: stop.signal, refresh: false });
    await waitFor(() => pods() === 0, { what: "the pull's pod deleted" });
    assertEquals(deletes(), 2);
  } finally {
    server.faults.setLatency(0);
    stop.abort();
    await strategy.close();
    await server.close();
  }
});

/** The strategy of node-1 in namespace icd, with `options` over those. */
function newStrategy(
  kubeConfig: KubeConfig,
  options: Partial<WardenPodStrategyOptions> = {},
): WardenPodStrategy {
  return new WardenPodStrategy({
    kubeConfig,
    namespace: "icd",
    node: "node-1",
    wardenImage: "ghcr.io/image-cache-daemon/warden:test",
    log: recordingLogger(),
    ...options,
  });
}

function newWardenPodLeftover() {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "leftover",
      namespace: "icd",
      labels: Object.fromEntries(
        wardenPodSelector("node-1").split(",").map((pair) => pair.split("=")),
      ),
    },
    spec: { nodeName: "node-1", containers: [{ name: "main", image: "alpine:3.20" }] },
  };
}

Deno.test("WardenPodStrategy.start() asked for while the daemon stops returns at once, deleting nothing", async () => {
  const server = await startFakeApiServer();
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "icd" } });
    server.create("pods", newWardenPodLeftover());
    const strategy = newStrategy(server.kubeConfig());
    const stopped = new AbortController();
    stopped.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      strategy.start(stopped.signal).then(() => "returned"),
      new Promise((resolve) => timer = setTimeout(() => resolve("still waiting"), 2_000)),
    ]);
    clearTimeout(timer);
    assertEquals(result, "returned");
    assertEquals(server.requests.counts()["delete pods"] ?? 0, 0);
    await strategy.close();
  } finally {
    await server.close();
  }
});
