/**
 * The publisher's write schedule, on a fake clock against the fake API
 * server: leading-edge (a change after a quiet interval is written at once),
 * then at most one write per interval, gathering the changes made meanwhile;
 * a change only of the ledger's annotations on a slower interval of its own
 * that never delays a change of the images.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { recordingLogger } from "../log/logger.ts";
import { FakeClock } from "../time/clock.ts";
import {
  encodeShards,
  GENERATION_ANNOTATION,
  MAX_GENERATION,
  PUBLISHED_SET_LABEL,
  PUBLISHED_SET_SELECTOR,
  publishedImageOf,
  readShard,
  shardName,
} from "./published_set.ts";
import { type DesiredSet, Publisher, type PublisherOptions } from "./publisher.ts";
import type { PublishedImage, Shard } from "./published_set.ts";

const NS = "image-cache-daemon";
const INTERVAL_MS = 1_000;

/** The published set's ConfigMaps in the API server, read as shards. */
function shardsIn(server: FakeApiServer): Shard[] {
  return server.list("configmaps", { namespace: NS, labelSelector: PUBLISHED_SET_SELECTOR })
    .map((cm) => readShard(cm as KubernetesObject));
}

/** The images of the newest generation in the API server (complete or not). */
function newestImages(server: FakeApiServer): PublishedImage[] {
  const shards = shardsIn(server);
  const top = Math.max(...shards.map((s) => s.generation ?? 0));
  return shards.filter((s) => s.generation === top).flatMap((s) => s.images ?? []);
}

/** A desired set the test edits directly. */
class EditableSet implements DesiredSet {
  readonly #refs = new Set<string>();
  readonly #listeners = new Set<() => void>();
  refs(): string[] {
    return [...this.#refs];
  }
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  add(ref: string): void {
    this.#refs.add(ref);
    for (const listener of this.#listeners) listener();
  }
}

Deno.test("the publisher writes a change after a quiet interval at once, and gathers changes within the interval into one write at its end", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  const { publisher, desired, clock, stop } = startPublisher(server, ["docker.io/library/a:1"]);
  /** The generations in the API server, and the images of the newest. */
  const published = () => ({
    generations: [...new Set(shardsIn(server).map((s) => s.generation ?? 0))].sort((a, b) => a - b),
    images: newestImages(server).map((i) => i.ref).sort(),
  });
  const creates = () => server.requests.counts()["create configmaps"] ?? 0;
  try {
    // The first set, written without the clock moving.
    await waitFor(() => publisher.status().publishes === 1, { what: "the first generation" });
    assertEquals(published().images, ["docker.io/library/a:1"]);

    // Two changes right after it: nothing is written before the interval ends…
    desired.add("docker.io/library/b:1");
    desired.add("docker.io/library/c:1");
    const due = clock.now() + INTERVAL_MS;
    await waitFor(() => clock.nextTimerAt() === due, {
      what: "the publisher waiting out its interval",
    });
    assertEquals(published().images, ["docker.io/library/a:1"]);
    assertEquals(creates(), 1);
    // …then both go out together, as one new generation.
    await clock.advance(INTERVAL_MS);
    await waitFor(() => publisher.status().publishes === 2, { what: "the gathered generation" });
    assertEquals(published().images.length, 3);
    assertEquals(creates(), 2);

    // After a quiet interval, the next change is written at once again.
    await clock.advance(INTERVAL_MS);
    desired.add("docker.io/library/d:1");
    await waitFor(() => publisher.status().publishes === 3, { what: "a leading-edge write" });
    assertEquals(published().images.length, 4);
    // Older generations go once the new one is complete.
    await waitFor(() => published().generations.length === 1, {
      what: "older generations removed",
    });
    assertEquals(
      server.list("configmaps", { namespace: NS, labelSelector: PUBLISHED_SET_SELECTOR })
        .map((c) => c.metadata.annotations?.[GENERATION_ANNOTATION]),
      ["3"],
    );
  } finally {
    await stop();
    await server.close();
  }
});

Deno.test("a change only of the ledger's digests waits for the slower interval and never delays the next new image", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  const digests = new Map<string, string>();
  const digestOf = (n: number) => `sha256:${String(n).repeat(64)}`;
  const { publisher, desired, clock, stop } = startPublisher(server, ["docker.io/library/a:1"], {
    annotate: (image: PublishedImage) => {
      const ledgerDigest = digests.get(image.ref);
      return ledgerDigest ? { ...image, ledgerDigest } : image;
    },
  });
  const start = clock.now();
  /** The newest generation's images, with their ledger digests. */
  const newest = () =>
    Object.fromEntries(newestImages(server).map((i) => [i.ref, i.ledgerDigest ?? ""]));
  try {
    await waitFor(() => publisher.status().publishes === 1, { what: "the first generation" });
    await clock.advance(INTERVAL_MS);

    // A digest learned after a quiet interval still waits: five intervals from the last write.
    digests.set("docker.io/library/a:1", digestOf(1));
    publisher.poke();
    await waitFor(() => clock.nextTimerAt() === start + 5 * INTERVAL_MS, {
      what: "the digest waiting for the slower interval",
    });
    assertEquals(publisher.status().publishes, 1);

    // A new image meanwhile goes out at once, and takes the waiting digest along.
    desired.add("docker.io/library/b:1");
    await waitFor(() => publisher.status().publishes === 2, { what: "the new image at once" });
    assertEquals(clock.now(), start + INTERVAL_MS);
    assertEquals(newest(), { "docker.io/library/a:1": digestOf(1), "docker.io/library/b:1": "" });

    // The next digest alone: written five intervals after that write, not before.
    digests.set("docker.io/library/b:1", digestOf(2));
    publisher.poke();
    const due = start + INTERVAL_MS + 5 * INTERVAL_MS;
    await waitFor(() => clock.nextTimerAt() === due, { what: "the second digest waiting" });
    await clock.advance(due - 1 - clock.now());
    assertEquals(publisher.status().publishes, 2);
    await clock.advance(1);
    await waitFor(() => publisher.status().publishes === 3, { what: "the digest-only write" });
    assertEquals(newest()["docker.io/library/b:1"], digestOf(2));

    // Right after that digest-only write, a new image is not held back by it.
    desired.add("docker.io/library/c:1");
    await waitFor(() => publisher.status().publishes === 4, {
      what: "a new image right after a digest-only write",
    });
    assertEquals(clock.now(), due);
    assertEquals(Object.keys(newest()).length, 3);
  } finally {
    await stop();
    await server.close();
  }
});

