import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import {
  DesiredImages,
  type ImageChange,
  MAX_ECHO_CHARS,
  MAX_REJECTION_SAMPLES,
} from "./desired_images.ts";
import { TrustPolicy } from "./trust.ts";

const ALPINE = "docker.io/library/alpine:latest";
const BUSYBOX = "docker.io/library/busybox:1.36";
const NGINX = "docker.io/library/nginx:latest";

function recordChanges(desired: DesiredImages): ImageChange[] {
  const changes: ImageChange[] = [];
  desired.subscribe((c) => changes.push(c));
  return changes;
}

Deno.test("DesiredImages.set() dedupes equivalent references across spellings", () => {
  const desired = new DesiredImages();
  desired.set("static/--image", ["alpine", "docker.io/library/alpine:latest", "library/alpine"]);
  assertEquals(desired.refs(), [ALPINE]);
  assertEquals(desired.originsOf(ALPINE), ["static/--image"]);
});

Deno.test("DesiredImages.set() replaces an origin's whole set and notifies added and removed", () => {
  const desired = new DesiredImages();
  const changes = recordChanges(desired);
  desired.set("configmap/ns/a", ["alpine", "busybox:1.36"]);
  desired.set("configmap/ns/a", ["busybox:1.36", "nginx"]);
  assertEquals(desired.refs(), [BUSYBOX, NGINX]);
  assertEquals(changes, [
    { added: [ALPINE, BUSYBOX], removed: [] },
    { added: [NGINX], removed: [ALPINE] },
  ]);
});

Deno.test("DesiredImages keeps a shared reference until its last origin is gone", () => {
  const desired = new DesiredImages();
  const changes = recordChanges(desired);
  desired.set("configmap/ns/a", ["alpine"]);
  desired.set("workflowtemplate/ns/t", ["alpine:latest"]);
  assertEquals(desired.originsOf(ALPINE), ["configmap/ns/a", "workflowtemplate/ns/t"]);
  desired.delete("configmap/ns/a");
  assertEquals(desired.has(ALPINE), true);
  desired.set("workflowtemplate/ns/t", []);
  assertEquals(desired.has(ALPINE), false);
  assertEquals(desired.size, 0);
  assertEquals(changes, [{ added: [ALPINE], removed: [] }, { added: [], removed: [ALPINE] }]);
});

Deno.test("DesiredImages does not notify when a set is unchanged", () => {
  const desired = new DesiredImages();
  desired.set("a", ["alpine"]);
  const changes = recordChanges(desired);
  desired.set("a", ["docker.io/library/alpine"]);
  desired.delete("never-there");
  assertEquals(changes, []);
});

Deno.test("DesiredImages keeps rejected references per origin with their reasons", () => {
  const desired = new DesiredImages();
  const result = desired.set("workflowtemplate/ns/t", [
    "alpine",
    "{{inputs.parameters.image}}",
    "Bad/Name",
  ]);
  assertEquals([...result.accepted], [ALPINE]);
  assertEquals(result.rejected.map((r) => r.input), ["{{inputs.parameters.image}}", "Bad/Name"]);
  assertMatch(result.rejected[0].reason, /templated, not resolvable/);
  assertEquals(desired.rejections("workflowtemplate/ns/t").length, 2);
  assertEquals(desired.rejections().length, 2);
  assertEquals(desired.refs(), [ALPINE]);
  desired.set("workflowtemplate/ns/t", ["alpine"]);
  assertEquals(desired.rejections(), []);
});

Deno.test("DesiredImages.origins() lists origins by prefix, including those with only rejections", () => {
  const desired = new DesiredImages();
  desired.set("configmap/a/x", ["alpine"]);
  desired.set("configmap/b/y", ["{{x}}"]);
  desired.set("workflowtemplate/a/z", ["nginx"]);
  assertEquals(desired.origins("configmap/"), ["configmap/a/x", "configmap/b/y"]);
  assertEquals(desired.origins().length, 3);
  desired.delete("configmap/b/y");
  assertEquals(desired.origins("configmap/"), ["configmap/a/x"]);
});

