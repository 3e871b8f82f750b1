import type { KubernetesObject } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { FakeClock } from "../time/clock.ts";
import { nullLogger } from "../log/logger.ts";
import { configMapCollection } from "./listers.ts";
import { Reflector } from "./reflector.ts";

/** A handler that mirrors the collection as name → data.v, and counts calls. */
function mirror() {
  const state = new Map<string, string>();
  const calls = { replace: 0, upsert: 0, remove: 0, unavailable: [] as number[] };
  return {
    state,
    calls,
    handler: {
      transform: (
        obj: KubernetesObject,
      ) => ((obj as { data?: Record<string, string> }).data?.v ?? ""),
      replace(items: ReadonlyMap<string, string>) {
        calls.replace++;
        state.clear();
        for (const [k, v] of items) state.set(k, v);
      },
      upsert(key: string, value: string) {
        calls.upsert++;
        state.set(key, value);
      },
      remove(key: string) {
        calls.remove++;
        state.delete(key);
      },
      unavailable(status: number) {
        calls.unavailable.push(status);
      },
    },
  };
}

function cm(name: string, v: string) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace: "ns", name, labels: { pick: "yes" } },
    data: { v },
  };
}

function reflect(
  server: FakeApiServer,
  m: ReturnType<typeof mirror>,
  clock?: FakeClock,
  minWatchIdleMs?: number,
) {
  const kubeConfig = server.kubeConfig();
  const collection = configMapCollection(kubeConfig, { labelSelector: "pick=yes" });
  return new Reflector({
    name: "test",
    kubeConfig,
    list: collection.list,
    watchPath: collection.watchPath,
    labelSelector: "pick=yes",
    handler: m.handler,
    log: nullLogger,
    clock,
    pageSize: 2,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    minWatchIdleMs,
  });
}

async function withRun<T>(r: Reflector<T>, fn: () => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const running = r.run(controller.signal);
  try {
    await fn();
  } finally {
    controller.abort();
    await running;
  }
}

Deno.test("Reflector lists every page, syncs once, then follows the watch", async () => {
  const server = await startFakeApiServer();
  try {
    for (let i = 0; i < 5; i++) server.create("configmaps", cm(`c${i}`, `v${i}`));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      assertEquals(m.state.size, 5, "five objects over three pages of two");
      assertEquals(m.calls.replace, 1);
      assert(r.status().synced);
      server.update("configmaps", { ...server.get("configmaps", "ns", "c0")!, data: { v: "new" } });
      server.delete("configmaps", "ns", "c1");
      await waitFor(() => m.state.get("ns/c0") === "new" && !m.state.has("ns/c1"));
      assertEquals(server.requests.counts()["list configmaps"], 3);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector relists after 410 Gone and the relist drops what was deleted meanwhile", async () => {
  const server = await startFakeApiServer({ retainedEvents: 3 });
  try {
    server.create("configmaps", cm("keep", "1"));
    server.create("configmaps", cm("gone", "1"));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      server.faults.dropWatches();
      server.delete("configmaps", "ns", "gone");
      for (let i = 0; i < 10; i++) server.create("configmaps", cm(`n${i}`, "x"));
      server.compact();
      await waitFor(() => m.calls.replace >= 2 && m.state.size === 11, { what: "relist" });
      assert(!m.state.has("ns/gone"));
      assert(r.status().restarts >= 1);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector retries after 500s and clears the error reason once the watch delivers again", async () => {
  const server = await startFakeApiServer();
  try {
    server.create("configmaps", cm("a", "1"));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      server.faults.failNext(3, 500);
      server.faults.dropWatches();
      await waitFor(() => r.status().reason !== undefined, { what: "error seen" });
      server.create("configmaps", cm("b", "2"));
      await waitFor(() => m.state.has("ns/b"), { what: "recovered" });
      await waitFor(() => r.status().reason === undefined, { what: "reason cleared" });
      assert(r.status().available);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector counts a forbidden list as synced-but-unavailable and keeps retrying", async () => {
  const server = await startFakeApiServer();
  try {
    const undo = server.authz.deny({ resource: "configmaps" });
    server.create("configmaps", cm("a", "1"));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      assertEquals(r.status().available, false);
      assertMatch(r.status().reason ?? "", /Forbidden \(check the RBAC rules\)/);
      assertEquals(m.calls.unavailable[0], 403);
      assertEquals(m.state.size, 0);
      undo();
      await waitFor(() => m.state.has("ns/a"), { what: "allowed again" });
      assertEquals(r.status().available, true);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector waits at least as long as Retry-After says, with jitter, before trying again", async () => {
  const server = await startFakeApiServer();
  try {
    server.create("configmaps", cm("a", "1"));
    server.faults.failNext(1, 429, { retryAfterSeconds: 30 });
    const clock = new FakeClock(Date.now());
    const m = mirror();
    const r = reflect(server, m, clock);
    await withRun(r, async () => {
      await waitFor(() => clock.pendingTimers() > 0, { what: "backoff sleep" });
      await clock.advance(29_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assertEquals(r.status().synced, false, "not retried before Retry-After");
      // Retry-After is a floor; up to 20 % jitter keeps a fleet out of step.
      await clock.advance(7_000);
      await r.synced;
      assertEquals(m.state.size, 1);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector's watchdog ends a silently dead watch after three missed bookmarks, every time alike", async () => {
  const server = await startFakeApiServer({ bookmarkIntervalMs: 50 });
  try {
    const m = mirror();
    const r = reflect(server, m, undefined, 100);
    await withRun(r, async () => {
      await r.synced;
      // Let the watch learn the heartbeat.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const recoveries: number[] = [];
      for (let i = 0; i < 6; i++) {
        server.faults.dropWatches({ silent: true });
        const started = performance.now();
        server.create("configmaps", cm(`after-${i}`, "x"));
        await waitFor(() => m.state.has(`ns/after-${i}`), { what: `recovery ${i}` });
        recoveries.push(performance.now() - started);
        // Bookmarks of the new watch before the next fault.
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // Widening for good after each fault would make these grow (×1.5 each).
      assert(Math.max(...recoveries) < 700, `recoveries ${recoveries.map(Math.round)} ms`);
    });
  } finally {
    await server.close();
  }
});
