import { KubeConfig } from "@kubernetes/client-node";
import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { dispatcherOf, withKubeconfigFile } from "../testing/kubeconfig_file.ts";
import { waitFor } from "../testing/wait.ts";
import { RequestTimeoutError, reuseConnections } from "./client.ts";
import { clientWatcher, configMapCollection, eventCollection, nodeCollection } from "./listers.ts";

const WATCH = { resourceVersion: "", allowWatchBookmarks: true, timeoutSeconds: 60 };

/** A server that takes connections and requests and never answers, as a dead connection does. */
function neverAnswering() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      conn.read(new Uint8Array(64 * 1024)).catch(() => {});
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return {
    kc: reuseConnections(kc),
    url: `http://127.0.0.1:${port}/api/v1/configmaps`,
    async close() {
      listener.close();
      for (const conn of open) conn.close();
      await serving;
    },
  };
}

Deno.test("clientWatcher() fails a watch whose start is not answered within its bound, and renews the connections", async () => {
  const server = neverAnswering();
  try {
    const before = await dispatcherOf(server.kc, server.url);
    const watch = clientWatcher(server.kc, "/api/v1/configmaps", {}, 300);
    // Not a timing claim: unbounded, the start waits for the watch's whole
    // timeout plus 30 s (client-node's own bound), far past this guard.
    let guard: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error("The start never settled")), 20_000);
    });
    try {
      await assertRejects(
        () => Promise.race([watch(WATCH, () => {}, () => {}), hung]),
        RequestTimeoutError,
        "API request watch /api/v1/configmaps timed out after 300 ms",
      );
    } finally {
      clearTimeout(guard);
    }
    assert(await dispatcherOf(server.kc, server.url) !== before, "the same pool after the timeout");
  } finally {
    await server.close();
  }
});

Deno.test("clientWatcher() ends a watch that starts only after its start was given up", async () => {
  const server = await startFakeApiServer();
  try {
    const watch = clientWatcher(server.kubeConfig(), "/api/v1/configmaps", {}, 100);
    server.faults.setLatency(600);
    await assertRejects(() => watch(WATCH, () => {}, () => {}), RequestTimeoutError);
    server.faults.setLatency(0);
    // Unended, the late watch would stream for its 60 s: nobody holds its handle.
    await waitFor(() => server.openedWatches() === 1, { what: "the late watch to start" });
    await waitFor(() => server.openWatches() === 0, { what: "the late watch to be ended" });
  } finally {
    server.faults.setLatency(0);
    await server.close();
  }
});

Deno.test("clientWatcher() renews the connections when its watch is ended for silence, not when ended for another reason", async () => {
  await withKubeconfigFile(async (server, kc) => {
    const url = `${server.url}/api/v1/configmaps`;
    const watch = clientWatcher(kc, "/api/v1/configmaps");
    const open = () => watch(WATCH, () => {}, () => {});
    const first = await dispatcherOf(kc, url);
    (await open()).abort();
    (await open()).abort(new Error("Watch error"));
    assert(await dispatcherOf(kc, url) === first, "renewed for an abort that was not a fault");
    (await open()).abort(new RequestTimeoutError("Watch silent for 5000 ms"));
    assert(await dispatcherOf(kc, url) !== first, "the same pool after a silent watch");
  });
});

Deno.test("Cached collections of one KubeConfig share their API server's heartbeat; Events and another KubeConfig's do not", () => {
  const kc = new KubeConfig();
  const other = new KubeConfig();
  const configMaps = configMapCollection(kc, { labelSelector: "a=b" });
  const nodes = nodeCollection(kc, { name: "n" });
  assert(configMaps.heartbeat !== undefined);
  configMaps.heartbeat.observe(2_000);
  assertEquals(nodes.heartbeat?.ms, 2_000);
  assertEquals(configMapCollection(other, { labelSelector: "a=b" }).heartbeat?.ms, undefined);
  // kube-apiserver keeps no watch cache for Events: their watches get no bookmarks.
  assertEquals(eventCollection(kc, { namespace: "ns" }).heartbeat, undefined);
});