/** A publisher of `refs` against `server` (with `options` over the defaults), run until the returned stop. */
function startPublisher(
  server: FakeApiServer,
  refs: string[],
  options: Partial<PublisherOptions> = {},
) {
  const desired = new EditableSet();
  for (const ref of refs) desired.add(ref);
  const log = recordingLogger();
  const clock = new FakeClock(1_000_000);
  const publisher = new Publisher({
    kubeConfig: server.kubeConfig(),
    namespace: NS,
    desired,
    isLeader: () => true,
    sourcesSynced: Promise.resolve(),
    log,
    clock,
    minIntervalMs: INTERVAL_MS,
    ...options,
  });
  const controller = new AbortController();
  const running = publisher.run(controller.signal);
  return {
    publisher,
    desired,
    log,
    clock,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

Deno.test("a shard at the highest generation makes the publisher write and delete nothing, with an error naming the fix", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  const [good] = encodeShards([publishedImageOf("docker.io/library/a:1")], {
    namespace: NS,
    generation: 3,
  });
  server.create("configmaps", good);
  const [hostile] = encodeShards([publishedImageOf("docker.io/library/x:1")], {
    namespace: NS,
    generation: MAX_GENERATION,
  });
  server.create("configmaps", hostile);
  const run = startPublisher(server, ["docker.io/library/b:1"]);
  try {
    await waitFor(
      () => run.log.lines.some((e) => /past the highest a node reads/.test(String(e.error))),
      { what: "the error" },
    );
    assertEquals(server.requests.counts()["create configmaps"] ?? 0, 0);
    assertEquals(server.requests.counts()["delete configmaps"] ?? 0, 0);
    assertEquals(
      server.list("configmaps", { namespace: NS }).map((cm) => cm.metadata.name).sort(),
      [good.metadata!.name!, hostile.metadata!.name!].sort(),
    );
  } finally {
    await run.stop();
    await server.close();
  }
});

Deno.test("a ConfigMap that already holds the next shard's name makes the publisher go past that generation, not retry it for ever", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  // Not labelled: the publisher does not see it, only its name taken.
  server.create("configmaps", { metadata: { namespace: NS, name: shardName(1, 0) } });
  const run = startPublisher(server, ["docker.io/library/a:1"]);
  try {
    await waitFor(() => run.log.lines.some((e) => e.status === 409), {
      what: "the refused create",
    });
    assertEquals(run.publisher.status().publishes, 0);
    // The retry, after its backoff: at the next generation.
    await run.clock.advance(1_200); // the first backoff: 1 s ± 20 %
    await waitFor(() => run.publisher.status().publishes === 1, { what: "a publish" });
    assertEquals(run.publisher.status().generation, 2);
    assert(server.get("configmaps", NS, shardName(1, 0)), "the other ConfigMap is left alone");
  } finally {
    await run.stop();
    await server.close();
  }
});

