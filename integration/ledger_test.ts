/**
 * The tag ledger (#16) in the split layout against the fake API server: one
 * aggregator and several node daemons, each node's simulated kubelet pulling
 * from one shared fake registry that counts manifest requests per tag.
 */
import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { configMap } from "./faults/harness.ts";
import { loadConfig } from "../config/config.ts";
import { recordingLogger } from "../log/logger.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";
import type { AggregatorParts } from "../aggregator.ts";
import { PUBLISHED_SET_SELECTOR, readShard, viewShards } from "../publication/published_set.ts";
import { parseReference } from "../images/reference.ts";
import { TAG_CHECKED_REASON, tagCheckedMessage } from "../ledger/tag_check_event.ts";
import { microTime } from "../election/leader_elector.ts";

const NS = "image-cache-daemon";
const NODES = ["node-1", "node-2", "node-3", "node-4"];
const TAGS = ["docker.io/library/alpine:3.20", "docker.io/library/nginx:1.27"];
const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;

/** A registry shared by every simulated kubelet: tag → digest, and the manifest requests per tag and node. */
class FakeRegistry {
  readonly digests = new Map<string, string>(TAGS.map((t, i) => [t, digestOf(i + 1)]));
  readonly requests: { ref: string; node: string }[] = [];
  readonly failing = new Set<string>();
  /** Nodes whose pulls never answer (a registry that accepts the connection and stalls). */
  readonly stalling = new Set<string>();
  count(ref: string, node?: string): number {
    return this.requests.filter((r) => r.ref === ref && (node === undefined || r.node === node))
      .length;
  }
  attach(server: FakeApiServer): void {
    for (const node of NODES) {
      server.kubelet(node).setPullHook((image) => {
        const { domain, path, tag } = parseReference(image);
        const ref = `${domain}/${path}:${tag}`;
        this.requests.push({ ref, node });
        if (this.failing.has(node)) return Promise.reject(new Error("registry unreachable"));
        if (this.stalling.has(node)) return new Promise(() => {});
        return Promise.resolve({ imageID: `${domain}/${path}@${this.digests.get(ref)}` });
      });
    }
  }
}

interface Running<P> {
  parts: P;
  stop(): Promise<void>;
}

async function start<P>(server: FakeApiServer, args: string[], aggregator: boolean) {
  const { config } = loadConfig(
    [...args, `--pod-namespace=${NS}`, "--metrics-bind-address=0", "--resync-period=1s"],
    () => undefined,
  );
  const controller = new AbortController();
  let parts: P | undefined;
  const running = runDaemon(config, {
    kubeConfig: server.kubeConfig(),
    log: recordingLogger(),
    sourceBackoffBaseMs: 20,
    sourceBackoffMaxMs: 200,
    leaseCheckEveryMs: 200,
    [aggregator ? "onAggregatorStarted" : "onStarted"]: (p: P) => parts = p,
  }, controller.signal);
  await waitFor(() => parts, { what: `${args.join(" ")} started` });
  return {
    parts: parts!,
    stop: async () => {
      controller.abort();
      await running;
    },
  } as Running<P>;
}

async function withCluster(
  fn: (
    c: {
      server: FakeApiServer;
      registry: FakeRegistry;
      aggregator: Running<AggregatorParts>;
      nodes: Running<DaemonParts>[];
    },
  ) => Promise<void>,
  nodeArgs: readonly string[] = [],
) {
  const server = await startFakeApiServer({ nodes: NODES, namespaces: ["default", NS, "apps"] });
  const registry = new FakeRegistry();
  registry.attach(server);
  server.create("configmaps", configMap("apps", "list", { images: JSON.stringify(TAGS) }));
  const stops: (() => Promise<void>)[] = [];
  try {
    const aggregator = await start<AggregatorParts>(
      server,
      ["--role=aggregator", "--pod-name=aggregator-a"],
      true,
    );
    stops.push(aggregator.stop);
    const nodes: Running<DaemonParts>[] = [];
    for (const node of NODES) {
      const n = await start<DaemonParts>(
        server,
        ["--role=node", `--node-name=${node}`, ...nodeArgs],
        false,
      );
      stops.push(n.stop);
      nodes.push(n);
    }
    await fn({ server, registry, aggregator, nodes });
  } finally {
    for (const stop of stops.reverse()) await stop();
    await server.close();
  }
}

