import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { nullLogger } from "../log/logger.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { encodeShards, type PublishedImage, publishedImageOf, shardName } from "./published_set.ts";
import { PublishedSetSource } from "./published_set_source.ts";

const NS = "image-cache-daemon";
const ref = (i: number) => `registry.example.com/team-${i % 13}/app-${i}:v1`;

/** Runs a node's PublishedSetSource (into a real DesiredImages) against a fake API server. */
async function withSource(
  fn: (
    parts: {
      source: PublishedSetSource;
      desired: DesiredImages;
      publish(images: PublishedImage[], generation: number, maxBytes?: number): void;
      server: FakeApiServer;
    },
  ) => Promise<void>,
): Promise<void> {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  const desired = new DesiredImages();
  const source = new PublishedSetSource({
    kubeConfig: server.kubeConfig(),
    namespace: NS,
    sink: desired,
    log: nullLogger,
  });
  const publish = (images: PublishedImage[], generation: number, maxBytes?: number) => {
    for (const shard of encodeShards(images, { namespace: NS, generation, maxBytes })) {
      server.create("configmaps", shard);
    }
  };
  const controller = new AbortController();
  const running = source.run(controller.signal);
  try {
    await fn({ source, desired, publish, server });
  } finally {
    controller.abort();
    await running;
    await server.close();
  }
}

Deno.test("a node applies a published set larger than --max-images-per-object whole", async () => {
  await withSource(async ({ source, desired, publish }) => {
    // The aggregator held each object to the cap; 2,500 images from many objects are all desired.
    publish(Array.from({ length: 2_500 }, (_, i) => publishedImageOf(ref(i))), 1);
    await source.synced;
    assertEquals(desired.size, 2_500);
    assertEquals(desired.rejectedCount(), 0);
  });
});

Deno.test("a generation that changes only the tag ledger updates the ledger, not the desired images", async () => {
  await withSource(async ({ source, desired, publish }) => {
    const images = Array.from({ length: 50 }, (_, i) => publishedImageOf(ref(i)));
    publish(images, 1);
    await source.synced;
    const version = desired.version;
    const digest = `sha256:${"d".repeat(64)}`;
    publish(
      images.map((i, n) => n === 7 ? { ...i, canary: "node-2", ledgerDigest: digest } : i),
      2,
    );
    await waitFor(() => source.publishedSet().generation === 2, { what: "generation 2" });
    assertEquals(source.ledger(ref(7)), { canary: "node-2", digest });
    assertEquals(desired.version, version, "the desired images were not set again");
    // A generation that does change the images still reaches them.
    publish([...images, publishedImageOf(ref(99))], 3);
    await waitFor(() => desired.has(ref(99)), { what: "generation 3's new image" });
    assert(desired.version > version);
    assertEquals(desired.size, 51);
  });
});

Deno.test("a node never goes back to an older generation left behind while shards of the one it applied are there; once none is left, the older one is the set", async () => {
  await withSource(async ({ source, desired, publish, server }) => {
    publish([publishedImageOf(ref(0))], 4);
    await waitFor(() => source.publishedSet().generation === 4, { what: "generation 4" });
    // Generation 5 in two shards; its writer died before removing generation 4.
    const five = [0, 1, 2, 3].map((i) => publishedImageOf(ref(i)));
    publish(five, 5, 800);
    assert(server.get("configmaps", NS, shardName(5, 1)), "generation 5 has two shards");
    await waitFor(() => source.publishedSet().generation === 5, { what: "generation 5" });
    assertEquals(desired.size, 4);

    server.delete("configmaps", NS, shardName(5, 1));
    await waitFor(() => source.publishedSet().state === "incomplete", { what: "incomplete" });
    assertEquals(source.publishedSet().generation, 5);
    assertEquals(desired.size, 4, "generation 4 was not applied");
    assert(/generation 5 is incomplete; keeping generation 5/.test(source.publishedSet().detail!));

    server.delete("configmaps", NS, shardName(5, 0));
    await waitFor(() => source.publishedSet().generation === 4, { what: "generation 4 again" });
    assertEquals(source.publishedSet().state, "current");
    assertEquals(desired.size, 1);
  });
});

Deno.test("the tag ledger counts only while an aggregator is alive: without one a node finds no ledger entry and resyncs the tag itself", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  let alive = true;
  const source = new PublishedSetSource({
    kubeConfig: server.kubeConfig(),
    namespace: NS,
    sink: new DesiredImages(),
    log: nullLogger,
    ledgerLiveness: {
      alive: () => alive,
      check: () => Promise.resolve(),
      status: () => ({ alive, reason: alive ? undefined : "no aggregator is running" }),
    },
  });
  const digest = `sha256:${"d".repeat(64)}`;
  for (
    const shard of encodeShards([{
      ...publishedImageOf(ref(1)),
      canary: "node-2",
      ledgerDigest: digest,
    }], {
      namespace: NS,
      generation: 1,
    })
  ) server.create("configmaps", shard);
  const controller = new AbortController();
  const running = source.run(controller.signal);
  try {
    await source.synced;
    assertEquals(source.ledger(ref(1)), { canary: "node-2", digest });
    alive = false;
    assertEquals(source.ledger(ref(1)), undefined);
    // What this node owes the others as a canary does not depend on it.
    assertEquals(source.ledgerEntry(ref(1)), { canary: "node-2", digest });
    assertEquals(source.publishedSet().ledger, {
      alive: false,
      reason: "no aggregator is running",
    });
    alive = true;
    assertEquals(source.ledger(ref(1)), { canary: "node-2", digest });
  } finally {
    controller.abort();
    await running;
    await server.close();
  }
});
