import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { nullLogger } from "../log/logger.ts";
import {
  imageNamesOfNode,
  NODE_STATUS_MAX_IMAGES,
  NodeImages,
  tagDigestsOfNode,
} from "./node_images.ts";

const NODE = "node-1";

/** Runs a NodeImages of NODE against a fresh fake API server. */
async function withNodeImages(
  setup: (server: FakeApiServer) => void,
  fn: (images: NodeImages, server: FakeApiServer) => void | Promise<void>,
): Promise<void> {
  const server = await startFakeApiServer({ nodes: [NODE, "node-2"] });
  const controller = new AbortController();
  try {
    setup(server);
    const images = new NodeImages({ kubeConfig: server.kubeConfig(), node: NODE, log: nullLogger });
    const running = images.run(controller.signal);
    try {
      await images.synced;
      await fn(images, server);
    } finally {
      controller.abort();
      await running;
    }
  } finally {
    await server.close();
  }
}

/** Sets the node's `status.images` as a kubelet would report `count` images. */
function reportImages(server: FakeApiServer, node: string, count: number): void {
  const current = server.get("nodes", undefined, node)!;
  const images = Array.from({ length: count }, (_, i) => ({
    names: [`registry.example/app-${i}:1`],
    sizeBytes: 1_000 + i,
  }));
  server.updateStatus("nodes", {
    ...current,
    status: { ...(current.status as object), images },
  });
}

Deno.test("NodeImages reports normalised names of this node's images, not another node's", async () => {
  await withNodeImages((server) => {
    server.kubelet(NODE).preloadImage("alpine:3.20");
    server.kubelet("node-2").preloadImage("nginx:1.27");
  }, (images) => {
    assert(images.names().has("docker.io/library/alpine:3.20"), [...images.names()].join(", "));
    assert(!images.names().has("docker.io/library/nginx:1.27"));
    assertEquals(images.status().synced, true);
    assertEquals(images.status().objects, images.names().size);
  });
});

Deno.test("NodeImages follows the node's status: a pulled image appears without a relist", async () => {
  await withNodeImages(() => {}, async (images, server) => {
    assert(!images.names().has("docker.io/library/busybox:1"));
    server.kubelet(NODE).preloadImage("busybox:1");
    await waitFor(() => images.names().has("docker.io/library/busybox:1"), { what: "new image" });
    assertEquals(server.requests.counts()["list nodes"], 1);
  });
});

Deno.test("NodeImages calls the list complete below the kubelet's cap of 50 images and incomplete at it", async () => {
  // The kubelet reports at most 50 images (--node-status-max-images): a list
  // of 50 may leave images out, so absence from it proves nothing.
  assertEquals(NODE_STATUS_MAX_IMAGES, 50);
  await withNodeImages((server) => reportImages(server, NODE, 49), async (images, server) => {
    assertEquals(images.names().size, 49);
    assertEquals(images.complete(), true, "49 images: the whole list");
    reportImages(server, NODE, 50);
    await waitFor(() => images.names().size === 50, { what: "50 images" });
    assertEquals(images.complete(), false, "50 images: maybe cut off");
    reportImages(server, NODE, 3);
    await waitFor(() => images.names().size === 3, { what: "3 images" });
    assertEquals(images.complete(), true);
  });
});

Deno.test("NodeImages is complete and empty when the node is deleted", async () => {
  await withNodeImages((server) => reportImages(server, NODE, 50), async (images, server) => {
    assertEquals(images.complete(), false);
    server.delete("nodes", undefined, NODE);
    await waitFor(() => images.names().size === 0, { what: "node gone" });
    assertEquals(images.complete(), true);
  });
});

Deno.test("imageNamesOfNode() normalises every name and skips unparsable ones", () => {
  const names = imageNamesOfNode({
    metadata: { name: NODE },
    status: {
      images: [
        { names: ["nginx:1.27", `docker.io/library/nginx@sha256:${"a".repeat(64)}`] },
        { names: ["Not A Reference!"] },
        {},
      ],
    },
  } as never);
  assertEquals([...names].sort(), [
    "docker.io/library/nginx:1.27",
    `docker.io/library/nginx@sha256:${"a".repeat(64)}`,
  ]);
});

Deno.test("tagDigestsOfNode() pairs each tag with the digest listed for the same image", () => {
  const a = `sha256:${"a".repeat(64)}`;
  const b = `sha256:${"b".repeat(64)}`;
  const pairs = tagDigestsOfNode({
    metadata: { name: NODE },
    status: {
      images: [
        { names: ["nginx:1.27", "nginx:latest", `docker.io/library/nginx@${a}`] },
        { names: [`docker.io/library/nginx@${b}`] },
        { names: ["redis:7", `docker.io/library/nginx@${b}`] },
      ],
    },
  } as never);
  assertEquals([...pairs].sort(), [
    `docker.io/library/nginx:1.27@${a}`,
    `docker.io/library/nginx:latest@${a}`,
  ]);
});

Deno.test("NodeImages keeps names and tag digests right as the node's list changes one image at a time", async () => {
  const digest = (i: number) => `sha256:${i.toString(16).padStart(64, "0")}`;
  const entry = (i: number) => ({
    names: [`registry.example/app-${i}:1`, `registry.example/app-${i}@${digest(i)}`],
    sizeBytes: 1_000 + i,
  });
  await withNodeImages(() => {}, async (images, server) => {
    const lists = [
      [1, 2, 3].map(entry),
      [4, 1, 2, 3].map(entry),
      // An image retagged: the same tag now with another image's digest.
      [{ names: ["registry.example/app-1:1", `registry.example/app-1@${digest(9)}`] }, entry(4)],
      [{ names: ["not a reference!", "registry.example/app-4:1"] }],
    ];
    for (const list of lists) {
      const current = server.get("nodes", undefined, NODE)!;
      const next = { ...current, status: { ...(current.status as object), images: list } };
      server.updateStatus("nodes", next);
      // The pure readings of the same object: what every event must come to.
      const node = { metadata: { name: NODE }, status: { images: list } } as never;
      const expected = [...imageNamesOfNode(node)].sort();
      await waitFor(() => JSON.stringify([...images.names()].sort()) === JSON.stringify(expected), {
        what: `names ${expected.join(", ")}`,
      });
      assertEquals([...images.tagDigests()].sort(), [...tagDigestsOfNode(node)].sort());
    }
    assertEquals([...images.names()], ["registry.example/app-4:1"]);
    assertEquals(images.tagDigests().size, 0);
  });
});