Deno.test("DesiredImages.subscribe() returns an unsubscribe function", () => {
  const desired = new DesiredImages();
  const changes: ImageChange[] = [];
  const unsubscribe = desired.subscribe((c) => changes.push(c));
  desired.set("a", ["alpine"]);
  unsubscribe();
  desired.set("a", ["nginx"]);
  assertEquals(changes.length, 1);
});

Deno.test("DesiredImages marks an image trusted only while a trusted origin asks for it", () => {
  const desired = new DesiredImages({
    policy: new TrustPolicy({ trustedNamespaces: ["platform"] }),
  });
  const changes = recordChanges(desired);
  desired.set("configmap/tenant/a", ["ghcr.io/acme/private:1"]);
  assertEquals(desired.images(), [{ ref: "ghcr.io/acme/private:1", trusted: false }]);
  desired.set("static/--image", ["ghcr.io/acme/private:1"]);
  assertEquals(desired.trusted("ghcr.io/acme/private:1"), true);
  desired.delete("static/--image");
  assertEquals(desired.trusted("ghcr.io/acme/private:1"), false);
  desired.set("configmap/platform/b", ["ghcr.io/acme/private:1"]);
  assertEquals(desired.trusted("ghcr.io/acme/private:1"), true);
  assertEquals(changes, [
    { added: ["ghcr.io/acme/private:1"], removed: [] },
    { added: [], removed: [], retrusted: ["ghcr.io/acme/private:1"] },
    { added: [], removed: [], retrusted: ["ghcr.io/acme/private:1"] },
    { added: [], removed: [], retrusted: ["ghcr.io/acme/private:1"] },
  ]);
});

Deno.test("DesiredImages rejects repositories outside --allowed-repositories for untrusted origins only", () => {
  const desired = new DesiredImages({
    policy: new TrustPolicy({ allowedRepositories: ["docker.io/library/*", "ghcr.io/acme/**"] }),
  });
  const result = desired.set("configmap/tenant/a", [
    "alpine",
    "ghcr.io/acme/team/app:1",
    "ghcr.io/evil/miner:1",
    "docker.io/someone/alpine:1",
  ]);
  assertEquals([...result.accepted].sort(), [ALPINE, "ghcr.io/acme/team/app:1"]);
  assertEquals(result.rejectedCount, 2);
  assertMatch(result.rejected[0].reason, /not in --allowed-repositories/);
  desired.set("static/--image", ["ghcr.io/evil/miner:1"]);
  assertEquals(desired.has("ghcr.io/evil/miner:1"), true);
});

Deno.test("DesiredImages rejects, and reports, entries beyond the per-object cap, keeping the first ones", () => {
  const desired = new DesiredImages({ maxImagesPerObject: 3 });
  const inputs = Array.from({ length: 10 }, (_, i) => `registry.example/app-${i}:1`);
  const result = desired.set("configmap/t/a", inputs);
  assertEquals([...result.accepted], inputs.slice(0, 3));
  assertEquals(result.rejectedCount, 7);
  assertMatch(result.rejected[0].reason, /Over the limit of 3 images per object/);
  assertEquals(desired.size, 3);
});

Deno.test("DesiredImages aggregates 100,000 bad entries into a count and a few short samples", () => {
  const desired = new DesiredImages();
  const huge = "a".repeat(900 * 1024);
  const bad = [huge, ...Array.from({ length: 100_000 }, (_, i) => `bad ref ${i}`)];
  const result = desired.set("configmap/t/a", bad);
  assertEquals(result.rejectedCount, 100_001);
  assertEquals(desired.rejectedCount(), 100_001);
  assertEquals(desired.rejections().length, MAX_REJECTION_SAMPLES);
  const size = JSON.stringify(desired.rejectionSummaries()).length;
  assert(size < 8 * 1024, `summaries are ${size} bytes`);
  assert(result.rejected[0].input.length < MAX_ECHO_CHARS + 32);
  assert(result.rejected[0].reason.length <= 600, `${result.rejected[0].reason.length}`);
  desired.set("configmap/t/a", []);
  assertEquals(desired.rejectedCount(), 0);
});

