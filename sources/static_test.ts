import { assertEquals } from "../testing/assert.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { recordingLogger } from "../log/logger.ts";
import { STATIC_ORIGIN, StaticSource } from "./static.ts";

Deno.test("StaticSource reports --image references under one origin and is synced at once", async () => {
  const desired = new DesiredImages();
  const log = recordingLogger();
  const source = new StaticSource({ images: ["alpine", "nginx:1.27"], sink: desired, log });
  await source.synced;
  assertEquals(desired.refs(), [
    "docker.io/library/alpine:latest",
    "docker.io/library/nginx:1.27",
  ]);
  assertEquals(desired.originsOf("docker.io/library/alpine:latest"), [STATIC_ORIGIN]);
  assertEquals(source.status().synced, true);
  assertEquals(source.status().objects, 1);
});

Deno.test("StaticSource logs each invalid --image and keeps the valid ones", () => {
  const desired = new DesiredImages();
  const log = recordingLogger();
  const source = new StaticSource({ images: ["alpine", "Alpine", ""], sink: desired, log });
  assertEquals(desired.refs(), ["docker.io/library/alpine:latest"]);
  const errors = log.lines.filter((l) => l.level === "error");
  assertEquals(errors.map((l) => l.image), ["Alpine", ""]);
  assertEquals(source.status().errors, 2);
});

Deno.test("StaticSource.run() returns when the signal aborts", async () => {
  const source = new StaticSource({
    images: [],
    sink: new DesiredImages(),
    log: recordingLogger(),
  });
  const controller = new AbortController();
  const running = source.run(controller.signal);
  controller.abort();
  await running;
  assertEquals(source.status().objects, 0);
});
