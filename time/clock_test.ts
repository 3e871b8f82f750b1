import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { FakeClock, MAX_TIMER_MS, monotonicClock, realClock, waitAtMost } from "./clock.ts";

Deno.test("FakeClock.now() starts at the given time and moves only on advance()", async () => {
  const clock = new FakeClock(1_000);
  assertEquals(clock.now(), 1_000);
  await clock.advance(250);
  assertEquals(clock.now(), 1_250);
});

Deno.test("FakeClock.sleep() resolves once the clock reaches its due time", async () => {
  const clock = new FakeClock();
  let woke = false;
  clock.sleep(1_000).then(() => woke = true);
  await clock.advance(999);
  assertEquals(woke, false);
  await clock.advance(1);
  assertEquals(woke, true);
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("FakeClock.advance() fires timers in due order with now() at each due time", async () => {
  const clock = new FakeClock();
  const seen: string[] = [];
  clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
  clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
  clock.setTimeout(() => seen.push(`c@${clock.now()}`), 20);
  await clock.advance(100);
  assertEquals(seen, ["a@10", "b@20", "c@20"]);
  assertEquals(clock.now(), 100);
});

Deno.test("FakeClock.advance() fires timers set by awaiting code within the same advance", async () => {
  const clock = new FakeClock();
  const ticks: number[] = [];
  (async () => {
    for (let i = 0; i < 3; i++) {
      await clock.sleep(10);
      ticks.push(clock.now());
    }
  })();
  await clock.advance(30);
  assertEquals(ticks, [10, 20, 30]);
});

Deno.test("FakeClock.sleep() rejects with the signal's reason on abort and drops its timer", async () => {
  const clock = new FakeClock();
  const controller = new AbortController();
  const sleeping = clock.sleep(1_000, controller.signal);
  assertEquals(clock.pendingTimers(), 1);
  controller.abort(new Error("stop"));
  await assertRejects(() => sleeping, Error, "stop");
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("FakeClock.sleep() rejects at once when the signal already aborted", async () => {
  const clock = new FakeClock();
  await assertRejects(() => clock.sleep(10, AbortSignal.abort()), DOMException);
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("FakeClock.sleep(0) resolves without a timer", async () => {
  const clock = new FakeClock();
  await clock.sleep(0);
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("waitAtMost() ends when a promise settles, a rejection too, and leaves no timer behind", async () => {
  const clock = new FakeClock();
  let wake!: () => void;
  const woken = new Promise<void>((resolve) => wake = resolve);
  let done = false;
  const waiting = waitAtMost(clock, 1_000, woken).then(() => done = true);
  assertEquals(clock.pendingTimers(), 1);
  await clock.advance(999);
  assertEquals(done, false);
  wake();
  await waiting;
  assertEquals(clock.now(), 999);
  assertEquals(clock.pendingTimers(), 0);

  await waitAtMost(clock, 1_000, Promise.reject(new Error("refused")));
  assertEquals(clock.now(), 999);
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("waitAtMost() ends after its time when no promise settles, and at once for a time not above 0", async () => {
  const clock = new FakeClock();
  const never = new Promise<void>(() => {});
  let done = false;
  const waiting = waitAtMost(clock, 1_000, never).then(() => done = true);
  await clock.advance(999);
  assertEquals(done, false);
  await clock.advance(1);
  await waiting;
  assertEquals(clock.pendingTimers(), 0);

  await waitAtMost(clock, -5, never);
  assertEquals(clock.now(), 1_000);
  assertEquals(clock.pendingTimers(), 0);
});

Deno.test("FakeClock.clearTimeout() cancels a timer", async () => {
  const clock = new FakeClock();
  let fired = false;
  const id = clock.setTimeout(() => fired = true, 5);
  clock.clearTimeout(id);
  await clock.advance(10);
  assertEquals(fired, false);
});

Deno.test("FakeClock.runAll() fires every timer and reports how many", async () => {
  const clock = new FakeClock();
  clock.setTimeout(() => {}, 5);
  clock.setTimeout(() => {}, 50);
  assertEquals(clock.nextTimerAt(), 5);
  assertEquals(await clock.runAll(), 2);
  assertEquals(clock.now(), 50);
});

Deno.test("FakeClock.advance() rejects a negative step", async () => {
  await assertRejects(() => new FakeClock().advance(-1), RangeError);
});

Deno.test("realClock.sleep() rejects on abort without waiting", async () => {
  const controller = new AbortController();
  const started = Date.now();
  const sleeping = realClock.sleep(60_000, controller.signal);
  controller.abort();
  await assertRejects(() => sleeping, DOMException);
  assert(Date.now() - started < 5_000);
  assert(Math.abs(realClock.now() - Date.now()) < 1_000);
});

Deno.test("realClock.sleep() never asks a timer for more than it can hold (1000 h would fire at once)", async () => {
  const asked: number[] = [];
  const original = globalThis.setTimeout;
  // Records the delays asked of the real timer, and keeps its behaviour.
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    asked.push(ms ?? 0);
    return original(fn, ms);
  }) as typeof setTimeout;
  const controller = new AbortController();
  let settled = false;
  try {
    const sleeping = realClock.sleep(1000 * 3_600_000, controller.signal).then(
      () => settled = true,
      () => {},
    );
    await new Promise((r) => original(r, 20));
    assertEquals(settled, false);
    assert(asked.length > 0 && asked.every((ms) => ms <= MAX_TIMER_MS), `asked ${asked}`);
    controller.abort();
    await sleeping;
  } finally {
    globalThis.setTimeout = original;
  }
});

Deno.test("monotonicClock reads the wall time at the start plus the time elapsed since, never going back, and its sleep waits that long", async () => {
  const first = monotonicClock.now();
  assert(Math.abs(first - Date.now()) < 60_000, "near the wall clock");
  // Elapsed time only: the start's wall time plus performance.now().
  const low = performance.timeOrigin + performance.now();
  const now = monotonicClock.now();
  const high = performance.timeOrigin + performance.now();
  assert(low <= now && now <= high, `${low} <= ${now} <= ${high}`);
  let last = first;
  for (let i = 0; i < 1_000; i++) {
    const now = monotonicClock.now();
    assert(now >= last, "went back");
    last = now;
  }
  const before = performance.now();
  await monotonicClock.sleep(30);
  assert(performance.now() - before >= 29, "slept less than asked");
});
