import { assertEquals } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { FakeClock } from "../time/clock.ts";
import { nullLogger } from "../log/logger.ts";
import { eventName, EventRecorder, type InvolvedObject } from "./events.ts";

const CM: InvolvedObject = {
  apiVersion: "v1",
  kind: "ConfigMap",
  namespace: "apps",
  name: "images",
  uid: "uid-1",
};

interface EventView {
  type: string;
  reason: string;
  message: string;
  count: number;
  involvedObject: { kind: string; name: string; namespace: string; uid: string };
  source: { component: string; host: string };
}

Deno.test("EventRecorder creates an Event on the involved object", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", "apps"] });
  try {
    const recorder = new EventRecorder({
      kubeConfig: server.kubeConfig(),
      host: "node-1",
      log: nullLogger,
    });
    recorder.emit("Warning", CM, "InvalidImageList", 'key "images": invalid JSON');
    await recorder.flush();
    const events = server.list("events", { namespace: "apps" }) as unknown as EventView[];
    assertEquals(events.length, 1);
    assertEquals(events[0].type, "Warning");
    assertEquals(events[0].reason, "InvalidImageList");
    assertEquals(events[0].message, 'key "images": invalid JSON');
    assertEquals(events[0].involvedObject.kind, "ConfigMap");
    assertEquals(events[0].involvedObject.name, "images");
    assertEquals(events[0].involvedObject.uid, "uid-1");
    assertEquals(events[0].source, { component: "image-cache-daemon", host: "node-1" });
  } finally {
    await server.close();
  }
});

Deno.test("EventRecorder aggregates repeats and patches the count once per window", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", "apps"] });
  try {
    const clock = new FakeClock(1_700_000_000_000);
    const recorder = new EventRecorder({
      kubeConfig: server.kubeConfig(),
      log: nullLogger,
      clock,
      aggregateWindowMs: 60_000,
    });
    for (let i = 0; i < 5; i++) recorder.emit("Warning", CM, "PullFailed", "alpine: denied");
    await recorder.flush();
    let events = server.list("events", { namespace: "apps" }) as unknown as EventView[];
    assertEquals(events.map((e) => e.count), [1]);
    await clock.advance(60_000);
    recorder.emit("Warning", CM, "PullFailed", "alpine: denied");
    await recorder.flush();
    events = server.list("events", { namespace: "apps" }) as unknown as EventView[];
    assertEquals(events.map((e) => e.count), [6]);
  } finally {
    await server.close();
  }
});

Deno.test("Daemons on different nodes reporting the same bad input create one Event", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", "apps"] });
  try {
    const recorders = ["node-1", "node-2", "node-3"].map((host) =>
      new EventRecorder({ kubeConfig: server.kubeConfig(), host, log: nullLogger })
    );
    for (const r of recorders) r.emit("Warning", CM, "InvalidImageList", "not a list");
    await Promise.all(recorders.map((r) => r.flush()));
    assertEquals(server.list("events", { namespace: "apps" }).length, 1);
  } finally {
    await server.close();
  }
});

Deno.test("EventRecorder never floods: a burst beyond the limit is dropped and counted", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", "apps"] });
  try {
    const clock = new FakeClock(0);
    const recorder = new EventRecorder({
      kubeConfig: server.kubeConfig(),
      log: nullLogger,
      clock,
      burst: 3,
      refillMs: 10_000,
    });
    for (let i = 0; i < 10; i++) recorder.emit("Warning", CM, "PullFailed", `image ${i}`);
    await recorder.flush();
    assertEquals(server.list("events", { namespace: "apps" }).length, 3);
    assertEquals(recorder.dropped, 7);
    await clock.advance(10_000);
    recorder.emit("Warning", CM, "PullFailed", "image 10");
    await recorder.flush();
    assertEquals(server.list("events", { namespace: "apps" }).length, 4);
  } finally {
    await server.close();
  }
});

Deno.test("eventName() is a valid, deterministic DNS subdomain", () => {
  const a = eventName("Warning", CM, "R", "m");
  assertEquals(a, eventName("Warning", CM, "R", "m"));
  assertEquals(a === eventName("Warning", CM, "R", "other"), false);
  assertEquals(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(a), true);
  const long = eventName("Normal", { ...CM, name: "X_".repeat(200) }, "R", "m");
  assertEquals(long.length <= 253, true);
  assertEquals(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(long), true);
});
