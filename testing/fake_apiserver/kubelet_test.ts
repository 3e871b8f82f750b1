import { CoreV1Api, type V1Pod, Watch } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { waitFor } from "../wait.ts";
import { fakeImageId, type KubeObject, NODE_STATUS_MAX_IMAGES } from "./mod.ts";
import { withServer } from "./test_helpers.ts";

interface ContainerState {
  waiting?: { reason: string; message?: string };
  running?: unknown;
  terminated?: { exitCode: number; reason: string };
}
interface PodStatus {
  phase?: string;
  reason?: string;
  message?: string;
  initContainerStatuses?: { name: string; state: ContainerState; imageID: string }[];
  containerStatuses?: { name: string; state: ContainerState; imageID: string; image: string }[];
}
const status = (pod: KubeObject) => (pod.status ?? {}) as PodStatus;
const waitingReason = (pod: KubeObject) =>
  status(pod).containerStatuses?.[0]?.state.waiting?.reason;

function wardenPod(
  name: string,
  image: string,
  options: { node?: string; policy?: string } = {},
): V1Pod {
  return {
    metadata: { name, namespace: "default" },
    spec: {
      nodeName: options.node ?? "node-1",
      restartPolicy: "Never",
      initContainers: [{ name: "warden", image: "ghcr.io/example/warden:1" }],
      containers: [{
        name: "main",
        image,
        ...(options.policy ? { imagePullPolicy: options.policy } : {}),
      }],
    },
  };
}

Deno.test("the kubelet runs a pod through init containers to Succeeded with an imageID, seen as MODIFIED watch events", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kc = server.kubeConfig();
    const phases: string[] = [];
    const controller = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      { resourceVersion: server.resourceVersion },
      (type, obj) => phases.push(`${type} ${obj.status?.phase}`),
      () => {},
    );
    try {
      await server.waitForWatches(1);
      await kc.makeApiClient(CoreV1Api).createNamespacedPod({
        namespace: "default",
        body: wardenPod("p", "nginx:1.27"),
      });
      const done = await server.waitFor("pods", (p) => status(p).phase === "Succeeded", {
        name: "p",
      });
      const s = status(done);
      assertEquals(s.initContainerStatuses![0].state.terminated, {
        ...s.initContainerStatuses![0].state.terminated!,
        exitCode: 0,
        reason: "Completed",
      });
      assertEquals(s.containerStatuses![0].state.terminated!.exitCode, 0);
      assertEquals(s.containerStatuses![0].image, "docker.io/library/nginx:1.27");
      assertEquals(s.containerStatuses![0].imageID, fakeImageId("nginx:1.27"));
      assertMatch(
        s.containerStatuses![0].imageID,
        /^docker\.io\/library\/nginx@sha256:[0-9a-f]{64}$/,
      );
      await waitFor(() => phases.at(-1) === "MODIFIED Succeeded", { what: "final event" });
      assertEquals(phases[0], "ADDED Pending");
      assert(phases.slice(1).every((p) => p.startsWith("MODIFIED")));
      assertEquals(server.kubelet("node-1").pulls.map((p) => p.ref), [
        "ghcr.io/example/warden:1",
        "docker.io/library/nginx:1.27",
      ]);
    } finally {
      controller.abort();
    }
  });
});

Deno.test("the node's status.images lists [repo@digest, repo:tag], most recent first, capped at 50", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.defaultPullDelayMs = 0;
    for (let i = 0; i < NODE_STATUS_MAX_IMAGES + 2; i++) {
      kubelet.preloadImage(`registry.example/img:${i}`);
    }
    server.create("pods", wardenPod("p", "alpine:3.20"));
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "p" });
    const images = (server.get("nodes", undefined, "node-1")!.status as {
      images: { names: string[]; sizeBytes: number }[];
    }).images;
    assertEquals(images.length, NODE_STATUS_MAX_IMAGES);
    assertEquals(images[0].names, [fakeImageId("alpine:3.20"), "docker.io/library/alpine:3.20"]);
    assertEquals(images[1].names[1], "ghcr.io/example/warden:1");
    assert(images[0].sizeBytes > 0);
    assertEquals(kubelet.imagesPresent()[0], "docker.io/library/alpine:3.20");
  });
});

Deno.test("IfNotPresent skips the pull of a present image; Always pulls again", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.preloadImage("ghcr.io/example/warden:1");
    kubelet.preloadImage("alpine:3.20");
    server.create("pods", wardenPod("a", "alpine:3.20", { policy: "IfNotPresent" }));
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "a" });
    assertEquals(kubelet.pulls.length, 0);
    server.create("pods", wardenPod("b", "alpine:3.20", { policy: "Always" }));
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "b" });
    assertEquals(kubelet.pulls.map((p) => p.image), ["alpine:3.20"]);
  });
});