/** The published images, as the nodes read them. */
function publishedImages(server: FakeApiServer) {
  const shards = server.list("configmaps", {
    namespace: NS,
    labelSelector: PUBLISHED_SET_SELECTOR,
  });
  return viewShards(shards.map((s) => readShard(s as never))).complete?.images ?? [];
}

function ledgerOf(server: FakeApiServer, ref: string) {
  return publishedImages(server).find((i) => i.ref === ref);
}

/** Every node holds `digest` for `ref` under the tag. */
function allHold(server: FakeApiServer, ref: string, digest: string): boolean {
  const repo = ref.slice(0, ref.lastIndexOf(":"));
  return NODES.every((node) => {
    const images = (server.get("nodes", undefined, node)?.status as {
      images?: { names: string[] }[];
    })?.images ?? [];
    return images.some((i) => i.names.includes(ref) && i.names.includes(`${repo}@${digest}`));
  });
}

Deno.test("with the tag ledger, only a tag's canary checks the registry each period; nodes holding its digest do not pull", async () => {
  await withCluster(async ({ server, registry, nodes }) => {
    // The whole cluster's start comes first (one aggregator, four nodes, in
    // real time on a shared machine): as long as the later waits allow.
    for (const [i, ref] of TAGS.entries()) {
      await waitFor(() => ledgerOf(server, ref)?.ledgerDigest === digestOf(i + 1), {
        what: `${ref} in the ledger`,
        timeoutMs: 30_000,
      });
      await waitFor(() => allHold(server, ref, digestOf(i + 1)), {
        what: `${ref} on every node`,
        timeoutMs: 30_000,
      });
    }
    // Count from when every node has applied the published digests and no
    // pull begun before that is still under way.
    await waitFor(
      () =>
        nodes.every((n) =>
          TAGS.every((ref, i) => {
            const s = n.parts.puller.status().find((x) => x.ref === ref);
            return s?.ledgerDigest === digestOf(i + 1) && s.state !== "pulling";
          })
        ),
      { what: "every node on the published digests, nothing in flight" },
    );
    const canaries = TAGS.map((ref) => ledgerOf(server, ref)!.canary!);
    for (const canary of canaries) assert(NODES.includes(canary));
    const before = TAGS.map((ref) =>
      new Map(NODES.map((n) => [n, registry.count(ref, n)] as const))
    );
    // Three more periods: each canary checks three more times.
    for (const [i, ref] of TAGS.entries()) {
      await waitFor(() => registry.count(ref, canaries[i]) >= before[i].get(canaries[i])! + 3, {
        what: `three checks of ${ref} by its canary`,
        timeoutMs: 30_000,
      });
    }
    for (const [i, ref] of TAGS.entries()) {
      for (const node of NODES) {
        if (node === canaries[i]) continue;
        assertEquals(registry.count(ref, node), before[i].get(node), `${ref} on ${node}`);
      }
      assertEquals(ledgerOf(server, ref)!.canary, canaries[i], "the canary stays");
    }
  });
});

Deno.test("a moved tag: the canary sees the new digest, the ledger publishes it and every node pulls it", async () => {
  await withCluster(async ({ server, registry, nodes }) => {
    const [ref] = TAGS;
    await waitFor(() => allHold(server, ref, digestOf(1)), { what: "v1 on every node" });
    registry.digests.set(ref, digestOf(99));
    await waitFor(() => ledgerOf(server, ref)?.ledgerDigest === digestOf(99), {
      what: "the new digest in the ledger",
      timeoutMs: 30_000,
    });
    await waitFor(() => allHold(server, ref, digestOf(99)), {
      what: "the new digest on every node",
      timeoutMs: 30_000,
    });
    await waitFor(() => nodes.every((n) => !n.parts.puller.status().some((s) => s.ledgerDrift)), {
      what: "no node reports drift",
    });
  });
});

