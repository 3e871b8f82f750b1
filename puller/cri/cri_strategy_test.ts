import { PullError } from "../errors.ts";
import { nullLogger, recordingLogger } from "../../log/logger.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../../testing/assert.ts";
import {
  type AuthConfig,
  CriCallError,
  type CriCallOptions,
  type CriClient,
  type CriImage,
  GrpcStatus,
} from "./client.ts";
import { classifyPullFailure, CriPullStrategy, digestOf } from "./cri_strategy.ts";

const DIGEST = "sha256:" + "1".repeat(64);
const TAGGED = "registry.test/team/app:1";
const PINNED = `registry.test/team/app@${DIGEST}`;

function image(ref: string): CriImage {
  const repo = ref.split(/[@]/)[0].replace(/:[^/]*$/, "");
  return {
    id: "sha256:" + "c".repeat(64),
    repoTags: ref.includes("@") ? [] : [ref],
    repoDigests: [`${repo}@${DIGEST}`],
    size: 1000,
  };
}

/** A fake runtime: records calls, holds a set of present images. */
class FakeCri implements CriClient {
  present = new Set<string>();
  calls: { method: string; image?: string; auth?: AuthConfig; options?: CriCallOptions }[] = [];
  pullError?: Error;
  closed = false;

  version(options?: CriCallOptions) {
    this.calls.push({ method: "version", options });
    return Promise.resolve({
      version: "0.1.0",
      runtimeName: "fake",
      runtimeVersion: "1.0.0",
      runtimeApiVersion: "v1",
    });
  }
  imageStatus(ref: string, options?: CriCallOptions) {
    this.calls.push({ method: "imageStatus", image: ref, options });
    return Promise.resolve(this.present.has(ref) ? image(ref) : undefined);
  }
  listImages() {
    return Promise.resolve([...this.present].map(image));
  }
  pullImage(ref: string, options?: CriCallOptions & { auth?: AuthConfig }) {
    this.calls.push({ method: "pullImage", image: ref, auth: options?.auth, options });
    if (this.pullError) return Promise.reject(this.pullError);
    this.present.add(ref);
    return Promise.resolve(image(ref).id);
  }
  close() {
    this.closed = true;
  }
  methods() {
    return this.calls.map((c) => c.method);
  }
}

const signal = new AbortController().signal;

function strategy(cri: FakeCri, options: { auth?: (ref: string) => AuthConfig | undefined } = {}) {
  return new CriPullStrategy({ socket: "/fake.sock", log: nullLogger, client: cri, ...options });
}

Deno.test("pull() pulls an absent image and reports its repository digest", async () => {
  const cri = new FakeCri();
  assertEquals(await strategy(cri).pull(TAGGED, { signal, refresh: false }), { digest: DIGEST });
  assertEquals(cri.methods(), ["imageStatus", "pullImage", "imageStatus"]);
});

Deno.test("pull() skips a present tag unless the pull is a refresh", async () => {
  const cri = new FakeCri();
  cri.present.add(TAGGED);
  const s = strategy(cri);
  assertEquals(await s.pull(TAGGED, { signal, refresh: false }), { skipped: true, digest: DIGEST });
  assertEquals(cri.methods(), ["imageStatus"]);
  cri.calls = [];
  assertEquals(await s.pull(TAGGED, { signal, refresh: true }), { digest: DIGEST });
  assertEquals(cri.methods(), ["pullImage", "imageStatus"]);
});

Deno.test("pull() on refresh skips a tag whose digest here is the ledger's, and pulls one whose digest moved", async () => {
  const cri = new FakeCri();
  cri.present.add(TAGGED);
  const s = strategy(cri);
  const held = await s.pull(TAGGED, { signal, refresh: true, ledgerDigest: DIGEST });
  assertEquals(held, { skipped: true, digest: DIGEST });
  assertEquals(cri.methods(), ["imageStatus"]);
  cri.calls = [];
  const moved = "sha256:" + "2".repeat(64);
  assertEquals(await s.pull(TAGGED, { signal, refresh: true, ledgerDigest: moved }), {
    digest: DIGEST,
  });
  assertEquals(cri.methods(), ["imageStatus", "pullImage", "imageStatus"]);
});