Deno.test("DesiredImages over the total cap desires trusted images first, then by reference, stable across orders", async () => {
  const build = async (order: number[]) => {
    const desired = new DesiredImages({ maxDesiredImages: 3 });
    const sets: [string, string[]][] = [
      ["configmap/t/a", ["registry.example/d:1", "registry.example/e:1"]],
      ["configmap/t/b", ["registry.example/a:1", "registry.example/b:1"]],
      ["static/--image", ["registry.example/z:1"]],
    ];
    for (const i of order) desired.set(...sets[i]);
    await Promise.resolve();
    return { refs: desired.refs(), over: desired.overCap() };
  };
  const one = await build([0, 1, 2]);
  assertEquals(one.refs, ["registry.example/a:1", "registry.example/b:1", "registry.example/z:1"]);
  assertEquals(one.over, { count: 2, samples: ["registry.example/d:1", "registry.example/e:1"] });
  assertEquals(await build([2, 1, 0]), one);
  assertEquals(await build([1, 2, 0]), one);
});

Deno.test("DesiredImages over the cap tells listeners the net change once per batch, and heals when back under", async () => {
  const desired = new DesiredImages({ maxDesiredImages: 2 });
  const changes = recordChanges(desired);
  desired.set("configmap/t/a", ["registry.example/b:1", "registry.example/c:1"]);
  for (let i = 0; i < 50; i++) desired.set(`configmap/t/x${i}`, [`registry.example/a${i}:1`]);
  await Promise.resolve();
  assertEquals(desired.refs(), ["registry.example/a0:1", "registry.example/a10:1"]);
  assertEquals(desired.recomputations, 1);
  const last = changes.at(-1)!;
  assertEquals([...last.removed].sort(), ["registry.example/b:1", "registry.example/c:1"]);
  for (let i = 0; i < 50; i++) desired.delete(`configmap/t/x${i}`);
  await Promise.resolve();
  assertEquals(desired.refs(), ["registry.example/b:1", "registry.example/c:1"]);
});

Deno.test("DesiredImages parses at most the per-object cap of an untrusted object's entries, and counts the rest", () => {
  const desired = new DesiredImages({ maxImagesPerObject: 2 });
  const entries = Array.from({ length: 1_000_000 }, (_, i) => `bad ref ${i}`);
  const result = desired.set("configmap/t/a", entries);
  assertEquals(result.rejectedCount, 1_000_000);
  // The first two were parsed (and found invalid); the rest were not read.
  assertMatch(result.rejected[0].reason, /Cannot parse image reference "bad ref 0"/);
  assertMatch(result.rejected[1].reason, /Cannot parse image reference "bad ref 1"/);
  assertEquals(result.rejected[2].reason, "Over the limit of 2 images per object");
  assertEquals(result.rejected.length, MAX_REJECTION_SAMPLES);
});

Deno.test("DesiredImages normalises a reference written again, in other objects and past its remembered normalisations, as the first time", () => {
  const desired = new DesiredImages({ maxImagesPerObject: 20_000, maxDesiredImages: 20_000 });
  const first = desired.set("configmap:a/one", ["nginx:1.27", "Bad Ref!", 42]);
  const many = Array.from({ length: 9_000 }, (_, i) => `registry.example.com/app-${i}:v1`);
  desired.set("configmap:a/many", many);
  const again = desired.set("configmap:a/two", ["nginx:1.27", "Bad Ref!", 42]);
  assertEquals([...again.accepted], [...first.accepted]);
  assertEquals([...again.accepted], ["docker.io/library/nginx:1.27"]);
  assertEquals(
    again.rejected.map((r) => r.reason),
    first.rejected.map((r) => r.reason),
  );
  assertEquals(again.rejectedCount, 2);
  assertEquals(desired.set("configmap:a/many", many).accepted.size, 9_000);
});