Deno.test("with every aggregator gone (its Lease no longer renewed), the ledger stops counting: a moved tag reaches every node through the nodes' own resyncs", async () => {
  await withCluster(async ({ server, registry, aggregator, nodes }) => {
    const [ref] = TAGS;
    await waitFor(() => allHold(server, ref, digestOf(1)), { what: "v1 on every node" });
    await waitFor(
      () =>
        nodes.every((n) => n.parts.puller.status().some((s) => s.ref === ref && s.ledgerDigest)),
      { what: "every node on the ledger" },
    );
    await aggregator.stop();
    // A minute and more without a renewal.
    const lease = server.get("leases", NS, "image-cache-daemon-aggregator")!;
    server.update("leases", {
      ...lease,
      spec: {
        ...lease.spec as Record<string, unknown>,
        renewTime: microTime(Date.now() - 120_000),
      },
    });
    registry.digests.set(ref, digestOf(99));
    await waitFor(() => allHold(server, ref, digestOf(99)), {
      what: "the moved tag on every node, with no aggregator",
      timeoutMs: 30_000,
    });
    for (const n of nodes) {
      assertEquals(n.parts.publishedSet!.publishedSet().ledger?.alive, false);
    }
  });
});

Deno.test("a canary that cannot pull is replaced; when the next fails too, every node pulls the tag itself until a pull succeeds", async () => {
  await withCluster(async ({ server, registry, aggregator }) => {
    const [ref] = TAGS;
    await waitFor(() => allHold(server, ref, digestOf(1)), { what: "v1 on every node" });
    const first = ledgerOf(server, ref)!.canary!;
    registry.failing.add(first);
    await waitFor(() => {
      const canary = ledgerOf(server, ref)?.canary;
      return canary !== undefined && canary !== first;
    }, { what: "a new canary", timeoutMs: 30_000 });
    assertEquals(aggregator.parts.ledger.entry(ref)?.fallback, false);
    // The registry is now out of reach of every node.
    for (const node of NODES) registry.failing.add(node);
    await waitFor(() => aggregator.parts.ledger.entry(ref)?.fallback === true, {
      what: "fallback",
      timeoutMs: 30_000,
    });
    await waitFor(() => ledgerOf(server, ref)?.canary === undefined, {
      what: "no canary published",
    });
    // Fallback: every node checks the tag itself, as with --role=all.
    const before = new Map(NODES.map((n) => [n, registry.count(ref, n)] as const));
    await waitFor(() => NODES.every((n) => registry.count(ref, n) > before.get(n)!), {
      what: "every node pulls the tag",
      timeoutMs: 30_000,
    });
    // Back: the first successful pull ends the fallback and a canary is published again.
    registry.failing.clear();
    await waitFor(() => ledgerOf(server, ref)?.canary !== undefined, {
      what: "a canary again",
      timeoutMs: 30_000,
    });
    assertEquals(aggregator.parts.ledger.entry(ref)?.fallback, false);
  });
});

Deno.test("a canary whose pull runs out of its pull timeout (its pod deleted while pending) is replaced", async () => {
  await withCluster(async ({ server, registry, aggregator }) => {
    const [ref] = TAGS;
    await waitFor(() => allHold(server, ref, digestOf(1)), { what: "v1 on every node" });
    const first = ledgerOf(server, ref)!.canary!;
    registry.stalling.add(first);
    await waitFor(() => {
      const canary = ledgerOf(server, ref)?.canary;
      return canary !== undefined && canary !== first;
    }, { what: "a new canary after the stalled pull", timeoutMs: 30_000 });
    // The new canary's check goes through, and counts as the tag's check.
    const second = ledgerOf(server, ref)!.canary!;
    const checks = registry.count(ref, second);
    await waitFor(() => registry.count(ref, second) > checks, {
      what: "the new canary checks the tag",
      timeoutMs: 30_000,
    });
    await waitFor(() => aggregator.parts.ledger.entry(ref)?.failures === 0, {
      what: "the check counted",
    });
  }, ["--pull-timeout=2s"]);
});

