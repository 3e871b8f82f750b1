import { assertEquals, assertThrows } from "../assert.ts";
import { jsonPatch, mergePatch, patchTypeOf, strategicMergePatch } from "./patch.ts";

Deno.test("mergePatch() follows RFC 7386", async (t) => {
  const cases: [string, unknown, unknown, unknown][] = [
    ["adds a key", { a: 1 }, { b: 2 }, { a: 1, b: 2 }],
    ["null removes a key", { a: 1, b: 2 }, { a: null }, { b: 2 }],
    ["merges nested objects", { m: { x: 1, y: 2 } }, { m: { y: 3 } }, { m: { x: 1, y: 3 } }],
    ["replaces arrays", { l: [1, 2] }, { l: [3] }, { l: [3] }],
    ["a non-object patch replaces the target", { a: 1 }, [1], [1]],
  ];
  for (const [name, target, patch, expected] of cases) {
    await t.step(name, () => assertEquals(mergePatch(target, patch), expected));
  }
});

Deno.test("jsonPatch() applies RFC 6902 operations", async (t) => {
  const doc = { a: { b: [1, 2] }, c: "x" };
  const cases: [string, unknown[], unknown][] = [
    ["add to an object", [{ op: "add", path: "/d", value: 1 }], { ...doc, d: 1 }],
    ["add to an array end", [{ op: "add", path: "/a/b/-", value: 3 }], {
      a: { b: [1, 2, 3] },
      c: "x",
    }],
    ["insert into an array", [{ op: "add", path: "/a/b/0", value: 0 }], {
      a: { b: [0, 1, 2] },
      c: "x",
    }],
    ["remove", [{ op: "remove", path: "/c" }], { a: { b: [1, 2] } }],
    ["replace", [{ op: "replace", path: "/c", value: "y" }], { a: { b: [1, 2] }, c: "y" }],
    ["move", [{ op: "move", from: "/c", path: "/e" }], { a: { b: [1, 2] }, e: "x" }],
    ["copy", [{ op: "copy", from: "/c", path: "/e" }], { ...doc, e: "x" }],
    ["escaped keys", [{ op: "add", path: "/a~1b", value: 1 }], { ...doc, "a/b": 1 }],
    ["test then replace", [{ op: "test", path: "/c", value: "x" }, {
      op: "replace",
      path: "/c",
      value: "z",
    }], {
      ...doc,
      c: "z",
    }],
  ];
  for (const [name, ops, expected] of cases) {
    await t.step(name, () => assertEquals(jsonPatch(doc, ops), expected));
  }
  assertEquals(doc, { a: { b: [1, 2] }, c: "x" }, "the input is not mutated");
});

Deno.test("jsonPatch() rejects failed tests and missing paths", async (t) => {
  const cases: [string, unknown][] = [
    ["failed test", [{ op: "test", path: "/c", value: "nope" }]],
    ["remove a missing key", [{ op: "remove", path: "/missing" }]],
    ["replace a missing key", [{ op: "replace", path: "/missing", value: 1 }]],
    ["add below a missing parent", [{ op: "add", path: "/x/y", value: 1 }]],
    ["not an array", { op: "add" }],
  ];
  for (const [name, ops] of cases) {
    await t.step(name, () => {
      assertThrows(() => jsonPatch({ c: "x" }, ops), TypeError);
    });
  }
});

Deno.test("patchTypeOf() maps content types", () => {
  assertEquals(patchTypeOf("application/json-patch+json"), "json");
  assertEquals(patchTypeOf("application/merge-patch+json; charset=utf-8"), "merge");
  assertEquals(patchTypeOf("application/strategic-merge-patch+json"), "strategic");
  assertEquals(patchTypeOf("application/apply-patch+yaml"), undefined);
  assertEquals(patchTypeOf(null), undefined);
});

Deno.test("strategicMergePatch() merges keyed lists by key and replaces the others", () => {
  const node = {
    spec: { taints: [{ key: "a", effect: "NoSchedule" }, { key: "b", effect: "NoSchedule" }] },
    status: {
      conditions: [
        { type: "Ready", status: "True" },
        { type: "ImagesPrePulled", status: "False", reason: "Pulling" },
      ],
    },
  };
  const keys = { "status.conditions": "type" };
  assertEquals(
    strategicMergePatch(node, {
      status: { conditions: [{ type: "ImagesPrePulled", status: "True", reason: "Warm" }] },
    }, keys),
    {
      spec: node.spec,
      status: {
        conditions: [
          { type: "Ready", status: "True" },
          { type: "ImagesPrePulled", status: "True", reason: "Warm" },
        ],
      },
    },
  );
  assertEquals(
    strategicMergePatch(
      node,
      { status: { conditions: [{ type: "Disk", status: "False" }] } },
      keys,
    ),
    {
      spec: node.spec,
      status: { conditions: [...node.status.conditions, { type: "Disk", status: "False" }] },
    },
  );
  assertEquals(
    strategicMergePatch(node, {
      status: { conditions: [{ type: "Ready", $patch: "delete" }] },
    }, keys),
    { spec: node.spec, status: { conditions: [node.status.conditions[1]] } },
  );
  // spec.taints has no merge key: the patch's list replaces it, as kubectl taint relies on.
  assertEquals(
    strategicMergePatch(node, { spec: { taints: [{ key: "b", effect: "NoSchedule" }] } }, keys),
    { spec: { taints: [{ key: "b", effect: "NoSchedule" }] }, status: node.status },
  );
  assertThrows(
    () => strategicMergePatch(node, { status: { conditions: [{ status: "True" }] } }, keys),
    TypeError,
    'merge key "type"',
  );
});

Deno.test("jsonPatch() test op compares objects by value, not key order", () => {
  const doc = { spec: { taints: [{ key: "a", effect: "NoSchedule" }] } };
  const remove = { op: "remove", path: "/spec/taints/0" };
  assertEquals(
    jsonPatch(doc, [{
      op: "test",
      path: "/spec/taints",
      value: [{ effect: "NoSchedule", key: "a" }],
    }, remove]),
    { spec: { taints: [] } },
  );
  assertThrows(
    () =>
      jsonPatch(doc, [{
        op: "test",
        path: "/spec/taints",
        value: [{ effect: "NoSchedule", key: "a", value: "x" }],
      }, remove]),
    TypeError,
    "Test operation failed",
  );
});
