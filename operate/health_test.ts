import { assert, assertEquals, assertMatch, assertThrows } from "../testing/assert.ts";
import { DEFAULT_STALL_MS, HealthCheck, readinessReport } from "./health.ts";
import { fakeParts, FakeSource } from "../testing/fake_parts.ts";

const MIN = 60_000;
const T0 = 1_700_000_000_000;

Deno.test("HealthCheck fails when an available source hears nothing and does not restart", () => {
  const source = new FakeSource("configmap", { lastActivity: T0 });
  const parts = fakeParts([source]);
  const check = new HealthCheck({ stallMs: 10 * MIN });
  assertEquals(check.report(parts, T0), { ok: true, problems: [] });
  assertEquals(check.report(parts, T0 + 10 * MIN).ok, true);
  const report = check.report(parts, T0 + 10 * MIN + 1);
  assertEquals(report.ok, false);
  assertEquals(report.problems.length, 1);
  assertMatch(report.problems[0], /^Source "configmap" has not heard from its API since .*wedged/);

  source.update({ lastActivity: T0 + 11 * MIN }); // a bookmark arrives
  assertEquals(check.report(parts, T0 + 12 * MIN).ok, true);
});

Deno.test("HealthCheck passes while a source keeps restarting its watch against an unreachable API", () => {
  const source = new FakeSource("configmap", { lastActivity: T0, reason: "ECONNREFUSED" });
  const parts = fakeParts([source]);
  const check = new HealthCheck({ stallMs: 10 * MIN });
  for (let minute = 0; minute <= 60; minute++) {
    source.update({ restarts: minute * 2 });
    assertEquals(check.report(parts, T0 + minute * MIN).ok, true, `minute ${minute}`);
  }
  // The retries stop too: now it is wedged.
  assertEquals(check.report(parts, T0 + 71 * MIN).ok, false);
});

Deno.test("HealthCheck ignores a source with nothing to watch, and counts a first sighting as progress", () => {
  const idle = new FakeSource("static");
  const stale = new FakeSource("configmap", { lastActivity: T0 });
  const check = new HealthCheck({ stallMs: 10 * MIN });
  assertEquals(check.report(fakeParts([idle, stale]), T0 + 60 * MIN).ok, true);
  const later = check.report(fakeParts([idle, stale]), T0 + 71 * MIN);
  assertEquals(later.problems.length, 1);
  assertMatch(later.problems[0], /"configmap"/);
});

Deno.test("HealthCheck fails on a source whose first list never completes", () => {
  const source = new FakeSource("argo-cronworkflow", { synced: false });
  const parts = fakeParts([source]);
  const check = new HealthCheck({ stallMs: 10 * MIN });
  assertEquals(check.report(parts, T0).ok, true);
  const report = check.report(parts, T0 + 11 * MIN);
  assertMatch(report.problems[0], /"argo-cronworkflow" has never heard from its API/);
});

Deno.test("HealthCheck does not flag images backing off or waiting behind a full concurrency limit", () => {
  const parts = fakeParts();
  const check = new HealthCheck({ stallMs: 10 * MIN });
  parts.puller.images = [
    {
      ref: "a",
      state: "failed",
      attempts: 9,
      consecutiveFailures: 9,
      lastAttempt: T0,
      nextAttempt: T0 + 60 * MIN,
    },
  ];
  assertEquals(check.report(parts, T0 + 59 * MIN).ok, true, "backing off");

  parts.puller.images = [
    { ref: "b", state: "pulling", attempts: 1, consecutiveFailures: 0, lastAttempt: T0 },
    { ref: "c", state: "pending", attempts: 0, consecutiveFailures: 0 },
  ];
  parts.puller.running = 1;
  assertEquals(check.report(parts, T0).ok, true);
  assertEquals(check.report(parts, T0 + 30 * MIN).ok, true, "queued behind a running pull");
});

Deno.test("HealthCheck fails when queued images wait with nothing in flight", () => {
  const parts = fakeParts();
  const check = new HealthCheck({ stallMs: 10 * MIN });
  parts.puller.images = [
    { ref: "a", state: "pending", attempts: 0, consecutiveFailures: 0 },
    {
      ref: "b",
      state: "present",
      attempts: 1,
      consecutiveFailures: 0,
      lastAttempt: T0 - 30 * MIN,
      lastSuccess: T0 - 29 * MIN,
      nextAttempt: T0 - 14 * MIN,
    },
  ];
  const first = check.report(parts, T0);
  assertEquals(first.ok, false, "a resync overdue by 14 minutes with nothing running");
  assertMatch(first.problems[0], /^Pull queue is stuck: 1 image\(s\).*oldest "b"/);

  parts.puller.images = parts.puller.images.slice(0, 1);
  assertEquals(check.report(parts, T0 + 10 * MIN).ok, true, "queued for exactly stallMs");
  const stuck = check.report(parts, T0 + 10 * MIN + 1);
  assertMatch(stuck.problems[0], /oldest "a"/);
});

