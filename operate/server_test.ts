import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { FakeClock } from "../time/clock.ts";
import { PullError } from "../puller/errors.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { nullLogger, recordingLogger } from "../log/logger.ts";
import { NodePuller } from "../puller/node_puller.ts";
import type { PullOptions, PullResult, PullStrategy } from "../puller/strategy.ts";
import { DaemonMetrics, METRIC_PREFIX } from "./metrics.ts";
import type { ServedParts } from "./parts.ts";
import { operationsListeners, type OperationsServerOptions, serveOperations } from "./server.ts";
import { fakeParts, FakeSource, partsWith, sampleValue } from "../testing/fake_parts.ts";

const m = (name: string) => METRIC_PREFIX + name;

interface Running {
  get(path: string, init?: RequestInit): Promise<{ status: number; type: string; body: string }>;
}

/** Runs `body` against a server on a free port, and always stops the server. */
async function withServer(
  options: Partial<OperationsServerOptions> & { parts: () => ServedParts | undefined },
  body: (server: Running) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const server = serveOperations({
    hostname: "127.0.0.1",
    port: 0,
    metrics: new DaemonMetrics(),
    log: nullLogger,
    signal: controller.signal,
    ...options,
  });
  assert(server.port > 0);
  try {
    await body({
      async get(path, init) {
        const response = await fetch(`http://127.0.0.1:${server.port}${path}`, init);
        return {
          status: response.status,
          type: response.headers.get("content-type") ?? "",
          body: await response.text(),
        };
      },
    });
  } finally {
    controller.abort();
    await server.finished;
  }
}

Deno.test("serveOperations() /readyz is 503 until the parts exist and report ready", async () => {
  let parts: ReturnType<typeof fakeParts> | undefined;
  const configmap = new FakeSource("configmap", { synced: false });
  await withServer({ parts: () => parts }, async (server) => {
    let res = await server.get("/readyz");
    assertEquals(res.status, 503);
    assertEquals(JSON.parse(res.body), { notReady: ["The daemon is starting"] });

    parts = fakeParts([configmap]);
    res = await server.get("/readyz");
    assertEquals(res.status, 503);
    assertEquals(JSON.parse(res.body), {
      notReady: ['Source "configmap" has not synced', "The node puller is not running"],
    });

    configmap.update({ synced: true });
    parts.isReady = true;
    res = await server.get("/readyz");
    assertEquals([res.status, res.body], [200, "ok\n"]);
  });
});

Deno.test("serveOperations() /healthz is 503 while a source's watch is silent past the stall time", async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const source = new FakeSource("configmap", { lastActivity: clock.now() });
  const parts = fakeParts([source]);
  const log = recordingLogger("info");
  await withServer({ parts: () => parts, clock, stallMs: 600_000, log }, async (server) => {
    assertEquals((await server.get("/healthz")).status, 200);
    await clock.advance(600_001);
    let res = await server.get("/healthz");
    assertEquals(res.status, 503);
    assertMatch(res.type, /application\/json/);
    const { problems } = JSON.parse(res.body);
    assertEquals(problems.length, 1);
    assertMatch(problems[0], /Source "configmap" has not heard from its API/);
    res = await server.get("/healthz");
    assertEquals(res.status, 503);

    source.update({ lastActivity: clock.now() });
    res = await server.get("/healthz");
    assertEquals([res.status, res.body], [200, "ok\n"]);
  });
  // One line per change, not one per probe.
  assertEquals(log.lines.filter((l) => l.msg === "Health check failed").length, 1);
  assertEquals(log.lines.filter((l) => l.msg === "Health check passes again").length, 1);
});

Deno.test("serveOperations() /healthz is 200 before the parts exist", async () => {
  await withServer({ parts: () => undefined }, async (server) => {
    assertEquals((await server.get("/healthz")).status, 200);
  });
});

