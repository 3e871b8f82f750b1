import type { V1Node } from "@kubernetes/client-node";
import { assertEquals } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { recordingLogger } from "../log/logger.ts";
import { FakeClock } from "../time/clock.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { NodeMeta } from "../puller/node_images.ts";
import { PROGRESS_WRITE_MS, WarmUp } from "./warm_up.ts";
import { waitFor } from "../testing/wait.ts";

const KEY = "example.com/warming";

/** An image the puller has made present. */
function presentImage(ref: string): ImageStatus {
  return { ref, state: "present", attempts: 1, consecutiveFailures: 0, everPresent: true };
}

/** A WarmUp on FakeClock against the fake API server; the Node is read straight from it. */
async function harness(taint: { key: string; effect: string; value?: string; timeAdded?: string }) {
  const server = await startFakeApiServer({});
  server.addNode("node-1", { taints: [taint] });
  const node = () => server.get("nodes", undefined, "node-1") as unknown as V1Node;
  const created = new Date(node().metadata!.creationTimestamp!).getTime();
  const clock = new FakeClock(created);
  const events: string[] = [];
  const observed: [number, string][] = [];
  let images: ImageStatus[] = [
    { ref: "a", state: "failed", attempts: 1, consecutiveFailures: 1 },
  ];
  let known = true;
  const meta = (): NodeMeta => ({
    created,
    taints: node().spec?.taints ?? [],
    conditions: (node().status?.conditions ?? []).filter((c) => c.type === "ImagesPrePulled"),
  });
  const warmUp = new WarmUp({
    kubeConfig: server.kubeConfig(),
    node: "node-1",
    log: recordingLogger(),
    clock,
    taint: { key: KEY, effect: "NoSchedule" },
    timeoutMs: 600_000,
    images: () => images,
    known: () => known,
    nodeMeta: meta,
    events: { emit: (_type, _obj, reason, message) => events.push(`${reason}: ${message}`) },
    onWarm: (seconds, outcome) => observed.push([seconds, outcome]),
  });
  const keys = () => (node().spec?.taints ?? []).map((t) => t.key);
  return {
    server,
    clock,
    warmUp,
    keys,
    created,
    events,
    observed,
    meta,
    setImages: (next: ImageStatus[]) => images = next,
    setKnown: (next: boolean) => known = next,
  };
}

Deno.test("WarmUp keeps the taint until --warm-timeout after registration, then lifts it", async () => {
  const h = await harness({ key: KEY, effect: "NoSchedule" });
  try {
    await h.warmUp.tick();
    assertEquals(h.keys(), [KEY]);
    assertEquals(h.warmUp.status().deadline, h.created + 600_000);
    await h.clock.advance(599_000);
    await h.warmUp.tick();
    assertEquals(h.keys(), [KEY]);
    await h.clock.advance(1_000);
    await h.warmUp.tick();
    assertEquals(h.keys(), []);
    assertEquals(h.warmUp.status().taintState, "lifted");
  } finally {
    await h.server.close();
  }
});

