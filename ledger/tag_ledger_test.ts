import { assert, assertEquals } from "../testing/assert.ts";
import { publishedImageOf } from "../publication/published_set.ts";
import { digestOfImageId, TagLedger } from "./tag_ledger.ts";

const TAG = "docker.io/library/alpine:3.20";
const PINNED = `docker.io/library/alpine@sha256:${"a".repeat(64)}`;
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const nodes = Array.from({ length: 10 }, (_, i) => `node-${i}`);

function ledger(now = () => 1000) {
  const l = new TagLedger({ now });
  let changes = 0;
  l.subscribe(() => changes++);
  l.setNodes(nodes);
  l.retain([TAG, PINNED]);
  return { l, changes: () => changes };
}

Deno.test("TagLedger keeps tags only, each with a canary among the ready nodes", () => {
  const { l } = ledger();
  assertEquals(l.entries().map((e) => e.ref), [TAG]);
  const canary = l.entry(TAG)!.canary!;
  assert(nodes.includes(canary));
  assertEquals(l.annotate(publishedImageOf(PINNED)), publishedImageOf(PINNED));
  assertEquals(l.annotate(publishedImageOf(TAG)), { ...publishedImageOf(TAG), canary });
});

Deno.test("TagLedger records the digest a pull revealed and publishes it; an unchanged check announces nothing", () => {
  let now = 1000;
  const { l, changes } = ledger(() => now);
  const canary = l.entry(TAG)!.canary!;
  const before = changes();
  l.report(TAG, canary, D1);
  assertEquals(changes(), before + 1);
  assertEquals(l.entry(TAG)!.digest, D1);
  assertEquals(l.annotate(publishedImageOf(TAG)).ledgerDigest, D1);
  now = 2000;
  l.report(TAG, canary, D1);
  assertEquals(changes(), before + 1, "same digest: no new publication");
  assertEquals(l.entry(TAG)!.checkedAt, 2000);
  l.report(TAG, canary, D2);
  assertEquals(changes(), before + 2, "moved tag: published");
  assertEquals(l.entry(TAG)!.digest, D2);
});

Deno.test("TagLedger moves the canary only when its node goes away", () => {
  const { l } = ledger();
  const canary = l.entry(TAG)!.canary!;
  const other = nodes.find((n) => n !== canary)!;
  l.setNodes(nodes.filter((n) => n !== other));
  assertEquals(l.entry(TAG)!.canary, canary);
  l.setNodes(nodes.filter((n) => n !== canary));
  const next = l.entry(TAG)!.canary!;
  assert(next !== canary && nodes.includes(next));
  l.setNodes([]);
  assertEquals(l.entry(TAG)!.canary, undefined);
});

Deno.test("TagLedger replaces a failing canary, falls back to per-node pulls after two, and recovers on a success", () => {
  const { l } = ledger();
  const first = l.entry(TAG)!.canary!;
  l.failure(TAG, first);
  const second = l.entry(TAG)!.canary!;
  assert(second !== first, "the failed canary is replaced");
  assertEquals(l.entry(TAG)!.fallback, false);
  l.failure(TAG, "node-not-canary");
  assertEquals(l.entry(TAG)!.canary, second, "a non-canary's failure does not move the canary");
  l.failure(TAG, second);
  assertEquals(l.entry(TAG)!.fallback, true);
  assertEquals(l.entry(TAG)!.canary, undefined, "fallback: no canary is published");
  assertEquals(l.annotate(publishedImageOf(TAG)).canary, undefined);
  l.report(TAG, first, D1);
  const after = l.entry(TAG)!;
  assertEquals(after.fallback, false);
  assert(after.canary !== undefined && after.canary !== second, "the still-failed node is skipped");
});

Deno.test("digestOfImageId() reads manifest digests and refuses image IDs", async (t) => {
  const table: [string | undefined, string | undefined][] = [
    [`docker.io/library/alpine@${D1}`, D1],
    [`docker-pullable://alpine@${D1}`, D1],
    [D1, undefined],
    ["", undefined],
    [undefined, undefined],
    ["docker.io/library/alpine@sha256:xyz", undefined],
  ];
  for (const [id, want] of table) {
    await t.step(String(id), () => assertEquals(digestOfImageId(id), want));
  }
});

Deno.test("TagLedger following the desired set's changes keeps what a retain of the whole set keeps, and announces each change", async () => {
  const { DesiredImages } = await import("../images/desired_images.ts");
  const desired = new DesiredImages();
  const tracked = new TagLedger({ now: () => 1000 });
  tracked.setNodes(nodes);
  let announced = 0;
  tracked.subscribe(() => announced++);
  desired.subscribe((change) => tracked.track(change));
  const retained = new TagLedger({ now: () => 1000 });
  retained.setNodes(nodes);
  const same = () => {
    retained.retain(desired.refs());
    assertEquals(tracked.entries(), retained.entries());
  };
  desired.set("a", [TAG, PINNED, "nginx:1.27"]);
  same();
  assertEquals(tracked.entries().map((e) => e.ref), [
    "docker.io/library/alpine:3.20",
    "docker.io/library/nginx:1.27",
  ]);
  const before = announced;
  desired.set("b", [TAG]);
  assertEquals(announced, before, "a tag already kept: nothing new to publish");
  desired.set("a", [PINNED]);
  same();
  desired.delete("b");
  same();
  assertEquals(tracked.entries(), []);
  assertEquals(announced, before + 2);
});

Deno.test("a check reported for a tag that is not desired (a pull in flight as it left the set) is not kept", () => {
  const ledger = new TagLedger({ now: () => 0 });
  const tag = "registry.example.com/a/b:1";
  ledger.setNodes(["node-1", "node-2"]);
  ledger.track({ added: [tag], removed: [] });
  ledger.track({ added: [], removed: [tag] });
  ledger.report(tag, "node-1", `sha256:${"a".repeat(64)}`);
  ledger.failure(tag, "node-2");
  assertEquals(ledger.entries(), []);
});
