import { ApiException, type KubernetesObject } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { ScriptedCollection } from "../testing/scripted_collection.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { FakeClock } from "../time/clock.ts";
import { nullLogger } from "../log/logger.ts";
import { RequestTimeoutError } from "./client.ts";
import { configMapCollection } from "./listers.ts";
import { type ItemBatch, type Lister, Reflector, ServerHeartbeat } from "./reflector.ts";

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

/** A reflector of the fake API server's ConfigMaps labelled pick=yes, over real HTTP. */
function reflect(server: FakeApiServer, m: ReturnType<typeof mirror>) {
  const collection = configMapCollection(server.kubeConfig(), { labelSelector: "pick=yes" });
  return new Reflector({
    name: "test",
    list: collection.list,
    watch: collection.watch,
    handler: m.handler,
    log: nullLogger,
    pageSize: 2,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
  });
}

/** A reflector of a hand-driven collection on fake time. */
function scripted(
  options: {
    minWatchIdleMs?: number;
    watchTimeoutSeconds?: number;
    clock?: FakeClock;
    heartbeat?: ServerHeartbeat;
  } = {},
) {
  const clock = options.clock ?? new FakeClock(1_000_000);
  const api = new ScriptedCollection();
  const m = mirror();
  const r = new Reflector({
    name: "test",
    list: api.list,
    watch: api.watch,
    handler: m.handler,
    log: nullLogger,
    clock,
    random: () => 0.5,
    backoffBaseMs: 100,
    backoffMaxMs: 1_000,
    minWatchIdleMs: options.minWatchIdleMs ?? 1_000,
    watchTimeoutSeconds: () => options.watchTimeoutSeconds ?? 300,
    heartbeat: options.heartbeat,
  });
  return { clock, api, m, r };
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

Deno.test("Reflector's first list may come from a trailing watch cache, and the watch brings it up to date", async () => {
  // Why list from the cache at all: a fleet of daemons starting at once must
  // not each read every object from etcd (client-go's reflector does the same).
  const server = await startFakeApiServer({ watchCacheLag: 2 });
  try {
    for (const name of ["a", "b", "c"]) server.create("configmaps", cm(name, name));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      await waitFor(() => m.state.size === 3, { what: "the watch replays what the cache lacked" });
      assertEquals(m.state.get("ns/c"), "c");
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector relists the latest state after 410 Gone, never a watch cache that trails", async () => {
  const server = await startFakeApiServer({ retainedEvents: 3 });
  try {
    server.create("configmaps", cm("keep", "1"));
    server.create("configmaps", cm("gone", "1"));
    const m = mirror();
    const r = reflect(server, m);
    await withRun(r, async () => {
      await r.synced;
      // From here on a resourceVersion=0 list shows the state before the
      // delete below: a relist from the cache would bring "gone" back.
      server.faults.lagWatchCache(Infinity);
      server.faults.dropWatches();
      server.delete("configmaps", "ns", "gone");
      for (let i = 0; i < 10; i++) server.create("configmaps", cm(`n${i}`, "x"));
      server.compact();
      await waitFor(() => m.calls.replace >= 2 && m.state.size === 11 && !m.state.has("ns/gone"), {
        what: "a relist showing the delete and the creates",
        timeoutMs: 5_000,
      });
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

Deno.test("Reflector stays forbidden from a 403 until a list succeeds, whatever other error comes between", async () => {
  const { clock, api, r } = scripted();
  api.put("a", { v: "1" });
  api.failLists(
    new ApiException(403, "Forbidden", '{"message":"no"}', {}),
    new ApiException(500, "Internal Server Error", '{"message":"etcd timeout"}', {}),
  );
  await withRun(r, async () => {
    await r.synced;
    assertEquals(r.status().forbidden, true);
    while (api.lists.length < 2) await clock.advance(10);
    await waitFor(() => /etcd timeout/.test(r.status().reason ?? ""), { what: "the 500 seen" });
    assertEquals(r.status().forbidden, true, "a 500 says nothing about the 403");
    while (api.lists.length < 3) await clock.advance(10);
    await waitFor(() => r.status().available, { what: "listed" });
    assertEquals(r.status().forbidden, false);
  });
});

Deno.test("Reflector waits at least as long as Retry-After says, with jitter, before listing again", async () => {
  const { clock, api, m, r } = scripted();
  api.put("a", { v: "1" });
  api.failLists(
    new ApiException(429, "Too Many Requests", '{"message":"slow down"}', { "retry-after": "30" }),
  );
  await withRun(r, async () => {
    await clock.advance(29_999);
    assertEquals(api.lists.length, 1, "not retried before Retry-After");
    assertEquals(r.status().synced, false);
    // Retry-After is a floor; up to 20 % jitter keeps a fleet out of step.
    await clock.advance(6_001);
    assertEquals(api.lists.length, 2);
    await r.synced;
    assertEquals(m.state.get("ns/a"), "1");
  });
});

Deno.test("Reflector's watchdog ends a silent watch after three missed bookmarks, every time alike", async () => {
  const { clock, api, m, r } = scripted({ minWatchIdleMs: 1_000 });
  await withRun(r, async () => {
    await r.synced;
    await clock.flush(); // the watch opens
    for (let fault = 0; fault < 4; fault++) {
      const watch = api.lastWatch!;
      // The server's heartbeat: a bookmark every 2 s.
      for (let beat = 0; beat < 3; beat++) {
        await clock.advance(2_000);
        watch.send("BOOKMARK", api.bookmark());
      }
      // Then silence, as from a connection that died without a word.
      await clock.advance(5_999);
      assertEquals(api.watches.length, fault + 1, `fault ${fault}: still waiting at 5.999 s`);
      assert(!watch.aborted);
      await clock.advance(1);
      assert(watch.aborted, `fault ${fault}: the dead watch is ended after three beats`);
      // Ended as a request that timed out: its watcher renews the connections.
      assert(watch.abortReason instanceof RequestTimeoutError, String(watch.abortReason));
      await clock.advance(1_000); // the backoff before the reconnect
      assertEquals(api.watches.length, fault + 2, `fault ${fault}: reconnected`);
    }
    assertEquals(m.calls.replace, 1, "a reconnect resumes the watch; nothing is relisted");
    assertEquals(api.lastWatch!.options.resourceVersion, api.resourceVersion);
  });
});

Deno.test("Reflector's watchdog waits twice as long after each silent timeout in a row", async () => {
  const { clock, api, r } = scripted({ minWatchIdleMs: 1_000 });
  await withRun(r, async () => {
    await r.synced;
    await clock.flush(); // the watch opens
    await clock.advance(1_000);
    api.lastWatch!.send("BOOKMARK", api.bookmark());
    // Heartbeat 1 s → 3 s, then 6 s, then 12 s while no bookmark comes.
    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      const watch = api.lastWatch!;
      const opened = clock.now();
      while (!watch.aborted) await clock.advance(500);
      waits.push(clock.now() - opened);
      while (api.lastWatch === watch) await clock.advance(100);
    }
    assertEquals(waits, [3_000, 6_000, 12_000]);
  });
});

Deno.test("Reflector ends a watch without bookmarks only after its server-side timeout plus 30 s", async () => {
  const { clock, api, r } = scripted({ watchTimeoutSeconds: 60 });
  await withRun(r, async () => {
    await r.synced;
    await clock.flush(); // the watch opens
    const watch = api.lastWatch!;
    assertEquals(watch.options.timeoutSeconds, 60);
    await clock.advance(89_999);
    assert(!watch.aborted);
    await clock.advance(1);
    assert(watch.aborted);
  });
});

Deno.test("Reflector without a bookmark of its own ends a silent watch by the heartbeat its API server showed on another collection", async () => {
  const clock = new FakeClock(1_000_000);
  const heartbeat = new ServerHeartbeat();
  const beating = scripted({ clock, heartbeat, watchTimeoutSeconds: 60 });
  const quiet = scripted({ clock, heartbeat, watchTimeoutSeconds: 60 });
  const alone = scripted({ clock, watchTimeoutSeconds: 60 });
  await withRun(beating.r, async () => {
    await withRun(quiet.r, async () => {
      await withRun(alone.r, async () => {
        await Promise.all([beating.r.synced, quiet.r.synced, alone.r.synced]);
        await clock.flush(); // the watches open
        // The server's heartbeat, 2 s, seen on one collection's watch only;
        // the other two watches die before their first bookmark.
        for (let beat = 0; beat < 2; beat++) {
          await clock.advance(2_000);
          beating.api.lastWatch!.send("BOOKMARK", beating.api.bookmark());
        }
        assertEquals(heartbeat.ms, 2_000);
        const dead = quiet.api.lastWatch!;
        // Three beats (6 s) from the watch's start, its last word from the server.
        await clock.advance(1_999);
        assert(!dead.aborted, "ended before three beats of silence");
        await clock.advance(1);
        assert(dead.aborted, "a watch silent for three of its server's beats goes on waiting");
        assert(dead.abortReason instanceof RequestTimeoutError, String(dead.abortReason));
        // Without the shared heartbeat: the whole server-side timeout plus 30 s.
        const unshared = alone.api.lastWatch!;
        await clock.advance(83_999);
        assert(!unshared.aborted, "ended before its server-side timeout plus 30 s");
        await clock.advance(1);
        assert(unshared.aborted);
      });
    });
  });
});

Deno.test("ServerHeartbeat keeps the longest gap between bookmarks it was told of, and says once when it first knows one", () => {
  const heartbeat = new ServerHeartbeat();
  assertEquals(heartbeat.ms, undefined);
  const calls: string[] = [];
  heartbeat.whenKnown(() => calls.push("a"));
  const cancel = heartbeat.whenKnown(() => calls.push("cancelled"));
  cancel();
  heartbeat.observe(1_000);
  heartbeat.observe(3_000);
  heartbeat.observe(2_000);
  assertEquals(heartbeat.ms, 3_000);
  assertEquals(calls, ["a"]);
  heartbeat.whenKnown(() => calls.push("late"));
  heartbeat.observe(4_000);
  assertEquals(calls, ["a"], "known already: no call");
});

Deno.test("Reflector backs off after a watch the server closes at once, instead of reconnecting in a loop", async () => {
  const { clock, api, r } = scripted();
  await withRun(r, async () => {
    await r.synced;
    await clock.flush(); // the watch opens
    api.lastWatch!.end();
    await clock.flush();
    assertEquals(api.watches.length, 1, "no reconnect before the backoff");
    await clock.advance(120);
    assertEquals(api.watches.length, 2);
    // A watch that ran a while and ended cleanly resumes at once.
    await clock.advance(60_000);
    api.lastWatch!.end();
    await clock.flush();
    assertEquals(api.watches.length, 3);
  });
});

Deno.test("Reflector asks for the next page as soon as a page's continue token is read, with at most two pages in flight", async () => {
  const api = new ScriptedCollection();
  const m = mirror();
  const asked: (string | undefined)[] = [];
  const finish: (() => void)[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const list: Lister = async (options, onItem, onMeta) => {
    asked.push(options.continueToken);
    const n = asked.length;
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    const page = { resourceVersion: "7", continueToken: n < 3 ? `after-${n}` : undefined };
    // The metadata is read first; the items take until the test lets them through.
    onMeta?.(page);
    await new Promise<void>((resolve) => finish.push(resolve));
    onItem(cm(`c${n}`, `v${n}`));
    inFlight--;
    return page;
  };
  const r = new Reflector({
    name: "test",
    list,
    watch: api.watch,
    handler: m.handler,
    log: nullLogger,
  });
  await withRun(r, async () => {
    await waitFor(() => asked.length === 2, { what: "page 2 asked for while page 1 streams" });
    assertEquals(asked, [undefined, "after-1"]);
    // Page 3 waits until page 1 has ended: never three in flight.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assertEquals(asked.length, 2);
    finish[0]();
    await waitFor(() => asked.length === 3, { what: "page 3 once page 1 ended" });
    assertEquals(asked[2], "after-2");
    finish[1]();
    await waitFor(() => finish.length === 3, { what: "page 3 under way" });
    finish[2]();
    await r.synced;
    assertEquals([...m.state.keys()].sort(), ["ns/c1", "ns/c2", "ns/c3"]);
    assertEquals(mostInFlight, 2);
  });
});

Deno.test("Reflector's list fails as a whole when a page fails while the next is in flight, and lists again", async () => {
  const api = new ScriptedCollection();
  const m = mirror();
  let calls = 0;
  let failed = false;
  const list: Lister = async (options, onItem, onMeta) => {
    calls++;
    const first = options.continueToken === undefined;
    const page = { resourceVersion: "7", continueToken: first ? "after-1" : undefined };
    onMeta?.(page);
    await new Promise((resolve) => setTimeout(resolve, first ? 20 : 5));
    // The first attempt's first page breaks off after its metadata.
    if (first && !failed) {
      failed = true;
      throw new ApiException(500, "Internal error", "{}", {});
    }
    onItem(cm(first ? "a" : "b", "v"));
    return page;
  };
  const r = new Reflector({
    name: "test",
    list,
    watch: api.watch,
    handler: m.handler,
    log: nullLogger,
    backoffBaseMs: 10,
    backoffMaxMs: 20,
  });
  await withRun(r, async () => {
    await r.synced;
    assertEquals([...m.state.keys()].sort(), ["ns/a", "ns/b"]);
    assertEquals(m.calls.replace, 1, "nothing replaced from the failed attempt");
    assertEquals(calls, 4, "two pages, twice");
  });
});

/** The mirror's handler, parsing listed objects' bytes itself, with a hook before each batch. */
function parsingMirror(before: (batch: ItemBatch) => Promise<void> | void = () => {}) {
  const m = mirror();
  const seen = { batches: 0, transforms: 0, listed: [] as string[], listedAtReplace: -1 };
  const decoder = new TextDecoder();
  const handler = {
    ...m.handler,
    transform: (obj: KubernetesObject) => {
      seen.transforms++;
      return m.handler.transform(obj);
    },
    listed: (key: string, value: string) => {
      seen.listed.push(key);
      m.state.set(key, value);
    },
    replace: (items: ReadonlyMap<string, string>) => {
      seen.listedAtReplace = seen.listed.length;
      m.handler.replace(items);
    },
    parseItems: async (batch: ItemBatch) => {
      seen.batches++;
      await before(batch);
      let start = 0;
      return batch.ends.map((end) => {
        const obj = JSON.parse(decoder.decode(batch.bytes.subarray(start, end)));
        start = end;
        return [
          `${obj.metadata.namespace}/${obj.metadata.name}`,
          m.handler.transform(obj),
        ] as const;
      });
    },
  };
  return { m, seen, handler };
}

Deno.test("Reflector hands listed objects' bytes to its handler's parser in batches, files each result as it comes, and replaces once all are in", async () => {
  const server = await startFakeApiServer();
  try {
    const filler = "x".repeat(2_000);
    for (let i = 0; i < 300; i++) server.create("configmaps", cm(`c${i}`, `v${i}${filler}`));
    const { m, seen, handler } = parsingMirror();
    const collection = configMapCollection(server.kubeConfig(), { labelSelector: "pick=yes" });
    const r = new Reflector({
      name: "test",
      list: collection.list,
      watch: collection.watch,
      handler,
      log: nullLogger,
      pageSize: 100,
    });
    await withRun(r, async () => {
      await r.synced;
      assertEquals(m.state.size, 300);
      assertEquals(m.state.get("ns/c7"), `v7${filler}`);
      // ~630 KB of objects: several batches, no object parsed on the list's thread.
      assert(seen.batches >= 3, `${seen.batches} batches`);
      assertEquals(seen.transforms, 0);
      assertEquals(seen.listedAtReplace, 300);
      assertEquals(m.calls.replace, 1);
      // A watch event is still read here, one object at a time.
      server.create("configmaps", cm("late", "v"));
      await waitFor(() => m.state.get("ns/late") === "v", { what: "the watch event" });
      assertEquals(seen.transforms, 1);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Reflector's list reads no further while its parser is behind by the in-flight bound, and goes on once it catches up", async () => {
  const api = new ScriptedCollection();
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const { m, seen, handler } = parsingMirror(() => released);
  const item = (i: number) => {
    const text = JSON.stringify(cm(`c${i}`, "y".repeat(1024 * 1024)));
    return new TextEncoder().encode(text);
  };
  const waitedAt: number[] = [];
  const list: Lister = async (_options, _onItem, _onMeta, onItemBytes) => {
    for (let i = 0; i < 40; i++) {
      const wait = onItemBytes!(item(i));
      if (wait) {
        waitedAt.push(i);
        await wait;
      }
    }
    return { resourceVersion: "5" };
  };
  const r = new Reflector({ name: "test", list, watch: api.watch, handler, log: nullLogger });
  await withRun(r, async () => {
    await waitFor(() => waitedAt.length === 1, { what: "the list waiting for its parser" });
    // 16 MiB of 1 MiB objects are in flight before the list waits.
    assertEquals(waitedAt, [15]);
    assertEquals(seen.batches, 16);
    release();
    await r.synced;
    assertEquals(m.state.size, 40);
    assertEquals(m.calls.replace, 1);
  });
});

Deno.test("Reflector's list fails as a whole when its parser rejects a batch, and lists again", async () => {
  const api = new ScriptedCollection();
  let failures = 1;
  const { m, handler } = parsingMirror(() => {
    if (failures-- > 0) throw new SyntaxError("Unexpected token");
  });
  let lists = 0;
  const list: Lister = (_options, _onItem, _onMeta, onItemBytes) => {
    lists++;
    for (let i = 0; i < 3; i++) {
      onItemBytes!(new TextEncoder().encode(JSON.stringify(cm(`c${i}`, "v"))));
    }
    return Promise.resolve({ resourceVersion: "5" });
  };
  const r = new Reflector({
    name: "test",
    list,
    watch: api.watch,
    handler,
    log: nullLogger,
    backoffBaseMs: 10,
    backoffMaxMs: 20,
  });
  await withRun(r, async () => {
    await r.synced;
    assertEquals(lists, 2);
    assertEquals([...m.state.keys()].sort(), ["ns/c0", "ns/c1", "ns/c2"]);
    assertEquals(m.calls.replace, 1);
  });
});
