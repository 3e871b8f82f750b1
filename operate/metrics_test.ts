import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { PullError } from "../puller/errors.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { DaemonMetrics, MAX_FAILING_IMAGE_SERIES, METRIC_PREFIX } from "./metrics.ts";
import { fakeParts, FakeSource, partsWith, sampleValue } from "../testing/fake_parts.ts";

const m = (name: string) => METRIC_PREFIX + name;

/** The standard process and runtime metrics, the only unprefixed ones. */
const STANDARD = [
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "deno_heap_size_total_bytes",
  "deno_heap_size_used_bytes",
];

Deno.test("DaemonMetrics renders only its own metrics, prefixed but for the standard process ones, with pull series at zero", async () => {
  const metrics = new DaemonMetrics({ version: "9.9.9" });
  const text = await metrics.render();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = line.match(/^[a-z_]+/)![0];
    assert(name.startsWith(METRIC_PREFIX) || STANDARD.includes(name), `unprefixed: ${line}`);
  }
  assertEquals(
    sampleValue(text, m("build_info"), { version: "9.9.9", deno: Deno.version.deno }),
    1,
  );
  assertEquals(sampleValue(text, m("pulls_total"), { result: "success" }), 0);
  assertEquals(sampleValue(text, m("pulls_total"), { result: "failure" }), 0);
  assertEquals(sampleValue(text, m("pull_failures_total"), { reason: "NoMatchingPlatform" }), 0);
  assertEquals(sampleValue(text, m("pull_duration_seconds_count"), { result: "success" }), 0);
  assertEquals(sampleValue(text, m("pulls_in_flight")), 0);
  assertEquals(sampleValue(text, m("ready")), 0);
  assertEquals(sampleValue(text, m("failing_images")), 0);
  assertMatch(metrics.contentType, /^text\/plain; version=0\.0\.4/);
});

