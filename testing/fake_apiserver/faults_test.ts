import { CoreV1Api, Watch } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import type { FakeApiServer } from "./mod.ts";
import { rejection, withServer } from "./test_helpers.ts";
import { waitFor } from "../wait.ts";
import { killServer } from "./fake_api_server.ts";

async function openWatch(
  server: FakeApiServer,
): Promise<{ ended: Promise<unknown>; stop: () => void }> {
  let resolveEnded!: (err: unknown) => void;
  const ended = new Promise((resolve) => resolveEnded = resolve);
  const controller = await new Watch(server.kubeConfig()).watch(
    "/api/v1/configmaps",
    { resourceVersion: server.resourceVersion },
    () => {},
    (err) => resolveEnded(err ?? null),
  );
  return { ended, stop: () => controller.abort() };
}

Deno.test("failNext answers the next N requests with 500, 429 or 503 and proper Status bodies", async (t) => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const cases = [
      { status: 500 as const, reason: "InternalError", retryAfter: null },
      { status: 429 as const, reason: "TooManyRequests", retryAfter: "7" },
      { status: 503 as const, reason: "ServiceUnavailable", retryAfter: "7" },
    ];
    for (const c of cases) {
      await t.step(String(c.status), async () => {
        server.faults.failNext(2, c.status, c.retryAfter ? { retryAfterSeconds: 7 } : {});
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${server.url}/api/v1/namespaces`);
          assertEquals(res.status, c.status);
          assertEquals(res.headers.get("retry-after"), c.retryAfter);
          const body = await res.json();
          assertEquals([body.kind, body.status, body.reason, body.code], [
            "Status",
            "Failure",
            c.reason,
            c.status,
          ]);
        }
        assertEquals((await core.listNamespace()).items.length, 4, "the third request succeeds");
      });
    }
  });
});

Deno.test("failNext with a match only fails matching requests", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    server.faults.failNext(1, 429, { match: { verb: "create", resource: "configmaps" } });
    await core.listNamespacedConfigMap({ namespace: "default" });
    const failed = await rejection(
      core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "x" } } }),
    );
    assertEquals(failed.code, 429);
    assertEquals(failed.body.details, { retryAfterSeconds: 1 });
    await core.createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { name: "x" } },
    });
  });
});

Deno.test("setLatency delays every answer", async () => {
  await withServer({}, async (server) => {
    server.faults.setLatency(120);
    const started = performance.now();
    await (await fetch(`${server.url}/version`)).body?.cancel();
    assert(performance.now() - started >= 110);
    server.faults.setLatency(0);
  });
});

Deno.test("dropWatches ends open watches cleanly, cuts them, or silences them like a network partition", async (t) => {
  await withServer({}, async (server) => {
    await t.step("clean end", async () => {
      const w = await openWatch(server);
      await server.waitForWatches(1);
      assertEquals(server.faults.dropWatches(), 1);
      assertEquals(await w.ended, null);
      assertEquals(server.openWatches(), 0);
    });
    await t.step(
      "abrupt: the response is cut mid-body (seen here through Deno's fetch)",
      async () => {
        const res = await fetch(
          `${server.url}/api/v1/configmaps?watch=true&resourceVersion=${server.resourceVersion}`,
        );
        assertEquals(res.status, 200);
        const reader = res.body!.getReader();
        const read = reader.read().then(() => "ended", (error: Error) => `error: ${error.message}`);
        await server.waitForWatches(1);
        assertEquals(server.faults.dropWatches({ abrupt: true }), 1);
        assertMatch(await read, /^error: /);
      },
    );
    await t.step("silent: the stream stays open but delivers nothing more", async () => {
      const watch = new Watch(server.kubeConfig());
      const record = async (seen: string[]) =>
        await watch.watch(
          "/api/v1/configmaps",
          { resourceVersion: server.resourceVersion },
          (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
          () => {},
        );
      const silenced: string[] = [];
      const silencedController = await record(silenced);
      await server.waitForWatches(1);
      assertEquals(server.faults.dropWatches({ silent: true }), 1);
      assertEquals(server.openWatches(), 0);
      const live: string[] = [];
      const liveController = await record(live);
      await server.waitForWatches(1);
      server.create("configmaps", { metadata: { name: "after", namespace: "default" } });
      await waitFor(() => live.length === 1, { what: "event on the live watch" });
      assertEquals(live, ["ADDED after"]);
      assertEquals(silenced, []);
      silencedController.abort();
      liveController.abort();
    });
  });
});

Deno.test("down() drops watches and refuses connections until up() on the same port", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const w = await openWatch(server);
    await server.waitForWatches(1);
    await server.faults.down();
    assert(server.faults.isDown);
    assertEquals(await w.ended, null, "open watches end");
    w.stop();
    const refused = await core.listNamespace().then(() => undefined, (error: Error) => error);
    assert(refused !== undefined, "requests fail while down");
    assertMatch(
      String((refused as Error & { cause?: unknown }).cause ?? refused),
      /ECONNREFUSED|refused/i,
    );
    await server.faults.up();
    assertEquals((await core.listNamespace()).items.length, 4);
  });
});

Deno.test("the request log counts requests per verb and resource", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    await core.listNamespacedConfigMap({ namespace: "default" });
    await core.listConfigMapForAllNamespaces();
    await core.createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { name: "a" } },
    });
    await core.readNamespacedConfigMap({ namespace: "default", name: "a" });
    await rejection(core.readNamespacedConfigMap({ namespace: "default", name: "b" }));
    server.create("pods", {
      metadata: { name: "p", namespace: "default" },
      spec: { containers: [{ name: "c", image: "a" }] },
    });
    await core.patchNamespacedPodStatus({
      namespace: "default",
      name: "p",
      body: [{ op: "add", path: "/status/message", value: "hi" }],
    });
    await fetch(`${server.url}/api/v1`).then((r) => r.body?.cancel());
    assertEquals(server.requests.counts(), {
      "list configmaps": 2,
      "create configmaps": 1,
      "get configmaps": 2,
      "patch pods/status": 1,
      "get /api/v1": 1,
    });
    const miss = server.requests.entries().find((e) => e.name === "b")!;
    assertEquals([miss.status, miss.namespace, miss.method], [404, "default", "GET"]);
    server.requests.reset();
    assertEquals(server.requests.counts(), {});
  });
});

Deno.test("Killing a server whose graceful shutdown has just ended raises no uncaught error", async () => {
  const kill = new AbortController();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: kill.signal, onListen() {} },
    () => new Response("x"),
  );
  await http.shutdown();
  // Unguarded, the runtime's abort listener throws BadResource here, an
  // uncaught error that fails this test.
  killServer(kill);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert(kill.signal.aborted);
});
