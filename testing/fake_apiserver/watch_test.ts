import {
  CoreV1Api,
  type KubernetesObject,
  ListWatch,
  makeInformer,
  type V1ConfigMap,
  Watch,
} from "@kubernetes/client-node";
import { assert, assertEquals } from "../assert.ts";
import { waitFor } from "../wait.ts";
import type { FakeApiServer } from "./mod.ts";
import { withServer } from "./test_helpers.ts";

interface Seen {
  type: string;
  name?: string;
  rv?: string;
  object: Record<string, unknown>;
}

/** Opens a client-node watch and records what arrives. */
async function record(
  server: FakeApiServer,
  path: string,
  params: Record<string, string | number | boolean | undefined>,
): Promise<{ seen: Seen[]; ended: Promise<unknown>; stop: () => void }> {
  const seen: Seen[] = [];
  let resolveEnded!: (err: unknown) => void;
  const ended = new Promise((resolve) => resolveEnded = resolve);
  const watch = new Watch(server.kubeConfig());
  const controller = await watch.watch(path, params, (type, obj) => {
    seen.push({ type, name: obj?.metadata?.name, rv: obj?.metadata?.resourceVersion, object: obj });
  }, (err) => resolveEnded(err ?? null));
  return { seen, ended, stop: () => controller.abort() };
}

const cm = (name: string, labels: Record<string, string> = {}): V1ConfigMap => ({
  metadata: { name, namespace: "default", labels },
  data: { k: name },
});

Deno.test("watch from a resourceVersion streams ADDED, MODIFIED and DELETED after it", async () => {
  await withServer({}, async (server) => {
    const before = server.create("configmaps", cm("before"));
    const w = await record(server, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: before.metadata.resourceVersion,
    });
    try {
      await server.waitForWatches(1);
      server.create("configmaps", cm("a"));
      server.patch("configmaps", "default", "a", { data: { k: "2" } });
      server.delete("configmaps", "default", "a");
      await waitFor(() => w.seen.length === 3, { what: "three events" });
      assertEquals(w.seen.map((e) => `${e.type} ${e.name}`), [
        "ADDED a",
        "MODIFIED a",
        "DELETED a",
      ]);
      const rvs = w.seen.map((e) => Number(e.rv));
      assert(rvs[0] < rvs[1] && rvs[1] < rvs[2], "resourceVersions grow");
    } finally {
      w.stop();
    }
  });
});

Deno.test("watch with resourceVersion 0 or unset starts with synthetic ADDED events", async (t) => {
  await withServer({}, async (server) => {
    server.create("configmaps", cm("x"));
    server.create("configmaps", cm("y"));
    for (const rv of ["0", undefined]) {
      await t.step(`resourceVersion ${rv ?? "unset"}`, async () => {
        const w = await record(server, "/api/v1/namespaces/default/configmaps", {
          resourceVersion: rv,
        });
        try {
          await waitFor(() => w.seen.length === 2, { what: "initial events" });
          assertEquals(w.seen.map((e) => `${e.type} ${e.name}`), ["ADDED x", "ADDED y"]);
        } finally {
          w.stop();
        }
      });
    }
  });
});

Deno.test("watch honours selectors: an object that stops matching is DELETED, one that starts is ADDED", async () => {
  await withServer({}, async (server) => {
    const w = await record(server, "/api/v1/configmaps", {
      resourceVersion: server.resourceVersion,
      labelSelector: "app=x",
    });
    try {
      await server.waitForWatches(1);
      server.create("configmaps", cm("m", { app: "y" }));
      server.patch("configmaps", "default", "m", { metadata: { labels: { app: "x" } } });
      server.patch("configmaps", "default", "m", { data: { k: "changed" } });
      server.patch("configmaps", "default", "m", { metadata: { labels: { app: "z" } } });
      server.create("configmaps", cm("other", { app: "z" }));
      await waitFor(() => w.seen.length === 3, { what: "three events" });
      assertEquals(w.seen.map((e) => `${e.type} ${e.name}`), [
        "ADDED m",
        "MODIFIED m",
        "DELETED m",
      ]);
      assertEquals(
        w.seen[2].rv,
        server.get("configmaps", "default", "m")!.metadata.resourceVersion,
      );
    } finally {
      w.stop();
    }
  });
});

Deno.test("watch on pods filters by spec.nodeName", async () => {
  await withServer({}, async (server) => {
    const w = await record(server, "/api/v1/pods", {
      resourceVersion: server.resourceVersion,
      fieldSelector: "spec.nodeName=n1",
    });
    try {
      await server.waitForWatches(1);
      for (const [name, nodeName] of [["a", "n1"], ["b", "n2"], ["c", "n1"]]) {
        server.create("pods", {
          metadata: { name, namespace: "default" },
          spec: { nodeName, containers: [{ name: "c", image: "alpine" }] },
        });
      }
      await waitFor(() => w.seen.length === 2, { what: "two events" });
      assertEquals(w.seen.map((e) => e.name), ["a", "c"]);
    } finally {
      w.stop();
    }
  });
});

