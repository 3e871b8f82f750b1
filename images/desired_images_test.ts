import { assertEquals, assertMatch } from "../testing/assert.ts";
import { DesiredImages, type ImageChange } from "./desired_images.ts";

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
