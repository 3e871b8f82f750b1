/**
 * The leader-only Event sink: a standby holds its reports back, and the new
 * leader's replay spends the Event budget only on what the old leader did
 * not already send.
 */
import { assertEquals } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { nullLogger } from "../log/logger.ts";
import { FakeClock } from "../time/clock.ts";
import { EventRecorder, type InvolvedObject } from "../kube/events.ts";
import { LeaderEventSink, REPLAY_BATCH } from "./leader_event_sink.ts";

const object = (i: number): InvolvedObject => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  namespace: "apps",
  name: `list-${i}`,
  uid: `uid-${i}`,
});

Deno.test("a standby's held Events go out when it leads; those the old leader sent cost no budget, so the new ones are not dropped", async () => {
  const server = await startFakeApiServer({ namespaces: ["apps"] });
  try {
    const clock = new FakeClock(0);
    const recorder = (host: string, burst: number) =>
      new EventRecorder({
        kubeConfig: server.kubeConfig(),
        host,
        log: nullLogger,
        clock,
        burst,
        refillMs: 3_600_000,
      });
    // The old leader reported many bad objects.
    const old = recorder("pod-a", 100);
    for (let i = 0; i < 4 * REPLAY_BATCH; i++) old.emit("Warning", object(i), "Bad", "bad");
    await old.flush();
    assertEquals(server.list("events", { namespace: "apps" }).length, 4 * REPLAY_BATCH);
    // The standby saw the same, and two more the old leader never sent.
    let leading = false;
    // A budget of one batch, which the replay of the old leader's Events must not use up.
    const inner = recorder("pod-b", REPLAY_BATCH);
    const sink = new LeaderEventSink(inner, () => leading, () => inner.flush());
    for (let i = 0; i < 4 * REPLAY_BATCH + 2; i++) sink.emit("Warning", object(i), "Bad", "bad");
    assertEquals(server.requests.counts()["create events"], 4 * REPLAY_BATCH, "held back");
    leading = true;
    await sink.flush();
    const events = server.list("events", { namespace: "apps" });
    assertEquals(events.length, 4 * REPLAY_BATCH + 2);
    assertEquals(events.map((e) => e.count), events.map(() => 1));
    assertEquals(inner.dropped, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a replay that loses leadership midway holds the rest back for the next time it leads", async () => {
  const sent: string[] = [];
  let leading = false;
  const sink = new LeaderEventSink(
    { emit: (_type, obj) => sent.push(obj.name) },
    () => leading,
    () => {
      // Leadership ends once the first batch is answered.
      leading = false;
      return Promise.resolve();
    },
  );
  for (let i = 0; i < 2 * REPLAY_BATCH; i++) sink.emit("Warning", object(i), "Bad", "bad");
  assertEquals(sent, []);
  leading = true;
  await sink.flush();
  assertEquals(sent.length, REPLAY_BATCH);
  leading = true;
  await sink.flush();
  assertEquals(sent, Array.from({ length: 2 * REPLAY_BATCH }, (_, i) => `list-${i}`));
});