Deno.test("serveOperations() /metrics refreshes gauges from the parts on each scrape", async () => {
  const metrics = new DaemonMetrics();
  const source = new FakeSource("configmap", { objects: 2 });
  const parts = fakeParts([source]);
  await withServer({ parts: () => parts, metrics }, async (server) => {
    let res = await server.get("/metrics");
    assertEquals(res.status, 200);
    assertEquals(res.type, metrics.contentType);
    assertEquals(sampleValue(res.body, m("source_objects"), { source: "configmap" }), 2);
    // Not ready (the puller is not running): the gauge says what /readyz says.
    assertEquals((await server.get("/readyz")).status, 503);
    assertEquals(sampleValue(res.body, m("ready")), 0);

    parts.isReady = true;
    source.update({ objects: 7 });
    metrics.pullStarted("docker.io/library/alpine:3");
    metrics.pullFinished("docker.io/library/alpine:3", {
      ok: false,
      durationMs: 600_000,
      error: new PullError("docker.io/library/alpine:3", "Timeout", "Pull did not finish"),
    });
    res = await server.get("/metrics");
    assertEquals(sampleValue(res.body, m("ready")), 1);
    assertEquals(sampleValue(res.body, m("source_objects"), { source: "configmap" }), 7);
    assertEquals(sampleValue(res.body, m("pulls_total"), { result: "failure" }), 1);
    assertEquals(sampleValue(res.body, m("pull_failures_total"), { reason: "Timeout" }), 1);
  });
});

Deno.test("serveOperations() /status reports images with origins, sources and rejections", async () => {
  const desired = new DesiredImages();
  desired.set("static", ["alpine:3"]);
  desired.set("configmap/ci/tools", ["alpine:3", "{{inputs.parameters.image}}"]);
  const parts = partsWith(desired, [
    new FakeSource("configmap", { objects: 1, lastActivity: Date.UTC(2025, 0, 2) }),
  ]);
  parts.puller.images = [{
    ref: "docker.io/library/alpine:3",
    state: "failed",
    attempts: 2,
    consecutiveFailures: 1,
    lastError: "Pull of alpine failed",
    lastErrorReason: "ErrImagePull",
    lastAttempt: Date.UTC(2025, 0, 1, 12),
    lastSuccess: Date.UTC(2025, 0, 1, 11),
    digest: "sha256:abc",
    nextAttempt: Date.UTC(2025, 0, 1, 13),
  }];
  await withServer({ parts: () => parts, node: "node-a" }, async (server) => {
    const res = await server.get("/status");
    assertEquals(res.status, 200);
    assertMatch(res.type, /application\/json/);
    const status = JSON.parse(res.body);
    assertEquals(status.node, "node-a");
    assertEquals(status.ready, true);
    assertEquals(status.desired, 1);
    assertEquals(status.images, [{
      image: "docker.io/library/alpine:3",
      state: "failed",
      attempts: 2,
      consecutiveFailures: 1,
      lastError: "Pull of alpine failed",
      lastErrorReason: "ErrImagePull",
      lastAttempt: "2025-01-01T12:00:00.000Z",
      lastSuccess: "2025-01-01T11:00:00.000Z",
      digest: "sha256:abc",
      nextAttempt: "2025-01-01T13:00:00.000Z",
      origins: ["configmap/ci/tools", "static"],
    }]);
    assertEquals(status.sources, [{
      name: "configmap",
      synced: true,
      available: true,
      objects: 1,
      errors: 0,
      restarts: 0,
      lastActivity: "2025-01-02T00:00:00.000Z",
    }]);
    assertEquals(status.rejected.length, 1);
    assertEquals(status.rejected[0].origin, "configmap/ci/tools");
    assertEquals(status.rejected[0].count, 1);
    assertEquals(status.rejected[0].samples[0].input, "{{inputs.parameters.image}}");
    assert(status.rejected[0].samples[0].reason.length > 0);
    assertEquals([status.rejectedObjects, status.rejectedEntries], [1, 1]);
  });
});

Deno.test("serveOperations() /status stays small with 100,000 bad entries and a 900 KB reference", async () => {
  const desired = new DesiredImages();
  const bad = Array.from({ length: 100_000 }, (_, i) => `bad ref ${i}`);
  for (let i = 0; i < 200; i++) desired.set(`configmap/t/list-${i}`, ["x".repeat(900 * 1024)]);
  desired.set("configmap/t/many", bad);
  const parts = partsWith(desired);
  await withServer({ parts: () => parts }, async (server) => {
    const res = await server.get("/status");
    assert(res.body.length < 256 * 1024, `${res.body.length} bytes`);
    const status = JSON.parse(res.body);
    assertEquals(status.rejectedObjects, 201);
    assertEquals(status.rejectedEntries, 100_200);
    assertEquals(status.rejected.length, 50);
  });
});