Deno.test("HealthCheck does not flag a queue that started a pull recently", () => {
  const parts = fakeParts();
  const check = new HealthCheck({ stallMs: 10 * MIN });
  parts.puller.images = [
    { ref: "a", state: "pending", attempts: 0, consecutiveFailures: 0 },
    {
      ref: "b",
      state: "present",
      attempts: 1,
      consecutiveFailures: 0,
      lastAttempt: T0 + 20 * MIN,
      lastSuccess: T0 + 20 * MIN,
    },
  ];
  check.report(parts, T0);
  assertEquals(check.report(parts, T0 + 25 * MIN).ok, true);
});

Deno.test("HealthCheck fails on a pull running past its timeout when the timeout is known", () => {
  const parts = fakeParts();
  parts.puller.images = [
    { ref: "a", state: "pulling", attempts: 1, consecutiveFailures: 0, lastAttempt: T0 },
  ];
  parts.puller.running = 1;
  const withTimeout = new HealthCheck({ stallMs: 10 * MIN, pullTimeoutMs: 5 * MIN });
  assertEquals(withTimeout.report(parts, T0 + 15 * MIN).ok, true);
  const report = withTimeout.report(parts, T0 + 15 * MIN + 1);
  assertMatch(
    report.problems[0],
    /^Pull of "a" has run for 15m0\.001s, 10m0\.001s past its timeout/,
  );
  const withoutTimeout = new HealthCheck({ stallMs: 10 * MIN });
  assertEquals(withoutTimeout.report(parts, T0 + 600 * MIN).ok, true);
});

Deno.test("HealthCheck defaults to a 15 minute stall and rejects a non-positive one", () => {
  assertEquals(DEFAULT_STALL_MS, 15 * MIN);
  const source = new FakeSource("configmap", { lastActivity: T0 });
  const check = new HealthCheck();
  check.report(fakeParts([source]), T0);
  assert(check.report(fakeParts([source]), T0 + 15 * MIN).ok);
  assert(!check.report(fakeParts([source]), T0 + 15 * MIN + 1).ok);
  assertThrows(() => new HealthCheck({ stallMs: 0 }), RangeError, "stallMs 0");
});

Deno.test("readinessReport() lists unsynced sources and a puller not running", () => {
  assertEquals(readinessReport(undefined), { ready: false, notReady: ["The daemon is starting"] });
  const configmap = new FakeSource("configmap", { synced: false });
  const parts = fakeParts([new FakeSource("static"), configmap]);
  assertEquals(readinessReport(parts), {
    ready: false,
    notReady: ['Source "configmap" has not synced', "The node puller is not running"],
  });
  configmap.update({ synced: true });
  parts.isReady = true;
  assertEquals(readinessReport(parts), { ready: true, notReady: [] });
});

Deno.test("HealthCheck judges the daemon's own watches (pull pods, its Node) like sources", () => {
  const pods = new FakeSource("pull-pods", { lastActivity: T0 });
  const parts = { ...fakeParts([]), watches: [pods] };
  const check = new HealthCheck({ stallMs: 10 * MIN });
  assertEquals(check.report(parts, T0).ok, true);
  assertEquals(check.report(parts, T0 + 10 * MIN).ok, true);
  const report = check.report(parts, T0 + 11 * MIN);
  assertEquals(report.ok, false);
  assertMatch(report.problems[0], /"pull-pods" has not heard from its API/);
});

Deno.test("readinessReport() warns while the node warms, with the taint's deadline, and stays ready", () => {
  const parts = fakeParts([new FakeSource("static")]);
  parts.isReady = true;
  let warm = false;
  const withWarmUp = {
    ...parts,
    warmUp: {
      status: () => ({
        warm,
        condition: {
          status: "False",
          reason: "ImagesMissing",
          message: "3 of 5 desired images missing",
        },
        taint: "example.com/warming:NoSchedule",
        taintState: "waiting" as const,
        deadline: Date.UTC(2026, 0, 1, 0, 10),
      }),
    },
  };
  assertEquals(readinessReport(withWarmUp), {
    ready: true,
    notReady: [],
    warnings: [
      "Warming: 3 of 5 desired images missing; taint example.com/warming:NoSchedule stays until warm or 2026-01-01T00:10:00.000Z",
    ],
  });
  warm = true;
  assertEquals(readinessReport(withWarmUp), { ready: true, notReady: [] });
});