Deno.test("DaemonMetrics reports process memory and CPU without /proc, under the standard names", async () => {
  const text = await new DaemonMetrics().render();
  assert(sampleValue(text, "process_resident_memory_bytes")! > 0);
  assert(sampleValue(text, "deno_heap_size_total_bytes")! > 0);
  assert(sampleValue(text, "deno_heap_size_used_bytes")! > 0);
  assert(sampleValue(text, "process_cpu_seconds_total")! > 0);
  assert(sampleValue(text, "process_start_time_seconds")! > 1_600_000_000);
  assertMatch(text, /^# TYPE process_cpu_seconds_total counter$/m);
});

Deno.test("DaemonMetrics.setReady() mirrors the readiness report as 1 or 0", async () => {
  const metrics = new DaemonMetrics();
  metrics.setReady(true);
  assertEquals(sampleValue(await metrics.render(), m("ready")), 1);
  metrics.setReady(false);
  assertEquals(sampleValue(await metrics.render(), m("ready")), 0);
});

Deno.test("DaemonMetrics exports one series per failing image, capped, and drops it once the image recovers", async () => {
  const parts = fakeParts();
  const failing = (ref: string, consecutiveFailures: number) => ({
    ref,
    state: "failed" as const,
    attempts: consecutiveFailures,
    consecutiveFailures,
  });
  // More failing images than the cap: the most-failing ones keep a series.
  parts.puller.images = [
    { ref: "ok", state: "present", attempts: 1, consecutiveFailures: 0, lastSuccess: 5 },
    failing("worst", 9),
    ...Array.from({ length: MAX_FAILING_IMAGE_SERIES + 5 }, (_, i) => failing(`img-${i}`, 1)),
  ];
  const metrics = new DaemonMetrics();
  metrics.observe(parts);
  let text = await metrics.render();
  const series = (t: string) =>
    t.split("\n").filter((l) => l.startsWith(m("image_consecutive_failures") + "{"));
  assertEquals(series(text).length, MAX_FAILING_IMAGE_SERIES);
  assertEquals(sampleValue(text, m("failing_images")), MAX_FAILING_IMAGE_SERIES + 6);
  assertEquals(sampleValue(text, m("image_consecutive_failures"), { image: "worst" }), 9);
  assertEquals(sampleValue(text, m("image_consecutive_failures"), { image: "img-0" }), 1);
  assertEquals(sampleValue(text, m("image_consecutive_failures"), { image: "ok" }), undefined);

  parts.puller.images = [
    { ref: "worst", state: "present", attempts: 10, consecutiveFailures: 0, lastSuccess: 9 },
    failing("img-3", 2),
  ];
  metrics.observe(parts);
  text = await metrics.render();
  assertEquals(series(text), [`${m("image_consecutive_failures")}{image="img-3"} 2`]);
  assertEquals(sampleValue(text, m("failing_images")), 1);
});

Deno.test("DaemonMetrics counts pulls by result and failures by reason", async () => {
  const metrics = new DaemonMetrics();
  metrics.pullStarted("docker.io/library/alpine:3");
  metrics.pullStarted("docker.io/library/busybox:1");
  metrics.pullStarted("docker.io/library/nginx:1");
  let text = await metrics.render();
  assertEquals(sampleValue(text, m("pulls_in_flight")), 3);

  metrics.pullFinished("docker.io/library/alpine:3", { ok: true, durationMs: 2_000 });
  metrics.pullFinished("docker.io/library/busybox:1", {
    ok: false,
    durationMs: 40_000,
    error: new PullError("docker.io/library/busybox:1", "ErrImagePull", "Pull failed"),
  });
  metrics.pullFinished("docker.io/library/nginx:1", { ok: false, durationMs: 1, cancelled: true });
  text = await metrics.render();

  assertEquals(sampleValue(text, m("pulls_in_flight")), 0);
  assertEquals(sampleValue(text, m("pulls_total"), { result: "success" }), 1);
  assertEquals(sampleValue(text, m("pulls_total"), { result: "failure" }), 1);
  assertEquals(sampleValue(text, m("pulls_total"), { result: "cancelled" }), 1);
  assertEquals(sampleValue(text, m("pull_failures_total"), { reason: "ErrImagePull" }), 1);
  assertEquals(sampleValue(text, m("pull_failures_total"), { reason: "Timeout" }), 0);
  assertEquals(sampleValue(text, m("pull_duration_seconds_count"), { result: "success" }), 1);
  assertEquals(sampleValue(text, m("pull_duration_seconds_sum"), { result: "success" }), 2);
  assertEquals(
    sampleValue(text, m("pull_duration_seconds_bucket"), { result: "success", le: "2.5" }),
    1,
  );
  assertEquals(
    sampleValue(text, m("pull_duration_seconds_bucket"), { result: "failure", le: "30" }),
    0,
  );
  assertEquals(
    sampleValue(text, m("pull_duration_seconds_bucket"), { result: "failure", le: "60" }),
    1,
  );
});

Deno.test("DaemonMetrics.observe() sets image and source gauges from status snapshots", async () => {
  const configmap = new FakeSource("configmap", {
    objects: 3,
    errors: 1,
    restarts: 2,
    lastActivity: 1_700_000_000_000,
  });
  const argo = new FakeSource("argo-workflowtemplate", {
    available: false,
    synced: false,
    reason: "Forbidden",
  });
  const parts = fakeParts([configmap, argo]);
  parts.desired.origins.set("a", ["static"]).set("b", ["static"]).set("c", ["static"]);
  parts.desired.rejected = [{ origin: "configmap/ns/x", input: "{{image}}", reason: "templated" }];
  parts.puller.images = [
    { ref: "a", state: "present", attempts: 1, consecutiveFailures: 0, lastSuccess: 5 },
    { ref: "b", state: "pulling", attempts: 2, consecutiveFailures: 0, lastSuccess: 5 },
    { ref: "c", state: "failed", attempts: 1, consecutiveFailures: 1 },
  ];
  parts.puller.running = 1;
  const metrics = new DaemonMetrics();
  metrics.observe(parts);
  let text = await metrics.render();

  assertEquals(sampleValue(text, m("desired_images")), 3);
  // "b" is being refreshed: the image pulled before is still on the node.
  assertEquals(sampleValue(text, m("present_images")), 2);
  assertEquals(sampleValue(text, m("images"), { state: "pulling" }), 1);
  assertEquals(sampleValue(text, m("images"), { state: "pending" }), 0);
  assertEquals(sampleValue(text, m("rejected_images")), 1);
  assertEquals(sampleValue(text, m("pulls_in_flight")), 1);
  assertEquals(sampleValue(text, m("source_objects"), { source: "configmap" }), 3);
  assertEquals(sampleValue(text, m("source_invalid_objects"), { source: "configmap" }), 1);
  assertEquals(sampleValue(text, m("source_available"), { source: "configmap" }), 1);
  assertEquals(sampleValue(text, m("source_available"), { source: "argo-workflowtemplate" }), 0);
  assertEquals(sampleValue(text, m("source_synced"), { source: "argo-workflowtemplate" }), 0);
  assertEquals(
    sampleValue(text, m("source_last_activity_timestamp_seconds"), { source: "configmap" }),
    1_700_000_000,
  );
  assertEquals(sampleValue(text, m("watch_restarts_total"), { source: "configmap" }), 2);

  configmap.update({ restarts: 5, objects: 4 });
  argo.update({ available: true, synced: true });
  metrics.observe(parts);
  metrics.observe(parts);
  text = await metrics.render();
  assertEquals(sampleValue(text, m("watch_restarts_total"), { source: "configmap" }), 5);
  assertEquals(sampleValue(text, m("source_objects"), { source: "configmap" }), 4);
  assertEquals(sampleValue(text, m("source_available"), { source: "argo-workflowtemplate" }), 1);
});

Deno.test("DaemonMetrics.observe() reads a real DesiredImages", async () => {
  const desired = new DesiredImages();
  desired.set("static", ["alpine", "busybox:1.36"]);
  desired.set("configmap/ns/bad", ["{{inputs.parameters.image}}", "alpine"]);
  const metrics = new DaemonMetrics();
  metrics.observe(partsWith(desired));
  const text = await metrics.render();
  assertEquals(sampleValue(text, m("desired_images")), 2);
  assertEquals(sampleValue(text, m("rejected_images")), 1);
});

Deno.test("node_warm_duration_seconds counts each node opening by outcome, zero until then", async () => {
  const metrics = new DaemonMetrics({ version: "test" });
  let text = await metrics.render();
  for (const outcome of ["warm", "timeout"]) {
    assertEquals(sampleValue(text, m("node_warm_duration_seconds_count"), { outcome }), 0);
  }
  metrics.nodeWarm(42, "warm");
  text = await metrics.render();
  assertEquals(sampleValue(text, m("node_warm_duration_seconds_count"), { outcome: "warm" }), 1);
  assertEquals(sampleValue(text, m("node_warm_duration_seconds_sum"), { outcome: "warm" }), 42);
  assertEquals(
    sampleValue(text, m("node_warm_duration_seconds_bucket"), { outcome: "warm", le: "30" }),
    0,
  );
  assertEquals(
    sampleValue(text, m("node_warm_duration_seconds_bucket"), { outcome: "warm", le: "60" }),
    1,
  );
  assertEquals(sampleValue(text, m("node_warm_duration_seconds_count"), { outcome: "timeout" }), 0);
});