Deno.test("WarmUp counts the timeout from the taint's timeAdded when it has one", async () => {
  const later = new Date(Date.now() + 300_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const h = await harness({ key: KEY, effect: "NoSchedule", timeAdded: later });
  try {
    const added = new Date(later).getTime();
    await h.warmUp.tick();
    assertEquals(h.warmUp.status().deadline, added + 600_000);
    await h.clock.advance(added + 600_000 - h.clock.now() - 1);
    await h.warmUp.tick();
    assertEquals(h.keys(), [KEY]);
    await h.clock.advance(1);
    await h.warmUp.tick();
    assertEquals(h.keys(), []);
  } finally {
    await h.server.close();
  }
});

Deno.test("WarmUp leaves the taints of a node without the startup taint alone, even when warm", async () => {
  const h = await harness({ key: "example.com/other", effect: "NoSchedule" });
  try {
    h.setImages([presentImage("a")]);
    await h.warmUp.tick();
    assertEquals(h.keys(), ["example.com/other"]);
    assertEquals(h.warmUp.status().taintState, "absent");
    assertEquals(h.warmUp.status().warm, true);
  } finally {
    await h.server.close();
  }
});

Deno.test("WarmUp reports the opening once: Event and metric when it lifts the taint, none for a node found warm", async () => {
  const h = await harness({ key: KEY, effect: "NoSchedule" });
  try {
    const present = presentImage("a");
    h.setImages([present]);
    await h.clock.advance(42_000);
    await h.warmUp.tick();
    await h.warmUp.tick();
    assertEquals(h.keys(), []);
    assertEquals(h.events, [
      "NodeWarm: Node warm 42s after registration: 1 of 1 images present",
    ]);
    assertEquals(h.observed, [[42, "warm"]]);
    // A restarted daemon finds the node warm and open: nothing to report.
    const events: string[] = [];
    const restarted = new WarmUp({
      kubeConfig: h.server.kubeConfig(),
      node: "node-1",
      log: recordingLogger(),
      clock: h.clock,
      taint: { key: KEY, effect: "NoSchedule" },
      timeoutMs: 600_000,
      images: () => [present],
      nodeMeta: h.meta,
      events: { emit: (_type, _obj, reason) => events.push(reason) },
    });
    await restarted.tick();
    assertEquals(events, []);
    assertEquals(restarted.status().warm, true);
  } finally {
    await h.server.close();
  }
});

Deno.test("WarmUp raises the pull concurrency while warming and sets it back once warm", async () => {
  const server = await startFakeApiServer({});
  server.addNode("node-1");
  const node = () => server.get("nodes", undefined, "node-1") as unknown as V1Node;
  const limits: number[] = [];
  let everPresent = false;
  const warmUp = new WarmUp({
    kubeConfig: server.kubeConfig(),
    node: "node-1",
    log: recordingLogger(),
    clock: new FakeClock(Date.now()),
    timeoutMs: 600_000,
    images:
      () => [{ ref: "a", state: "pending", attempts: 0, consecutiveFailures: 0, everPresent }],
    nodeMeta: () => ({ created: 0, taints: [], conditions: [] }),
    setConcurrency: (limit) => limits.push(limit),
    warmConcurrency: 8,
    normalConcurrency: 2,
  });
  const stop = new AbortController();
  const running = warmUp.run(stop.signal);
  try {
    await waitFor(() =>
      node().status?.conditions?.find((c) => c.type === "ImagesPrePulled")?.status === "False"
    );
    assertEquals(limits, [8]);
    everPresent = true;
    warmUp.poke();
    await waitFor(() =>
      node().status?.conditions?.find((c) => c.type === "ImagesPrePulled")?.status === "True"
    );
    assertEquals(limits.at(-1), 2);
  } finally {
    stop.abort();
    await running;
    await server.close();
  }
});

Deno.test("WarmUp writes a change of the counts alone at most every 10 s, and a change of status at once", async () => {
  const h = await harness({ key: KEY, effect: "NoSchedule" });
  const image = (ref: string, present: boolean): ImageStatus =>
    present ? presentImage(ref) : { ref, state: "pending", attempts: 0, consecutiveFailures: 0 };
  const refs = ["a", "b", "c", "d"];
  const patches = () => h.server.requests.counts()["patch nodes/status"] ?? 0;
  const message = () =>
    h.meta().conditions.find((c) => c.type === "ImagesPrePulled")?.message ?? "";
  try {
    h.setImages(refs.map((r) => image(r, false)));
    await h.warmUp.tick();
    assertEquals(patches(), 1);
    // Two more images present within the interval: no write.
    for (const n of [1, 2]) {
      h.setImages(refs.map((r, i) => image(r, i < n)));
      await h.clock.advance(1_000);
      await h.warmUp.tick();
    }
    assertEquals(patches(), 1);
    // Once the interval has passed, one write with the latest counts.
    await h.clock.advance(PROGRESS_WRITE_MS);
    await h.warmUp.tick();
    assertEquals(patches(), 2);
    assertEquals(message().includes("2 of 4"), true, message());
    // Warm: the status changes, written at once.
    h.setImages(refs.map((r) => image(r, true)));
    await h.clock.advance(1_000);
    await h.warmUp.tick();
    assertEquals(patches(), 3);
    assertEquals(h.meta().conditions[0]?.status, "True");
  } finally {
    await h.server.close();
  }
});

Deno.test("WarmUp opens a node at --warm-timeout while its desired images are still unknown, and leaves its condition alone until they are known", async () => {
  const h = await harness({ key: KEY, effect: "NoSchedule" });
  try {
    // Nothing known yet (no published set, say): an empty list is not "warm".
    h.setKnown(false);
    h.setImages([]);
    await h.warmUp.tick();
    assertEquals(h.keys(), [KEY]);
    assertEquals(h.warmUp.status().warm, false);
    assertEquals(h.meta().conditions, []);
    await h.clock.advance(600_000);
    await h.warmUp.tick();
    assertEquals(h.keys(), [], "opened by the timeout");
    assertEquals(h.meta().conditions, [], "no condition written while unknown");
    // Known at last, and present: the condition follows.
    h.setKnown(true);
    h.setImages([presentImage("a")]);
    await h.warmUp.tick();
    assertEquals(h.meta().conditions.map((c) => c.status), ["True"]);
  } finally {
    await h.server.close();
  }
});
