import { assertEquals } from "../assert.ts";
import { humanDuration, tableVersionOf } from "./table.ts";

Deno.test("humanDuration() prints ages as kubectl does", async (t) => {
  const s = 1000;
  for (
    const [ms, want] of [
      [-5 * s, "<invalid>"],
      [-1 * s, "0s"],
      [0, "0s"],
      [119 * s, "119s"],
      [120 * s, "2m"],
      [150 * s, "2m30s"],
      [600 * s, "10m"],
      [179 * 60 * s, "179m"],
      [3 * 3600 * s, "3h"],
      [(3 * 60 + 5) * 60 * s, "3h5m"],
      [30 * 3600 * s, "30h"],
      [(2 * 24 + 5) * 3600 * s, "2d5h"],
      [30 * 24 * 3600 * s, "30d"],
      [(3 * 365 + 10) * 24 * 3600 * s, "3y10d"],
      [9 * 365 * 24 * 3600 * s, "9y"],
    ] as const
  ) {
    await t.step(want, () => assertEquals(humanDuration(ms), want));
  }
});

Deno.test("tableVersionOf() finds a meta.k8s.io Table among the Accept header's types", () => {
  assertEquals(
    tableVersionOf(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    ),
    "v1",
  );
  assertEquals(tableVersionOf("application/json; as=Table; g=meta.k8s.io; v=v1beta1"), "v1beta1");
  assertEquals(tableVersionOf("application/json"), undefined);
  assertEquals(tableVersionOf("application/json;as=Table;v=v1;g=other.io"), undefined);
  assertEquals(tableVersionOf(null), undefined);
});