Deno.test("the publisher deletes only its own shards: a labelled ConfigMap under another name is left alone", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  server.create("configmaps", {
    metadata: {
      namespace: NS,
      name: "team-notes",
      labels: { [PUBLISHED_SET_LABEL]: "desired-images" },
    },
    data: { note: "not a shard" },
  });
  const old = encodeShards([publishedImageOf("docker.io/library/old:1")], {
    namespace: NS,
    generation: 1,
  });
  for (const shard of old) server.create("configmaps", shard);
  const run = startPublisher(server, ["docker.io/library/a:1"]);
  try {
    await waitFor(() => run.publisher.status().publishes === 1, { what: "a publish" });
    await waitFor(() => !server.get("configmaps", NS, shardName(1, 0)), {
      what: "the old generation removed",
    });
    assert(server.get("configmaps", NS, "team-notes"), "the labelled ConfigMap is still there");
  } finally {
    await run.stop();
    await server.close();
  }
});

Deno.test("while a source is forbidden, no published image is dropped: additions go out, removals wait until it is readable again", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  const ledgerDigest = `sha256:${"b".repeat(64)}`;
  for (
    const shard of encodeShards(
      [
        publishedImageOf("docker.io/library/a:1"),
        { ...publishedImageOf("docker.io/library/b:1"), canary: "node-1", ledgerDigest },
      ],
      { namespace: NS, generation: 1 },
    )
  ) server.create("configmaps", shard);
  let forbidden: string | undefined = "configmap: Forbidden (check the RBAC rules): no";
  const { publisher, desired, log, stop } = startPublisher(server, ["docker.io/library/a:1"], {
    holdRemovals: () => forbidden,
    minIntervalMs: 0,
  });
  /** The newest generation's images, by reference. */
  const newest = () => new Map(newestImages(server).map((i) => [i.ref, i]));
  const refs = () => [...newest().keys()].sort();
  try {
    // b is no longer desired, but the forbidden source might still ask for
    // it: it stays, only without the ledger's data (nothing follows that tag
    // any more, so nodes resync it themselves).
    await waitFor(() => publisher.status().publishes === 1, { what: "the first generation" });
    assertEquals(refs(), ["docker.io/library/a:1", "docker.io/library/b:1"]);
    assertEquals(newest().get("docker.io/library/b:1")?.ledgerDigest, undefined);
    assertEquals(newest().get("docker.io/library/b:1")?.canary, undefined);
    assert(
      log.lines.some((l) =>
        l.msg === "Keeping published images no longer desired while a source is unreadable"
      ),
    );
    desired.add("docker.io/library/c:1");
    await waitFor(() => publisher.status().publishes === 2, { what: "the addition" });
    assertEquals(refs(), [
      "docker.io/library/a:1",
      "docker.io/library/b:1",
      "docker.io/library/c:1",
    ]);
    forbidden = undefined;
    publisher.poke();
    await waitFor(() => publisher.status().publishes === 3, { what: "the removal" });
    assertEquals(refs(), ["docker.io/library/a:1", "docker.io/library/c:1"]);
  } finally {
    await stop();
    await server.close();
  }
});

Deno.test("a publisher that does not lead writes nothing, however the desired set changes, and publishes once it leads", async () => {
  const server = await startFakeApiServer({ namespaces: ["default", NS] });
  let leading = false;
  const { publisher, desired, stop } = startPublisher(server, ["docker.io/library/a:1"], {
    isLeader: () => leading,
    minIntervalMs: 0,
  });
  try {
    await waitFor(() => publisher.status().synced, { what: "synced" });
    desired.add("docker.io/library/b:1");
    desired.add("docker.io/library/c:1");
    // Give the loop every chance to (wrongly) write.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assertEquals(server.requests.counts()["create configmaps"] ?? 0, 0);
    assertEquals(server.requests.counts()["delete configmaps"] ?? 0, 0);
    leading = true;
    publisher.poke();
    await waitFor(() => publisher.status().publishes === 1, {
      what: "the first publish as leader",
    });
    assertEquals(publisher.status().images, 3);
  } finally {
    await stop();
    await server.close();
  }
});