Deno.test("an unpullable image alternates ErrImagePull and ImagePullBackOff with realistic messages", async (t) => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.pullBackOffMs = 10;
    const cases = [
      {
        reason: "ErrImagePull" as const,
        image: "ghcr.io/example/missing:1",
        first: "ErrImagePull",
        message: /^Failed to pull image "ghcr\.io\/example\/missing:1": rpc error: code = NotFound/,
      },
      {
        reason: "NoMatchingPlatform" as const,
        image: "ghcr.io/example/arm-only:1",
        first: "ErrImagePull",
        message: /no matching manifest for linux\/amd64 in the manifest list entries$/,
      },
      {
        reason: "InvalidImageName" as const,
        image: "ghcr.io/example/odd:1",
        first: "InvalidImageName",
        message:
          /^Failed to apply default image tag "ghcr\.io\/example\/odd:1": couldn't parse image name/,
      },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.reason, async () => {
        kubelet.markUnpullable(c.image, c.reason);
        const name = `bad-${i}`;
        server.create("pods", wardenPod(name, c.image));
        const failing = await server.waitFor("pods", (p) => waitingReason(p) === c.first, { name });
        assertMatch(status(failing).containerStatuses![0].state.waiting!.message!, c.message);
        assertEquals(status(failing).phase, "Pending");
        if (c.first === "ErrImagePull") {
          await server.waitFor("pods", (p) => waitingReason(p) === "ImagePullBackOff", { name });
          await server.waitFor("pods", (p) => waitingReason(p) === "ErrImagePull", { name });
        }
        server.delete("pods", "default", name);
      });
    }
    await t.step(
      "a syntactically invalid reference is InvalidImageName without marking",
      async () => {
        server.create("pods", wardenPod("upper", "Not/Valid:Ref:"));
        await server.waitFor("pods", (p) => waitingReason(p) === "InvalidImageName", {
          name: "upper",
        });
      },
    );
  });
});

Deno.test("the pull hook replaces the simulated pull; its failure is ErrImagePull", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    const calls: string[] = [];
    kubelet.setPullHook((image, policy) => {
      calls.push(`${image} ${policy}`);
      if (image.includes("broken")) return Promise.reject(new Error("registry said no"));
      return Promise.resolve({ imageID: "example.com/real@sha256:" + "ab".repeat(32) });
    });
    server.create("pods", wardenPod("ok", "example.com/real:1"));
    const ok = await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "ok" });
    assertEquals(
      status(ok).containerStatuses![0].imageID,
      "example.com/real@sha256:" + "ab".repeat(32),
    );
    assertEquals(calls, [
      "ghcr.io/example/warden:1 IfNotPresent",
      "example.com/real:1 IfNotPresent",
    ]);
    server.create("pods", wardenPod("no", "example.com/broken:1"));
    const failed = await server.waitFor("pods", (p) => waitingReason(p) === "ErrImagePull", {
      name: "no",
    });
    assertEquals(
      status(failed).containerStatuses![0].state.waiting!.message,
      'Failed to pull image "example.com/broken:1": registry said no',
    );
  });
});

Deno.test("per-image pull delays order completions", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.preloadImage("ghcr.io/example/warden:1");
    kubelet.setPullDelay("docker.io/library/slow:1", 150);
    kubelet.defaultPullDelayMs = 1;
    server.create("pods", wardenPod("slow", "slow:1"));
    server.create("pods", wardenPod("fast", "fast:1"));
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "slow" });
    assertEquals(kubelet.pulls.map((p) => p.image), ["fast:1", "slow:1"]);
  });
});

Deno.test("stickPending keeps pods Pending until released", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.stickPending(true);
    server.create("pods", wardenPod("stuck", "alpine:3.20"));
    const pending = await server.waitFor("pods", (p) => waitingReason(p) === "PodInitializing", {
      name: "stuck",
    });
    assertEquals(status(pending).phase, "Pending");
    assertEquals(kubelet.pulls, []);
    kubelet.stickPending(false);
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "stuck" });
  });
});

Deno.test("beyond maxPods the kubelet rejects the pod with OutOfpods", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kubelet = server.kubelet("node-1");
    kubelet.setMaxPods(1);
    kubelet.stickPending(true);
    server.create("pods", wardenPod("first", "alpine:3.20"));
    await server.waitFor("pods", (p) => waitingReason(p) === "PodInitializing", { name: "first" });
    server.create("pods", wardenPod("second", "alpine:3.20"));
    const rejected = await server.waitFor("pods", (p) => status(p).phase === "Failed", {
      name: "second",
    });
    assertEquals(status(rejected).reason, "OutOfpods");
    assertMatch(
      status(rejected).message!,
      /^Pod was rejected: Node didn't have enough resource: pods/,
    );
    assertEquals(
      (server.get("nodes", undefined, "node-1")!.status as { capacity: { pods: string } }).capacity
        .pods,
      "1",
    );
  });
});

Deno.test("deleting a running pod is graceful: deletionTimestamp first, then gone, and its simulation stops", async () => {
  await withServer({ nodes: ["node-1"] }, async (server) => {
    const kc = server.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const kubelet = server.kubelet("node-1");
    kubelet.setPullDelay("docker.io/library/slow:1", 10_000);
    server.create("pods", wardenPod("slow", "slow:1"));
    await server.waitFor(
      "pods",
      (p) => status(p).initContainerStatuses?.[0].state.terminated !== undefined,
      {
        name: "slow",
      },
    );
    const answer = await core.deleteNamespacedPod({ namespace: "default", name: "slow" });
    assert(answer.metadata!.deletionTimestamp instanceof Date);
    await waitFor(() => server.get("pods", "default", "slow") === undefined, {
      what: "pod removed",
    });
    assertEquals(kubelet.pulls.map((p) => p.image), ["ghcr.io/example/warden:1"]);
  });
});

Deno.test("a pod created before its node exists is adopted by the new node's kubelet", async () => {
  await withServer({}, async (server) => {
    server.create("pods", wardenPod("early", "alpine:3.20", { node: "late-node" }));
    server.addNode("late-node");
    await server.waitFor("pods", (p) => status(p).phase === "Succeeded", { name: "early" });
  });
});
