import { assert, assertEquals } from "../testing/assert.ts";
import { chooseCanary } from "./canary.ts";

const nodes = Array.from({ length: 100 }, (_, i) => `node-${i}`);
const tags = Array.from({ length: 1000 }, (_, i) => `registry.example.com/app-${i}:v1`);

Deno.test("chooseCanary() is the same whatever the order of the nodes", () => {
  const reversed = [...nodes].reverse();
  for (const ref of tags) assertEquals(chooseCanary(ref, reversed), chooseCanary(ref, nodes));
});

Deno.test("chooseCanary() moves a tag only when its canary node goes away", () => {
  const before = new Map(tags.map((ref) => [ref, chooseCanary(ref, nodes)!]));
  const gone = "node-17";
  const after = nodes.filter((n) => n !== gone);
  let moved = 0;
  for (const ref of tags) {
    const now = chooseCanary(ref, after)!;
    if (before.get(ref) === gone) {
      moved++;
      assert(now !== gone);
    } else assertEquals(now, before.get(ref), ref);
  }
  assert(moved > 0, "node-17 was canary of no tag: the test proves nothing");
  // A node joining takes only the tags it wins; the others stay.
  const joined = [...nodes, "node-new"];
  for (const ref of tags) {
    const now = chooseCanary(ref, joined)!;
    if (now !== "node-new") assertEquals(now, before.get(ref), ref);
  }
});

Deno.test("chooseCanary() spreads 1,000 tags over 100 nodes with no node checking more than 30", () => {
  const load = new Map<string, number>();
  for (const ref of tags) {
    const node = chooseCanary(ref, nodes)!;
    load.set(node, (load.get(node) ?? 0) + 1);
  }
  assert(load.size >= 90, `${load.size} nodes used`);
  assert(Math.max(...load.values()) <= 30, `max ${Math.max(...load.values())}`);
});

Deno.test("chooseCanary() has no canary without nodes", () => {
  assertEquals(chooseCanary("docker.io/library/alpine:3.20", []), undefined);
});
