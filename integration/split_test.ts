/**
 * The split layout in one process against the fake API server: aggregator
 * replicas (`--role=aggregator`) publish the desired set, node daemons
 * (`--role=node`) pull it, watching nothing else of the cluster.
 */
import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { loadConfig } from "../config/config.ts";
import { recordingLogger } from "../log/logger.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";
import type { AggregatorParts } from "../aggregator.ts";
import { readinessReport } from "../operate/health.ts";
import { DaemonMetrics } from "../operate/metrics.ts";
import {
  encodeShards,
  PUBLISHED_SET_SELECTOR,
  publishedImageOf,
} from "../publication/published_set.ts";

const NS = "image-cache-daemon";
const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };
const ref = (name: string) => `docker.io/library/${name}`;

interface Running<P> {
  parts: P;
  log: ReturnType<typeof recordingLogger>;
  stop(): Promise<void>;
}

const FAST_ELECTION = [
  "--leader-elect-lease-duration=3s",
  "--leader-elect-renew-deadline=2s",
  "--leader-elect-retry-period=500ms",
];

/** Runs one role in this process; resolves once its parts exist. */
async function startRole<P>(
  server: FakeApiServer,
  args: string[],
  hook: "onStarted" | "onAggregatorStarted",
): Promise<Running<P>> {
  const { config } = loadConfig(
    [...args, `--pod-namespace=${NS}`, "--metrics-bind-address=0"],
    () => undefined,
  );
  const log = recordingLogger();
  const controller = new AbortController();
  let parts: P | undefined;
  const running = runDaemon(config, {
    kubeConfig: server.kubeConfig(),
    log,
    sourceBackoffBaseMs: 20,
    sourceBackoffMaxMs: 200,
    [hook]: (p: P) => parts = p,
  }, controller.signal);
  await waitFor(() => parts, { what: `${args.join(" ")} started` });
  return {
    parts: parts!,
    log,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

function startAggregator(
  server: FakeApiServer,
  pod: string,
  extra: string[] = [],
): Promise<Running<AggregatorParts>> {
  return startRole(
    server,
    ["--role=aggregator", `--pod-name=${pod}`, ...FAST_ELECTION, ...extra],
    "onAggregatorStarted",
  );
}

function startNode(server: FakeApiServer, node: string): Promise<Running<DaemonParts>> {
  return startRole(server, ["--role=node", `--node-name=${node}`], "onStarted");
}

function publish(server: FakeApiServer, generation: number, names: string[]) {
  for (
    const body of encodeShards(names.map((n) => publishedImageOf(ref(n))), {
      namespace: NS,
      generation,
      maxBytes: 2_000,
    })
  ) {
    server.create("configmaps", body);
  }
}

function published(server: FakeApiServer) {
  return server.list("configmaps", { namespace: NS, labelSelector: PUBLISHED_SET_SELECTOR });
}

async function withServer(nodes: string[], fn: (server: FakeApiServer) => Promise<void>) {
  const server = await startFakeApiServer({ nodes, namespaces: ["default", NS] });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

Deno.test("an aggregator publishes the desired set and a node daemon pulls it", async () => {
  await withServer(["node-1"], async (server) => {
    server.create("configmaps", {
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["alpine:3.20", "nginx:1.27"]' },
    });
    server.create("workflowtemplates", {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "argo", name: "ci" },
      spec: { templates: [{ name: "main", container: { image: "golang:1.23" } }] },
    });
    const aggregator = await startAggregator(server, "aggregator-a", ["--trusted-namespaces=apps"]);
    const node = await startNode(server, "node-1");
    try {
      const expected = [ref("alpine:3.20"), ref("golang:1.23"), ref("nginx:1.27")];
      await waitFor(
        () => expected.every((r) => server.kubelet("node-1").imagesPresent().includes(r)),
        { what: "images on node-1" },
      );
      assertEquals(node.parts.desired.refs(), expected);
      assertEquals(node.parts.publishedSet?.publishedSet().state, "current");
      // Trust travels with the set: the operator's namespace's images, not Argo's.
      assertEquals(expected.map((r) => node.parts.desired.trusted(r)), [true, false, true]);
      const status = aggregator.parts.publisher.status();
      assertEquals(status.images, 3);
      assertEquals(aggregator.parts.election.status().leader, true);
      // A change reaches the node through a new generation.
      const cm = server.get("configmaps", "apps", "list")!;
      server.update("configmaps", { ...cm, data: { images: '["alpine:3.20"]' } });
      await waitFor(() => node.parts.desired.size === 2, { what: "nginx gone from the node" });
      await waitFor(() => published(server).length === 1, { what: "old generation removed" });
      assert(aggregator.parts.publisher.status().generation! > status.generation!);
      const metrics = new DaemonMetrics();
      metrics.observe(aggregator.parts);
      const text = await metrics.render();
      assert(/image_cache_daemon_leader 1\b/.test(text), text);
      assert(/image_cache_daemon_published_images 2\b/.test(text), text);
    } finally {
      await node.stop();
      await aggregator.stop();
    }
  });
});

Deno.test("a node daemon watches only the published set in its namespace, its Node and its pull pods", async () => {
  await withServer(["node-1"], async (server) => {
    publish(server, 1, ["alpine:3.20"]);
    const node = await startNode(server, "node-1");
    try {
      await waitFor(() => server.kubelet("node-1").imagesPresent().includes(ref("alpine:3.20")), {
        what: "alpine pulled",
      });
      for (const r of server.requests.entries()) {
        if (r.verb !== "list" && r.verb !== "watch") continue;
        const query = new URL(r.url, "http://x").searchParams;
        if (r.resource === "configmaps") {
          assertEquals(r.namespace, NS, r.url);
          assertEquals(query.get("labelSelector"), PUBLISHED_SET_SELECTOR, r.url);
        } else if (r.resource === "nodes") {
          assertEquals(query.get("fieldSelector"), "metadata.name=node-1", r.url);
        } else {
          assertEquals(r.resource, "pods", r.url);
          assertEquals(r.namespace, NS, r.url);
          assertEquals(query.get("fieldSelector"), "spec.nodeName=node-1", r.url);
        }
      }
    } finally {
      await node.stop();
    }
  });
});

Deno.test("a node daemon never applies half of a shard update: it sees generation N or N+1, whole", async () => {
  await withServer(["node-1"], async (server) => {
    const first = ["alpine:3.20", "busybox:1.36"];
    const second = Array.from({ length: 60 }, (_, i) => `app-${i}:v2`);
    publish(server, 1, first);
    const node = await startNode(server, "node-1");
    try {
      await waitFor(() => node.parts.desired.size === 2, { what: "generation 1 applied" });
      const seen: string[][] = [];
      node.parts.desired.subscribe(() => seen.push(node.parts.desired.refs()));
      const shards = encodeShards(second.map((n) => publishedImageOf(ref(n))), {
        namespace: NS,
        generation: 2,
        maxBytes: 2_000,
      });
      assert(shards.length >= 3, `${shards.length} shards`);
      for (const [i, body] of shards.entries()) {
        server.create("configmaps", body);
        if (i < shards.length - 1) {
          // Every partial state reached the node's watch before the next shard.
          await waitFor(() => node.parts.publishedSet?.publishedSet().state === "incomplete", {
            what: "generation 2 seen incomplete",
          });
          assertEquals(node.parts.desired.refs(), first.map(ref).sort());
        }
      }
      await waitFor(() => node.parts.publishedSet?.publishedSet().generation === 2, {
        what: "generation 2 applied",
      });
      const whole = [first.map(ref).sort(), second.map(ref).sort()].map((s) => JSON.stringify(s));
      assert(seen.length > 0);
      for (const state of seen) {
        assert(whole.includes(JSON.stringify(state)), `half-applied: ${state.length} images`);
      }
      assertEquals(node.parts.desired.refs(), second.map(ref).sort());
    } finally {
      await node.stop();
    }
  });
});

Deno.test("node daemons keep pulling their last complete set when the published ConfigMaps are deleted, and say so", async () => {
  await withServer(["node-1"], async (server) => {
    publish(server, 1, ["alpine:3.20", "nginx:1.27"]);
    const node = await startNode(server, "node-1");
    try {
      await waitFor(
        () =>
          [ref("alpine:3.20"), ref("nginx:1.27")].every((r) =>
            server.kubelet("node-1").imagesPresent().includes(r)
          ),
        { what: "images pulled" },
      );
      for (const cm of published(server)) server.delete("configmaps", NS, cm.metadata.name!);
      await waitFor(() => node.parts.publishedSet?.publishedSet().state === "missing", {
        what: "set seen missing",
      });
      assertEquals(node.parts.desired.refs(), [ref("alpine:3.20"), ref("nginx:1.27")]);
      assertEquals(node.parts.puller.status().length, 2);
      const report = readinessReport(node.parts);
      assert(report.ready);
      assertEquals(report.warnings?.length, 1);
      assert(report.warnings![0].includes("keeping generation 1 (2 images)"), report.warnings![0]);
      const metrics = new DaemonMetrics();
      metrics.observe(node.parts);
      const text = await metrics.render();
      assert(/image_cache_daemon_published_set_complete 0\b/.test(text), text);
      assert(/image_cache_daemon_published_set_applied_generation 1\b/.test(text), text);
      assert(
        node.log.lines.some((r) =>
          r.msg === "Keeping the last complete published set" && r.state === "missing"
        ),
      );
      // An incomplete new generation is not applied either.
      const next = encodeShards(
        Array.from({ length: 30 }, (_, i) => publishedImageOf(ref(`app-${i}:1`))),
        { namespace: NS, generation: 2, maxBytes: 2_000 },
      );
      assert(next.length > 1, `${next.length} shards`);
      const [partial] = next;
      server.create("configmaps", partial);
      await waitFor(() => node.parts.publishedSet?.publishedSet().state === "incomplete", {
        what: "set seen incomplete",
      });
      assertEquals(node.parts.desired.size, 2);
      assert(node.parts.ready());
    } finally {
      await node.stop();
    }
  });
});

Deno.test("two aggregator replicas: one leads and publishes, a bad object gets exactly one Event, and the standby takes over when the leader stops", async () => {
  await withServer([], async (server) => {
    server.create("configmaps", {
      metadata: { namespace: "apps", name: "bad", labels: LABELS },
      data: { images: '["Alpine:latest", "nginx:1.27"]' },
    });
    server.create("configmaps", {
      metadata: { namespace: "apps", name: "broken", labels: LABELS },
      data: { images: "{not a list" },
    });
    const a = await startAggregator(server, "aggregator-a");
    const b = await startAggregator(server, "aggregator-b");
    const stopped = new Set<Running<AggregatorParts>>();
    try {
      await waitFor(() => published(server).length === 1, { what: "a published set" });
      const leaders = [a, b].filter((x) => x.parts.election.status().leader);
      assertEquals(leaders.length, 1);
      await waitFor(() => server.list("events", { namespace: "apps" }).length === 2, {
        what: "two Events",
      });
      await Promise.all([a.parts.events.flush(), b.parts.events.flush()]);
      const events = server.list("events", { namespace: "apps" });
      assertEquals(events.map((e) => e.reason).sort(), [
        "InvalidImageList",
        "InvalidImageReference",
      ]);
      assert(events.every((e) => e.count === 1));
      const creates = server.requests.entries().filter((r) =>
        r.verb === "create" && r.resource === "events"
      );
      assertEquals(creates.map((r) => r.status), [201, 201]);
      const [leader] = leaders;
      const standby = leader === a ? b : a;
      const generation = leader.parts.publisher.status().generation!;
      await leader.stop();
      stopped.add(leader);
      const cm = server.get("configmaps", "apps", "bad")!;
      server.update("configmaps", { ...cm, data: { images: '["nginx:1.27", "redis:7"]' } });
      await waitFor(() => standby.parts.election.status().leader, { what: "standby leads" });
      await waitFor(() => standby.parts.publisher.status().generation! > generation, {
        what: "standby publishes",
      });
      assertEquals(standby.parts.publisher.status().images, 2);
      await standby.parts.events.flush();
      // The new leader's held-back Events meet the old ones: still one each.
      assertEquals(server.list("events", { namespace: "apps" }).length, 2);
      assert(server.list("events", { namespace: "apps" }).every((e) => e.count === 1));
      const lease = server.get("leases", NS, "image-cache-daemon-aggregator")!;
      assertEquals((lease.spec as { leaseTransitions: number }).leaseTransitions, 1);
    } finally {
      for (const x of [a, b]) if (!stopped.has(x)) await x.stop();
    }
  });
});
