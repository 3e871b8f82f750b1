import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { Backoff, backoffDelay } from "./backoff.ts";

Deno.test("Backoff.next() doubles from the base delay up to the cap without jitter", () => {
  const backoff = new Backoff({ baseMs: 1_000, maxMs: 10_000, jitter: 0 });
  const delays = Array.from({ length: 6 }, () => backoff.next("a"));
  assertEquals(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  assertEquals(backoff.attempts("a"), 6);
});

Deno.test("Backoff.next() keeps jittered delays within their bounds", async (t) => {
  const cases = [
    { name: "lowest random", random: 0, expected: [800, 1_600, 3_200, 6_400, 8_000] },
    { name: "middle random", random: 0.5, expected: [1_000, 2_000, 4_000, 8_000, 10_000] },
    { name: "highest random", random: 1, expected: [1_200, 2_400, 4_800, 9_600, 10_000] },
  ];
  for (const { name, random, expected } of cases) {
    await t.step(name, () => {
      const backoff = new Backoff({ baseMs: 1_000, maxMs: 10_000, random: () => random });
      assertEquals(Array.from({ length: 5 }, () => backoff.next("a")), expected);
    });
  }
});

Deno.test("Backoff.next() grows with every failure whatever the jitter, until the cap", () => {
  const backoff = new Backoff({ baseMs: 100, maxMs: 1_000_000 });
  let previous = 0;
  for (let i = 0; i < 13; i++) {
    const delay = backoff.next("a");
    assert(delay > previous, `delay ${i} (${delay}) should exceed ${previous}`);
    assert(delay <= 1_000_000);
    previous = delay;
  }
});

Deno.test("Backoff keeps keys apart and reset() starts a key over", () => {
  const backoff = new Backoff({ baseMs: 1_000, maxMs: 60_000, jitter: 0 });
  backoff.next("a");
  backoff.next("a");
  assertEquals(backoff.next("b"), 1_000);
  assertEquals(backoff.next("a"), 4_000);
  backoff.reset("a");
  assertEquals(backoff.attempts("a"), 0);
  assertEquals(backoff.next("a"), 1_000);
  assertEquals(backoff.size, 2);
});

Deno.test("Backoff.park() waits the cap, spread downwards only", () => {
  const low = new Backoff({ maxMs: 3_600_000, random: () => 0 });
  const high = new Backoff({ maxMs: 3_600_000, random: () => 0.999 });
  assertEquals(low.park("a"), 2_880_000);
  assertEquals(high.park("a"), 3_600_000);
  assertEquals(low.attempts("a"), 1);
});

Deno.test("Backoff uses the cap when the base exceeds it", () => {
  assertEquals(new Backoff({ baseMs: 5_000, maxMs: 1_000, jitter: 0 }).next("a"), 1_000);
});

Deno.test("Backoff stays finite after very many failures", () => {
  const backoff = new Backoff({ maxMs: 60_000, jitter: 0 });
  for (let i = 0; i < 2_000; i++) backoff.next("a");
  assertEquals(backoff.next("a"), 60_000);
});

Deno.test("Backoff rejects options out of range", async (t) => {
  const cases = [
    { name: "zero cap", options: { maxMs: 0 } },
    { name: "infinite cap", options: { maxMs: Infinity } },
    { name: "negative base", options: { maxMs: 10, baseMs: -1 } },
    { name: "jitter above 1", options: { maxMs: 10, jitter: 1.5 } },
    { name: "negative jitter", options: { maxMs: 10, jitter: -0.1 } },
  ];
  for (const { name, options } of cases) {
    await t.step(name, () => {
      assertThrows(() => new Backoff(options), RangeError, "Cannot create backoff");
    });
  }
});

Deno.test("backoffDelay() doubles from the base with every failure, spread by the jitter and capped", async (t) => {
  const cases = [
    {
      name: "no jitter",
      jitter: 0,
      random: 0.3,
      expected: [500, 1_000, 2_000, 4_000, 5_000, 5_000],
    },
    {
      name: "lowest random",
      jitter: 0.2,
      random: 0,
      expected: [400, 800, 1_600, 3_200, 4_000, 4_000],
    },
    {
      name: "highest random",
      jitter: 0.2,
      random: 1,
      expected: [600, 1_200, 2_400, 4_800, 5_000, 5_000],
    },
  ];
  for (const { name, jitter, random, expected } of cases) {
    await t.step(name, () => {
      const options = { baseMs: 500, maxMs: 5_000, jitter, random: () => random };
      assertEquals([1, 2, 3, 4, 5, 60].map((n) => backoffDelay(n, options)), expected);
    });
  }
});

Deno.test("backoffDelay() gives the same delays as Backoff.next() for one key", () => {
  const options = { baseMs: 300, maxMs: 20_000, random: () => 0.7 };
  const backoff = new Backoff(options);
  for (let failures = 1; failures <= 10; failures++) {
    assertEquals(backoffDelay(failures, options), backoff.next("a"), `failure ${failures}`);
  }
});

Deno.test("backoffDelay() rejects options out of range", () => {
  assertThrows(() => backoffDelay(1, { maxMs: -1 }), RangeError, "Cannot create backoff");
});