Deno.test("serveOperations() /status builds its image list once for 120 concurrent requests, again after a change", async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const desired = new DesiredImages();
  desired.set("static/--image", Array.from({ length: 2_000 }, (_, i) => `r.example/a-${i}:1`));
  // Pulls that wait until aborted.
  const strategy: PullStrategy = {
    name: "waits",
    pull: (_ref, { signal }) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
  };
  const puller = new NodePuller({
    node: "node-a",
    strategy,
    desired,
    log: nullLogger,
    clock,
    maxConcurrentPulls: 2,
    pullTimeoutMs: 600_000,
    backoffMaxMs: 3_600_000,
    resyncPeriodMs: 0,
  });
  const stop = new AbortController();
  const run = puller.run(stop.signal);
  await clock.flush();
  const parts: ServedParts = { desired, sources: [], puller, ready: () => true };
  const controller = new AbortController();
  const server = serveOperations({
    hostname: "127.0.0.1",
    port: 0,
    metrics: new DaemonMetrics(),
    log: nullLogger,
    signal: controller.signal,
    parts: () => parts,
    connections: { maxConnections: 200, maxConnectionsPerClient: 200 },
  });
  try {
    const url = `http://127.0.0.1:${server.port}/status`;
    const bodies = await Promise.all(
      Array.from({ length: 120 }, () => fetch(url).then((r) => r.json())),
    );
    assertEquals(server.statusBuilds(), 1);
    assertEquals(server.stats().handled, 120);
    assert(bodies.every((b) => b.images.length === 500 && b.imagesTotal === 2_000));
    assertEquals(bodies[0].nextOffset, 500);
    const last = await (await fetch(`${url}?offset=1500&limit=1000`)).json();
    assertEquals([last.images.length, last.nextOffset], [500, undefined]);
    assertEquals(server.statusBuilds(), 1);
    // The puller's periodic re-reads of the desired set change nothing: no rebuild.
    await clock.advance(180_000);
    await (await fetch(url)).body?.cancel();
    assertEquals(server.statusBuilds(), 1);
    desired.set("configmap/t/x", ["r.example/new:1"]);
    await clock.flush();
    await (await fetch(url)).body?.cancel();
    assertEquals(server.statusBuilds(), 2);
  } finally {
    controller.abort();
    await server.finished;
    stop.abort();
    await run;
  }
});

Deno.test("serveOperations() serves only the paths it is given", async () => {
  await withServer(
    { parts: () => fakeParts(), paths: ["/healthz", "/readyz", "/metrics"] },
    async (server) => {
      assertEquals((await server.get("/status")).status, 404);
      assertEquals((await server.get("/healthz")).status, 200);
    },
  );
});

Deno.test("serveOperations() /status is 503 before the parts exist", async () => {
  await withServer({ parts: () => undefined }, async (server) => {
    assertEquals((await server.get("/status")).status, 503);
  });
});

Deno.test("serveOperations() answers 404 for unknown paths and 405 for other methods", async () => {
  await withServer({ parts: () => fakeParts() }, async (server) => {
    assertEquals((await server.get("/")).status, 404);
    assertEquals((await server.get("/metrics/x")).status, 404);
    const res = await server.get("/metrics", { method: "POST", body: "x" });
    assertEquals(res.status, 405);
    assertEquals((await server.get("/healthz", { method: "DELETE" })).status, 405);
  });
});

/** A strategy whose pulls the test settles by hand. */
class ManualStrategy implements PullStrategy {
  readonly name = "manual";
  readonly pending = new Map<
    string,
    { resolve(result: PullResult): void; reject(error: unknown): void }
  >();

  pull(ref: string, _options: PullOptions): Promise<PullResult> {
    return new Promise((resolve, reject) => this.pending.set(ref, { resolve, reject }));
  }
}

