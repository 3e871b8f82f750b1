import { assertEquals, assertThrows } from "../testing/assert.ts";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration() accepts Go durations", async (t) => {
  const cases: [string, number][] = [
    ["0", 0],
    ["0s", 0],
    ["15m0s", 900_000],
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["1h0m0s", 3_600_000],
    ["90s", 90_000],
    ["500ms", 500],
    ["1.5h", 5_400_000],
    ["2h45m30.5s", 9_930_500],
    ["1000us", 1],
    ["1000µs", 1],
    ["1000000ns", 1],
    [".5s", 500],
  ];
  for (const [text, ms] of cases) {
    await t.step(`${text} = ${ms}ms`, () => assertEquals(parseDuration(text), ms));
  }
});

Deno.test("parseDuration() rejects what Go rejects, with a hint", async (t) => {
  for (const text of ["15 minutes", "15", "1d", "m", "", "1h 30m", "abc", "1.2.3s"]) {
    await t.step(JSON.stringify(text), () => {
      assertThrows(() => parseDuration(text), RangeError, "expected a Go duration such as 15m");
    });
  }
});

Deno.test("formatDuration() prints like Go's time.Duration", async (t) => {
  const cases: [number, string][] = [
    [0, "0s"],
    [900_000, "15m0s"],
    [5_400_000, "1h30m0s"],
    [90_000, "1m30s"],
    [500, "500ms"],
    [1500, "1.5s"],
  ];
  for (const [ms, text] of cases) {
    await t.step(text, () => assertEquals(formatDuration(ms), text));
  }
});