Deno.test("a too old resourceVersion gets HTTP 200 then an ERROR event with a 410 Expired Status", async () => {
  await withServer({ retainedEvents: 2 }, async (server) => {
    const first = server.create("configmaps", cm("a"));
    for (let i = 0; i < 4; i++) {
      server.patch("configmaps", "default", "a", { data: { k: String(i) } });
    }
    const w = await record(server, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: first.metadata.resourceVersion,
    });
    await w.ended;
    assertEquals(w.seen.length, 1);
    assertEquals(w.seen[0].type, "ERROR");
    assertEquals(w.seen[0].object.kind, "Status");
    assertEquals(w.seen[0].object.code, 410);
    assertEquals(w.seen[0].object.reason, "Expired");
    assert(String(w.seen[0].object.message).startsWith("too old resource version: "));
  });
});

Deno.test("compact() makes every older resourceVersion expire, the current one stays valid", async () => {
  await withServer({}, async (server) => {
    const old = server.create("configmaps", cm("a"));
    server.create("configmaps", cm("b"));
    server.compact();
    const expired = await record(server, "/api/v1/configmaps", {
      resourceVersion: old.metadata.resourceVersion,
    });
    await expired.ended;
    assertEquals(expired.seen.map((e) => e.object.code), [410]);
    const current = await record(server, "/api/v1/configmaps", {
      resourceVersion: server.resourceVersion,
    });
    try {
      await server.waitForWatches(1);
      server.create("configmaps", cm("c"));
      await waitFor(() => current.seen.length === 1, { what: "event after compaction" });
      assertEquals(current.seen[0].name, "c");
    } finally {
      current.stop();
    }
  });
});

Deno.test("BOOKMARK events carry only kind, apiVersion and the current resourceVersion", async () => {
  await withServer({ bookmarkIntervalMs: 20 }, async (server) => {
    server.create("configmaps", cm("a"));
    const w = await record(server, "/api/v1/configmaps", {
      resourceVersion: server.resourceVersion,
      allowWatchBookmarks: true,
    });
    const plain = await record(server, "/api/v1/configmaps", {
      resourceVersion: server.resourceVersion,
    });
    try {
      await waitFor(() => w.seen.length >= 2, { what: "bookmarks" });
      assertEquals(w.seen[0].type, "BOOKMARK");
      assertEquals(w.seen[0].object, {
        kind: "ConfigMap",
        apiVersion: "v1",
        metadata: { resourceVersion: server.resourceVersion },
      });
      assertEquals(plain.seen, [], "no bookmarks unless asked for");
    } finally {
      w.stop();
      plain.stop();
    }
  });
});

Deno.test("timeoutSeconds ends the watch stream cleanly", async () => {
  await withServer({}, async (server) => {
    const started = Date.now();
    const w = await record(server, "/api/v1/configmaps", {
      resourceVersion: "0",
      timeoutSeconds: 1,
    });
    assertEquals(await w.ended, null);
    assert(Date.now() - started >= 900);
    assertEquals(server.openWatches(), 0);
  });
});

Deno.test("an informer lists, then watches, and sees changes", async () => {
  await withServer({}, async (server) => {
    const kc = server.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    server.create("configmaps", cm("pre"));
    const informer = makeInformer(
      kc,
      "/api/v1/namespaces/default/configmaps",
      () => core.listNamespacedConfigMap({ namespace: "default" }),
    );
    const events: string[] = [];
    informer.on("add", (o: KubernetesObject) => events.push(`add ${o.metadata!.name}`));
    informer.on("update", (o: KubernetesObject) => events.push(`update ${o.metadata!.name}`));
    informer.on("delete", (o: KubernetesObject) => events.push(`delete ${o.metadata!.name}`));
    await informer.start();
    try {
      await server.waitForWatches(1);
      server.create("configmaps", cm("new"));
      server.patch("configmaps", "default", "pre", { data: { k: "2" } });
      server.delete("configmaps", "default", "new");
      await waitFor(() => events.length === 4, { what: "informer events" });
      assertEquals(events, ["add pre", "add new", "update pre", "delete new"]);
      assertEquals(server.requests.counts()["list configmaps"], 1);
      assertEquals(server.requests.counts()["watch configmaps"], 1);
    } finally {
      await informer.stop();
    }
  });
});

Deno.test("an informer whose resourceVersion expired relists (410 → list again) and converges", async () => {
  await withServer({}, async (server) => {
    const kc = server.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    server.create("configmaps", cm("a"));
    const informer = new ListWatch<V1ConfigMap>(
      "/api/v1/namespaces/default/configmaps",
      new Watch(kc),
      () => core.listNamespacedConfigMap({ namespace: "default" }),
      false,
      undefined,
      undefined,
      { delayFn: () => Promise.resolve() }, // no reconnect back-off in the test
    );
    await informer.start();
    try {
      await server.waitForWatches(1);
      // While the informer is away: changes it misses, and the history is compacted.
      server.faults.dropWatches();
      server.delete("configmaps", "default", "a");
      server.create("configmaps", cm("b"));
      server.compact();
      await waitFor(() => server.requests.counts()["list configmaps"] === 2, {
        what: "relist",
      }).catch((e) => {
        throw new Error(
          `${e.message}: ${
            JSON.stringify(server.requests.entries().map((r) => `${r.verb} ${r.url} ${r.status}`))
          } open=${server.openWatches()}`,
        );
      });
      await waitFor(() => informer.list("default").map((o) => o.metadata!.name).join() === "b", {
        what: "cache converged",
      });
      const watches = server.requests.entries().filter((e) => e.verb === "watch");
      assert(watches.length >= 2);
    } finally {
      await informer.stop();
    }
    await waitFor(() => server.openWatches() === 0, { what: "watches closed" });
  });
});
