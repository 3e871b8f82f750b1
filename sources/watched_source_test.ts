import { ApiException, type KubernetesObject } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { ScriptedCollection } from "../testing/scripted_collection.ts";
import { FakeClock } from "../time/clock.ts";
import { DesiredImages } from "../images/desired_images.ts";
import type { EventSink, EventType, InvolvedObject } from "../kube/events.ts";
import { recordingLogger } from "../log/logger.ts";
import { WatchedSource } from "./watched_source.ts";

const ALPINE = "docker.io/library/alpine:3.20";
const NGINX = "docker.io/library/nginx:1.27";

/** `data.images` is a comma-separated list; `data.images = "!"` cannot be read at all. */
function extract(obj: KubernetesObject): string[] {
  const images = (obj as { data?: Record<string, string> }).data?.images ?? "";
  if (images === "!") throw new TypeError("images is not a list");
  return images.split(",").filter(Boolean);
}

interface Recorded {
  type: EventType;
  obj: InvolvedObject;
  reason: string;
  message: string;
}

/** A WatchedSource over hand-driven collections, on fake time. */
function setup(options: { scopes?: number; goneAfterMs?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const collections = Array.from({ length: options.scopes ?? 1 }, () => new ScriptedCollection());
  const desired = new DesiredImages();
  const log = recordingLogger();
  const events: Recorded[] = [];
  const sink: EventSink = {
    emit: (type, obj, reason, message) => events.push({ type, obj, reason, message }),
  };
  const source = new WatchedSource({
    name: "configmap",
    kind: "ConfigMap",
    apiVersion: "v1",
    collections,
    sink: desired,
    log,
    events: sink,
    clock,
    extract,
    backoffBaseMs: 100,
    backoffMaxMs: 1_000,
    unavailableBackoffMaxMs: 60_000,
    goneAfterMs: options.goneAfterMs,
  });
  const controller = new AbortController();
  let running: Promise<void> | undefined;
  return {
    clock,
    api: collections[0],
    collections,
    desired,
    log,
    events,
    source,
    async start() {
      running = source.run(controller.signal);
      await source.synced;
      await clock.flush();
    },
    async [Symbol.asyncDispose]() {
      controller.abort();
      await running;
    },
  };
}

const logged = (log: ReturnType<typeof recordingLogger>, msg: string) =>
  log.lines.filter((l) => l.msg === msg).length;

Deno.test("WatchedSource reports each object's whole image set, and an edit replaces it", async () => {
  await using t = setup();
  t.api.put("a", { images: "alpine:3.20,nginx:1.27" });
  await t.start();
  assertEquals(t.desired.refs(), [ALPINE, NGINX]);
  assertEquals(t.desired.originsOf(ALPINE), ["configmap/ns/a"]);
  t.api.lastWatch!.send("MODIFIED", t.api.put("a", { images: "nginx:1.27" }));
  assertEquals(t.desired.refs(), [NGINX], "alpine is no longer asked for");
  t.api.lastWatch!.send("DELETED", t.api.put("a", { images: "nginx:1.27" }));
  assertEquals(t.desired.refs(), []);
  assertEquals(t.source.status().objects, 0);
});

Deno.test("WatchedSource keeps an image that moved between objects desired through a relist", async () => {
  await using t = setup();
  t.api.put("old", { images: "alpine:3.20" });
  await t.start();
  const gaps: string[] = [];
  t.desired.subscribe((change) => {
    if (change.removed.includes(ALPINE)) gaps.push("alpine dropped");
  });
  // While the watch was down, "old" was deleted and "new" took its image.
  t.api.remove("old");
  t.api.put("new", { images: "alpine:3.20" });
  t.api.lastWatch!.send("ERROR", { code: 410, message: "too old resource version" } as never);
  await t.clock.flush();
  assertEquals(t.api.lists.length, 2, "relisted");
  assertEquals(t.desired.originsOf(ALPINE), ["configmap/ns/new"]);
  assertEquals(gaps, [], "never left the desired set on the way");
});

Deno.test("WatchedSource keeps the last good set of an object whose data breaks, and reports it once", async () => {
  await using t = setup();
  t.api.put("a", { images: "alpine:3.20" });
  await t.start();
  const watch = t.api.lastWatch!;
  watch.send("MODIFIED", t.api.put("a", { images: "!" }));
  watch.send("MODIFIED", t.api.put("a", { images: "!" }));
  assertEquals(t.desired.refs(), [ALPINE], "the last good set stays");
  assertEquals(t.source.status().errors, 1);
  assertEquals(logged(t.log, "Invalid image list"), 1, "the same error is logged once");
  assertEquals(t.events.map((e) => [e.type, e.reason, e.obj.name]), [
    ["Warning", "InvalidImageList", "a"],
  ]);
  assertEquals(t.log.lines.find((l) => l.msg === "Invalid image list")?.kept, "last good set");

  watch.send("MODIFIED", t.api.put("a", { images: "nginx:1.27" }));
  assertEquals(t.desired.refs(), [NGINX]);
  assertEquals(t.source.status().errors, 0);
  assertEquals(logged(t.log, "Image list valid again"), 1);
});

Deno.test("WatchedSource reports an object's rejected references once, with one Warning Event", async () => {
  await using t = setup();
  t.api.put("a", { images: "alpine:3.20,Bad:Ref:" });
  await t.start();
  assertEquals(t.desired.refs(), [ALPINE]);
  t.api.lastWatch!.send("MODIFIED", t.api.put("a", { images: "alpine:3.20,Bad:Ref:" }));
  assertEquals(logged(t.log, "Rejected image references"), 1);
  assertEquals(t.events.map((e) => e.reason), ["InvalidImageReference"]);
  // A different rejection is news again.
  t.api.lastWatch!.send("MODIFIED", t.api.put("a", { images: "alpine:3.20,Other:Bad:" }));
  assertEquals(logged(t.log, "Rejected image references"), 2);
  assertEquals(t.events.length, 2);
});

Deno.test("WatchedSource keeps what it has while its API is forbidden, however long", async () => {
  await using t = setup({ goneAfterMs: 120_000 });
  t.api.put("a", { images: "alpine:3.20" });
  await t.start();
  t.api.failLists(...Array(100).fill(forbidden()));
  t.api.lastWatch!.send("ERROR", { code: 410, message: "too old resource version" } as never);
  await t.clock.advance(600_000);
  assertEquals(t.source.status().available, false);
  assertEquals(t.desired.refs(), [ALPINE], "403: the objects may well exist");
});

Deno.test("WatchedSource drops its images only once its API has answered 404 for goneAfterMs", async () => {
  await using t = setup({ goneAfterMs: 120_000 });
  t.api.put("a", { images: "alpine:3.20" });
  await t.start();
  t.api.failLists(...Array(100).fill(notFound()));
  t.api.lastWatch!.send("ERROR", { code: 410, message: "too old resource version" } as never);
  await t.clock.flush();
  assertEquals(t.source.status().available, false);
  await t.clock.advance(110_000);
  assertEquals(t.desired.refs(), [ALPINE], "a short 404 may be a restarting API server");
  // The first 404 came at once; past goneAfterMs, the next retry (backoff
  // with jitter: up to a minute away) finds it lasting.
  await t.clock.advance(10_000);
  const lists = t.api.lists.length;
  for (let waited = 0; t.api.lists.length === lists && waited < 120_000; waited += 1_000) {
    await t.clock.advance(1_000);
  }
  assertEquals(t.desired.refs(), [], "a lasting 404: the objects are gone");
});

Deno.test("WatchedSource is synced only when every scope has listed, and sums their status", async () => {
  await using t = setup({ scopes: 2 });
  const [one, two] = t.collections;
  one.put("a", { images: "alpine:3.20" });
  two.put("b", { images: "!" });
  two.failLists(new ApiException(500, "Internal Server Error", "{}", {}));
  let synced = false;
  const running = t.start().then(() => synced = true);
  await t.clock.flush();
  assertEquals(synced, false, "the second scope has not listed yet");
  assertEquals(t.source.status().synced, false);
  await t.clock.advance(200);
  await running;
  const status = t.source.status();
  assertEquals([status.synced, status.objects, status.errors, status.restarts], [true, 1, 1, 1]);
});

function forbidden(): ApiException<string> {
  return new ApiException(403, "Forbidden", '{"message":"configmaps is forbidden"}', {});
}

function notFound(): ApiException<string> {
  return new ApiException(404, "Not Found", '{"message":"the server could not find it"}', {});
}

Deno.test("WatchedSource never reports an object as contributing when it asks for nothing", async () => {
  await using t = setup();
  t.api.put("empty", { images: "" });
  t.api.put("full", { images: "alpine:3.20" });
  await t.start();
  assertEquals(t.source.status().objects, 1);
  assert(t.source.status().synced);
});

Deno.test("WatchedSource reports 100,000 bad entries and a 900 KB one in one short log line and one short Event", async () => {
  await using t = setup();
  const bad = Array.from({ length: 100_000 }, (_, i) => `Bad:Ref:${i}`);
  t.api.put("a", { images: ["alpine:3.20", "x".repeat(900 * 1024) + ":", ...bad].join(",") });
  await t.start();
  assertEquals(t.desired.refs(), [ALPINE]);
  const lines = t.log.lines.filter((l) => l.msg === "Rejected image references");
  assertEquals(lines.length, 1);
  assertEquals(lines[0].count, 100_001);
  const size = JSON.stringify(lines[0]).length;
  assert(size < 8 * 1024, `the log line is ${size} bytes`);
  assertEquals(t.events.length, 1);
  assert(t.events[0].message.length <= 1_000, `${t.events[0].message.length}`);
  assertMatch(t.events[0].message, /^100001 image references rejected: /);
});