Deno.test("a tag's canary moves when its node becomes not ready, and only that tag's canary moves", async () => {
  await withCluster(async ({ server }) => {
    for (const ref of TAGS) {
      await waitFor(() => ledgerOf(server, ref)?.canary !== undefined, { what: `${ref} canary` });
    }
    const before = TAGS.map((ref) => ledgerOf(server, ref)!.canary!);
    const gone = before[0];
    const node = server.get("nodes", undefined, gone)!;
    const status = node.status as { conditions: { type: string; status: string }[] };
    server.updateStatus("nodes", {
      ...node,
      status: {
        ...status,
        conditions: status.conditions.map((c) =>
          c.type === "Ready" ? { ...c, status: "False" } : c
        ),
      },
    });
    await waitFor(() => {
      const now = ledgerOf(server, TAGS[0])?.canary;
      return now !== undefined && now !== gone;
    }, { what: "a new canary for the first tag" });
    for (const [i, ref] of TAGS.entries()) {
      if (before[i] !== gone) assertEquals(ledgerOf(server, ref)!.canary, before[i], ref);
    }
  });
});

Deno.test("the ledger forgets a tag that is no longer desired, and keeps the others", async () => {
  await withCluster(async ({ server, aggregator }) => {
    await waitFor(() => aggregator.parts.ledger.entries().length === TAGS.length, {
      what: "both tags in the ledger",
    });
    const list = server.get("configmaps", "apps", "list")!;
    server.update("configmaps", { ...list, data: { images: JSON.stringify([TAGS[1]]) } });
    await waitFor(
      () => aggregator.parts.ledger.entries().map((e) => e.ref).join() === TAGS[1],
      { what: "only the desired tag left in the ledger" },
    );
  });
});

Deno.test("a canary pulling through CRI reports its check in a TagChecked Event on its own pod: the ledger publishes the digest, and a failure moves the canary", async () => {
  const server = await startFakeApiServer({ nodes: NODES, namespaces: ["default", NS, "apps"] });
  const [ref] = TAGS;
  server.create("configmaps", configMap("apps", "list", { images: JSON.stringify([ref]) }));
  // Only the aggregator runs: what it learns comes from the Events alone.
  const aggregator = await start<AggregatorParts>(
    server,
    ["--role=aggregator", "--pod-name=aggregator-a"],
    true,
  );
  let n = 0;
  const report = (node: string, type: "Normal" | "Warning", message: string) =>
    server.create("events", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { namespace: NS, name: `icd-${node}.${n++}` },
      involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: `icd-${node}` },
      type,
      reason: TAG_CHECKED_REASON,
      message,
      source: { component: "image-cache-daemon", host: node },
      count: 1,
      lastTimestamp: new Date().toISOString(),
    });
  try {
    await waitFor(() => ledgerOf(server, ref)?.canary !== undefined, { what: "a canary" });
    const canary = ledgerOf(server, ref)!.canary!;
    report(canary, "Normal", tagCheckedMessage(ref, { digest: digestOf(77) }));
    await waitFor(() => ledgerOf(server, ref)?.ledgerDigest === digestOf(77), {
      what: "the reported digest published",
    });
    assertEquals(aggregator.parts.ledger.entry(ref)?.checkedBy, canary);
    report(canary, "Warning", tagCheckedMessage(ref, { error: "manifest unknown" }));
    await waitFor(() => {
      const now = ledgerOf(server, ref)?.canary;
      return now !== undefined && now !== canary;
    }, { what: "another canary after the failed check", timeoutMs: 15_000 });
    // The digest stands until a check says otherwise.
    assertEquals(ledgerOf(server, ref)?.ledgerDigest, digestOf(77));
  } finally {
    await aggregator.stop();
    await server.close();
  }
});