Deno.test("pull() never pulls a present digest-pinned image, even on refresh", async () => {
  const cri = new FakeCri();
  cri.present.add(PINNED);
  const result = await strategy(cri).pull(PINNED, { signal, refresh: true });
  assertEquals(result, { skipped: true, digest: DIGEST });
  assertEquals(cri.methods(), ["imageStatus"]);
});

Deno.test("pull() passes the credentials chosen for the image", async () => {
  const cri = new FakeCri();
  const auth = { username: "u", password: "p" };
  const asked: string[] = [];
  await strategy(cri, { auth: (ref) => (asked.push(ref), auth) }).pull(TAGGED, {
    signal,
    refresh: false,
    trusted: true,
  });
  assertEquals(asked, [TAGGED]);
  assertEquals(cri.calls.find((c) => c.method === "pullImage")?.auth, auth);
});

Deno.test("pull() never passes credentials for an image no trusted origin asks for", async () => {
  const cri = new FakeCri();
  const asked: string[] = [];
  const auth = { username: "u", password: "p" };
  const s = strategy(cri, { auth: (ref) => (asked.push(ref), auth) });
  await s.pull(TAGGED, { signal, refresh: false });
  await s.pull(TAGGED, { signal, refresh: true, trusted: false });
  assertEquals(asked, []);
  assertEquals(cri.calls.filter((c) => c.method === "pullImage").map((c) => c.auth), [
    undefined,
    undefined,
  ]);
});

Deno.test("pull() gives every CRI call the signal and one deadline", async () => {
  const cri = new FakeCri();
  const before = Date.now();
  await new CriPullStrategy({ socket: "/s", log: nullLogger, client: cri, timeoutMs: 5000 })
    .pull(TAGGED, { signal, refresh: false });
  const deadlines = new Set(cri.calls.map((c) => c.options?.deadline));
  assertEquals(deadlines.size, 1);
  const [deadline] = deadlines;
  assert(deadline !== undefined && deadline >= before + 5000 && deadline <= Date.now() + 5000);
  assert(cri.calls.every((c) => c.options?.signal === signal));
});

Deno.test("pull() rejects an invalid reference permanently without calling the runtime", async () => {
  const cri = new FakeCri();
  const error = await assertRejects(
    () => strategy(cri).pull("Not/Valid", { signal, refresh: false }),
    PullError,
  );
  assertEquals([error.reason, error.permanent], ["InvalidImageName", true]);
  assertEquals(cri.calls, []);
});

Deno.test("pull() wraps a runtime failure in a PullError naming the image and socket", async () => {
  const cri = new FakeCri();
  cri.pullError = new CriCallError("PullImage", GrpcStatus.UNKNOWN, "boom: not found");
  const error = await assertRejects(
    () => strategy(cri).pull(TAGGED, { signal, refresh: false }),
    PullError,
  );
  assertEquals(
    error.message,
    `Cannot pull "${TAGGED}" through CRI socket "/fake.sock": boom: not found`,
  );
  assertEquals(error.cause, cri.pullError);
});

Deno.test("pull() reports a cancelled call with the signal's reason", async () => {
  const cri = new FakeCri();
  cri.pullError = new CriCallError("PullImage", GrpcStatus.CANCELLED, "Cancelled on client");
  const controller = new AbortController();
  controller.abort(new Error("image left the desired set"));
  const error = await assertRejects(
    () => strategy(cri).pull(TAGGED, { signal: controller.signal, refresh: true }),
    PullError,
  );
  assertEquals(error.reason, "RuntimeError");
  assertMatch(error.message, /was cancelled: image left the desired set/);
});