Deno.test("serveOperations() with a real puller: metrics and status move as pulls happen and fail", async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const desired = new DesiredImages();
  desired.set("static", ["alpine:3", "busybox:1"]);
  const strategy = new ManualStrategy();
  const metrics = new DaemonMetrics();
  const puller = new NodePuller({
    node: "node-a",
    strategy,
    desired,
    log: nullLogger,
    clock,
    maxConcurrentPulls: 2,
    pullTimeoutMs: 600_000,
    backoffMaxMs: 3_600_000,
    resyncPeriodMs: 0,
    onPullStarted: (ref) => metrics.pullStarted(ref),
    onPullFinished: (ref, result) => metrics.pullFinished(ref, result),
  });
  let running = false;
  const parts: ServedParts = { desired, sources: [], puller, ready: () => running };
  const stop = new AbortController();
  await withServer({ parts: () => parts, metrics, clock }, async (server) => {
    assertEquals((await server.get("/readyz")).status, 503);
    const run = puller.run(stop.signal);
    running = true;
    try {
      await checkPulls(server);
    } finally {
      stop.abort();
      await run;
      running = false;
    }
  });

  async function checkPulls(server: Running): Promise<void> {
    await clock.flush();
    assertEquals((await server.get("/readyz")).status, 200);
    let res = await server.get("/metrics");
    assertEquals(sampleValue(res.body, m("pulls_in_flight")), 2);
    assertEquals(sampleValue(res.body, m("desired_images")), 2);
    assertEquals(sampleValue(res.body, m("present_images")), 0);

    await clock.advance(3_000);
    strategy.pending.get("docker.io/library/alpine:3")!.resolve({ digest: "sha256:aaa" });
    strategy.pending.get("docker.io/library/busybox:1")!.reject(
      new PullError("docker.io/library/busybox:1", "Unauthorized", "Pull of busybox denied"),
    );
    await clock.flush();

    res = await server.get("/metrics");
    assertEquals(sampleValue(res.body, m("pulls_in_flight")), 0);
    assertEquals(sampleValue(res.body, m("present_images")), 1);
    assertEquals(sampleValue(res.body, m("pulls_total"), { result: "success" }), 1);
    assertEquals(sampleValue(res.body, m("pulls_total"), { result: "failure" }), 1);
    assertEquals(sampleValue(res.body, m("pull_failures_total"), { reason: "Unauthorized" }), 1);
    assertEquals(sampleValue(res.body, m("pull_duration_seconds_sum"), { result: "success" }), 3);
    assertEquals(sampleValue(res.body, m("ready")), 1);
    assertEquals(sampleValue(res.body, m("failing_images")), 1);
    assertEquals(
      sampleValue(res.body, m("image_consecutive_failures"), {
        image: "docker.io/library/busybox:1",
      }),
      1,
    );
    assertEquals(
      sampleValue(res.body, m("image_consecutive_failures"), {
        image: "docker.io/library/alpine:3",
      }),
      undefined,
    );

    res = await server.get("/status");
    const images = JSON.parse(res.body).images;
    assertEquals(images.map((i: { state: string }) => i.state), ["present", "failed"]);
    assertEquals(images[0].digest, "sha256:aaa");
    assertEquals(images[0].origins, ["static"]);
    assertEquals(images[1].lastErrorReason, "Unauthorized");
    assertEquals((await server.get("/healthz")).status, 200, "backing off is healthy");
  }
});

Deno.test("operations listeners: /status apart on its own address, or all four paths on one shared address", () => {
  const metrics = { hostname: "0.0.0.0", port: 8080 };
  const status = { hostname: "127.0.0.1", port: 8081 };
  assertEquals(operationsListeners(metrics, status), [
    {
      flag: "--metrics-bind-address",
      address: metrics,
      paths: ["/healthz", "/readyz", "/metrics"],
    },
    { flag: "--status-bind-address", address: status, paths: ["/status"] },
  ]);
  assertEquals(operationsListeners(metrics, { ...metrics }), [
    {
      flag: "--metrics-bind-address",
      address: metrics,
      paths: ["/healthz", "/readyz", "/metrics", "/status"],
    },
  ]);
  assertEquals(operationsListeners(undefined, status), [
    { flag: "--status-bind-address", address: status, paths: ["/status"] },
  ]);
  assertEquals(operationsListeners(undefined, undefined), []);
});
