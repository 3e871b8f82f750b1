import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { assertEquals, assertMatch } from "./assert.ts";
import { waitFor } from "./wait.ts";

Deno.test("fake-cluster writes a kubeconfig that answers the daemon's client, and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fake-cluster-" });
  const kubeconfig = `${dir}/kubeconfig`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fake_cluster.ts", import.meta.url).pathname,
      "--kubeconfig",
      kubeconfig,
      "--nodes",
      "2",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream());
  let printed = "";
  const reading = (async () => {
    for await (const chunk of output) printed += chunk;
  })();
  try {
    await waitFor(() => printed.includes("Press Ctrl-C"), {
      timeoutMs: 20_000,
      what: "startup banner",
    });
    assertMatch(
      printed,
      /deno run -P=daemon --allow-read=(\S+) main\.ts --kubeconfig \1 --node-name node-1/,
    );
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const nodes = await core.listNode();
    assertEquals(nodes.items.map((n) => n.metadata!.name), ["node-1", "node-2"]);
    const pods = await core.listNamespacedPod({ namespace: "image-cache-daemon" });
    assertEquals(pods.items.map((p) => p.metadata!.name), [
      "image-cache-daemon-node-1",
      "image-cache-daemon-node-2",
    ]);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
    assertEquals(status.code, 0);
  }
  assertMatch(printed, /Fake cluster stopped/);
});