Deno.test("classifyPullFailure() maps runtime errors to the puller's reasons", async (t) => {
  const table: [string, number, string, string, boolean][] = [
    [
      "missing tag",
      GrpcStatus.UNKNOWN,
      'failed to resolve reference "r/x:1": r/x:1: not found',
      "ErrImagePull",
      false,
    ],
    [
      "no platform",
      GrpcStatus.UNKNOWN,
      "no match for platform in manifest: not found",
      "NoMatchingPlatform",
      true,
    ],
    [
      "CRI-O no platform",
      GrpcStatus.UNKNOWN,
      "choosing image instance: no image found in manifest list for architecture amd64",
      "NoMatchingPlatform",
      true,
    ],
    [
      "401",
      GrpcStatus.UNKNOWN,
      "unexpected status from HEAD request: 401 Unauthorized",
      "Unauthorized",
      false,
    ],
    ["403", GrpcStatus.UNKNOWN, "failed to authorize: 403 Forbidden", "Unauthorized", false],
    [
      "invalid name",
      GrpcStatus.UNKNOWN,
      'failed to parse image reference "A": invalid reference format',
      "InvalidImageName",
      true,
    ],
    ["deadline", GrpcStatus.DEADLINE_EXCEEDED, "Deadline exceeded", "Timeout", false],
    ["socket gone", GrpcStatus.UNAVAILABLE, "No connection established", "RuntimeError", false],
    [
      "old runtime",
      GrpcStatus.UNIMPLEMENTED,
      "unknown service runtime.v1.ImageService",
      "RuntimeError",
      false,
    ],
    ["cancelled", GrpcStatus.CANCELLED, "Cancelled on client", "RuntimeError", false],
  ];
  for (const [name, code, details, reason, permanent] of table) {
    await t.step(name, () => {
      assertEquals(
        classifyPullFailure(new CriCallError("PullImage", code, details)),
        { reason, permanent },
      );
    });
  }
  await t.step("cancelled by a timeout signal", () => {
    const controller = new AbortController();
    controller.abort(new DOMException("timed out", "TimeoutError"));
    assertEquals(
      classifyPullFailure(
        new CriCallError("PullImage", GrpcStatus.CANCELLED, "Cancelled"),
        controller.signal,
      ),
      { reason: "Timeout", permanent: false },
    );
  });
});

Deno.test("start() logs the runtime it reached", async () => {
  const cri = new FakeCri();
  const log = recordingLogger();
  await new CriPullStrategy({ socket: "/s", log, client: cri }).start(signal);
  const line = log.lines.find((l) => l.msg === "CRI runtime connected");
  assertEquals([line?.runtime, line?.apiVersion, line?.socket], ["fake", "v1", "/s"]);
});

Deno.test("start() explains an unreachable socket and an old runtime", async () => {
  const cri = new FakeCri();
  const s = new CriPullStrategy({ socket: "/run/x.sock", log: nullLogger, client: cri });
  cri.version = () =>
    Promise.reject(
      new CriCallError("Version", GrpcStatus.UNAVAILABLE, "connect ENOENT /run/x.sock"),
    );
  let error = await assertRejects(() => s.start(signal));
  assertEquals(
    error.message,
    'Cannot reach CRI socket "/run/x.sock": connect ENOENT /run/x.sock: is --cri-socket right?',
  );
  cri.version = () =>
    Promise.reject(new CriCallError("Version", GrpcStatus.UNIMPLEMENTED, "unknown service"));
  error = await assertRejects(() => s.start(signal));
  assertMatch(error.message, /does not serve CRI runtime\.v1/);
});

Deno.test("close() closes the client", async () => {
  const cri = new FakeCri();
  await strategy(cri).close();
  assert(cri.closed);
});

Deno.test("the constructor rejects a non-positive timeout", () => {
  let thrown: unknown;
  try {
    new CriPullStrategy({ socket: "/s", log: nullLogger, client: new FakeCri(), timeoutMs: 0 });
  } catch (error) {
    thrown = error;
  }
  assert(thrown instanceof RangeError);
  assertEquals(thrown.message, 'Cannot use CRI timeout "0": must be a positive number');
});

Deno.test("digestOf() prefers the digest recorded for the reference's own repository", () => {
  const img: CriImage = {
    id: "sha256:id",
    repoTags: [],
    repoDigests: ["other.test/x@sha256:aaa", "docker.io/library/busybox@sha256:bbb"],
    size: 0,
  };
  assertEquals(digestOf(img, "busybox:1"), "sha256:bbb");
  assertEquals(digestOf(img, "quay.io/y:1"), "sha256:aaa");
  assertEquals(digestOf({ ...img, repoDigests: [] }, "busybox"), "sha256:id");
});
