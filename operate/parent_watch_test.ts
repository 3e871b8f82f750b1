import { assertEquals } from "../testing/assert.ts";
import { FakeClock } from "../time/clock.ts";
import { watchParent } from "./parent_watch.ts";

Deno.test("watchParent() reports once when the process is re-parented, within one interval", async () => {
  const clock = new FakeClock();
  let parent = 4242;
  const gone: { parent: number; now: number }[] = [];
  const watching = watchParent((info) => gone.push(info), {
    ppid: () => parent,
    intervalMs: 1_000,
    clock,
    signal: new AbortController().signal,
  });
  await clock.advance(5_000);
  assertEquals(gone, [], "the parent is still there");
  parent = 1;
  await clock.advance(1_000);
  assertEquals(gone, [{ parent: 4242, now: 1 }]);
  await watching;
  await clock.advance(5_000);
  assertEquals(gone.length, 1);
  assertEquals(clock.pendingTimers(), 0, "the watch has ended");
});

Deno.test("watchParent() does nothing for a container's process 1 or a child of init", async () => {
  for (const start of [0, 1]) {
    const clock = new FakeClock();
    let parent = start;
    const gone: unknown[] = [];
    await watchParent((info) => gone.push(info), {
      ppid: () => parent,
      clock,
      signal: new AbortController().signal,
    });
    parent = 77;
    await clock.advance(10_000);
    assertEquals(gone, []);
    assertEquals(clock.pendingTimers(), 0);
  }
});

Deno.test("watchParent() stops looking when its signal aborts", async () => {
  const clock = new FakeClock();
  const controller = new AbortController();
  let parent = 10;
  const gone: unknown[] = [];
  const watching = watchParent((info) => gone.push(info), {
    ppid: () => parent,
    clock,
    signal: controller.signal,
  });
  controller.abort();
  await watching;
  parent = 1;
  await clock.advance(10_000);
  assertEquals(gone, []);
});
