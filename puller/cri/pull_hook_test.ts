import { assertEquals, assertRejects } from "../../testing/assert.ts";
import { CriCallError, type CriClient, type CriImage, GrpcStatus } from "./client.ts";
import { criPullHook } from "./pull_hook.ts";

const DIGEST = "sha256:" + "2".repeat(64);

/** A fake runtime that holds `present` and can pull anything but `missing`. */
function fakeClient(present: Set<string>, pulls: string[]): CriClient {
  const image = (ref: string): CriImage => ({
    id: "sha256:id",
    repoTags: [ref],
    repoDigests: [`docker.io/library/busybox@${DIGEST}`],
    size: 1,
  });
  return {
    version: () => Promise.reject(new Error("unused")),
    listImages: () => Promise.resolve([]),
    imageStatus: (ref) => Promise.resolve(present.has(ref) ? image(ref) : undefined),
    pullImage: (ref) => {
      pulls.push(ref);
      if (ref.includes("missing")) {
        return Promise.reject(new CriCallError("PullImage", GrpcStatus.UNKNOWN, "not found"));
      }
      present.add(ref);
      return Promise.resolve("sha256:id");
    },
    close: () => {},
  };
}

Deno.test("criPullHook() follows the pull policy like a kubelet", async (t) => {
  await t.step("Never fails when absent and does not pull", async () => {
    const pulls: string[] = [];
    const hook = criPullHook(fakeClient(new Set(), pulls));
    await assertRejects(() => hook("busybox:1", "Never"), Error, "ErrImageNeverPull");
    assertEquals(pulls, []);
  });
  await t.step("IfNotPresent pulls once, then finds it", async () => {
    const pulls: string[] = [];
    const hook = criPullHook(fakeClient(new Set(), pulls));
    assertEquals(await hook("busybox:1", "IfNotPresent"), {
      imageID: `docker.io/library/busybox@${DIGEST}`,
    });
    await hook("busybox:1", "IfNotPresent");
    assertEquals(pulls, ["busybox:1"]);
  });
  await t.step("Always pulls even when present", async () => {
    const pulls: string[] = [];
    const hook = criPullHook(fakeClient(new Set(["busybox:1"]), pulls));
    await hook("busybox:1", "Always");
    assertEquals(pulls, ["busybox:1"]);
  });
  await t.step("no policy means Always for :latest and IfNotPresent for other tags", async () => {
    const pulls: string[] = [];
    const hook = criPullHook(fakeClient(new Set(["busybox", "busybox:1"]), pulls));
    await hook("busybox");
    await hook("busybox:1");
    assertEquals(pulls, ["busybox"]);
  });
  await t.step("a failed pull rejects with ErrImagePull", async () => {
    const hook = criPullHook(fakeClient(new Set(), []));
    await assertRejects(() => hook("missing:1", "Always"), Error, "ErrImagePull");
  });
});
