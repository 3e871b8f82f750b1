/**
 * The split layout as it ships: aggregator and node daemon processes under
 * exactly the production permission set (`-P=daemon`), against the fake API
 * server. Each role makes only the API calls its RBAC (the rendered base
 * manifests) allows; a SIGKILLed leader is replaced by the standby within a
 * lease duration plus a retry period.
 */
import { parseAllDocuments } from "yaml";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { spawnDaemon } from "../testing/daemon_process.ts";
import { waitFor } from "../testing/wait.ts";
import {
  apiCallOf,
  type InstalledRules,
  isAllowed,
  type PolicyRule,
} from "../manifests/rbac_expectations.ts";
import { PUBLISHED_SET_SELECTOR, readShard, viewShards } from "../publication/published_set.ts";

const NS = "image-cache-daemon";
const NODE = "node-1";
const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };

// deno-lint-ignore no-explicit-any -- rendered manifests are untyped YAML (schema-checked in manifests_test.ts)
type Manifest = Record<string, any>;

/** The rules bound to a ServiceAccount in the rendered base install. */
async function rulesOf(serviceAccount: string): Promise<InstalledRules> {
  const out = await new Deno.Command("kubectl", {
    args: ["kustomize", new URL("../manifests", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const objects = parseAllDocuments(new TextDecoder().decode(out.stdout)).map((d) =>
    d.toJS() as Manifest
  );
  const bound = (bindingKind: string, roleKind: string) =>
    objects.filter((b) =>
      b.kind === bindingKind &&
      b.subjects.some((s: Manifest) => s.name === serviceAccount && s.namespace === NS)
    ).flatMap((b) =>
      objects.filter((r) => r.kind === roleKind && r.metadata.name === b.roleRef.name)
        .flatMap((r) => r.rules as PolicyRule[])
    );
  return {
    cluster: bound("ClusterRoleBinding", "ClusterRole"),
    namespaced: bound("RoleBinding", "Role"),
    namespace: NS,
  };
}

function assertWithinRbac(server: FakeApiServer, rules: InstalledRules, who: string): void {
  const calls = server.requests.entries()
    .filter((r) => r.url.startsWith("/api/") || r.url.startsWith("/apis/"));
  assert(calls.length > 0, `${who} made no calls`);
  for (const r of calls) {
    assert(
      isAllowed(rules, apiCallOf(r.method, r.url)),
      `${who}: not allowed: ${r.method} ${r.url}`,
    );
  }
}

/** The newest complete published set's references. */
function publishedRefs(server: FakeApiServer): string[] | undefined {
  const shards = server.list("configmaps", {
    namespace: NS,
    labelSelector: PUBLISHED_SET_SELECTOR,
  });
  return viewShards(shards.map((s) => readShard(s as never))).complete?.images.map((i) => i.ref);
}

interface Proc {
  child: Deno.ChildProcess;
  stderr: Promise<string>;
}

async function withCluster(fn: (server: FakeApiServer, kubeconfig: string) => Promise<void>) {
  const server = await startFakeApiServer({ nodes: [NODE], namespaces: ["default", NS] });
  const dir = await Deno.makeTempDir({ prefix: "icd-split-" });
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfig, server.kubeconfigYaml());
    await fn(server, kubeconfig);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function start(kubeconfig: string, args: string[]): Proc {
  const child = spawnDaemon([
    `--kubeconfig=${kubeconfig}`,
    `--pod-namespace=${NS}`,
    "--metrics-bind-address=0",
    // Several daemons on one host: no /status server either (its default port would clash).
    "--status-bind-address=0",
    ...args,
  ], { denoFlags: [`--allow-read=${kubeconfig}`] });
  return { child, stderr: new Response(child.stderr).text() };
}

async function stop(proc: Proc, signal: Deno.Signal = "SIGTERM"): Promise<number> {
  try {
    proc.child.kill(signal);
  } catch {
    // Already gone.
  }
  const status = await proc.child.status;
  await proc.stderr;
  return status.code;
}

Deno.test("The split as it ships: an aggregator process publishes, a node process pulls, each within the RBAC of its role", async () => {
  await withCluster(async (server, kubeconfig) => {
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
    const expected = [
      "docker.io/library/alpine:3.20",
      "docker.io/library/golang:1.23",
      "docker.io/library/nginx:1.27",
    ];
    const aggregator = start(kubeconfig, ["--role=aggregator", "--pod-name=aggregator-0"]);
    let node: Proc | undefined;
    try {
      await waitFor(() => publishedRefs(server)?.length === 3, {
        what: "the published set",
        timeoutMs: 20_000,
      });
      assertEquals(publishedRefs(server), expected);
      assertEquals(await stop(aggregator), 0, await aggregator.stderr);
      // The shipped bundle's list parser worker runs within the daemon's permissions.
      assertMatch(await aggregator.stderr, /Parsing listed objects on a worker thread/);
      assert(!(await aggregator.stderr).includes("List parser worker failed"));
      assertWithinRbac(server, await rulesOf("image-cache-daemon-aggregator"), "aggregator");
      // Released on SIGTERM, so a standby would not wait a lease duration.
      const lease = server.get("leases", NS, "image-cache-daemon-aggregator")!;
      assertEquals((lease.spec as { holderIdentity: string }).holderIdentity, "");

      server.requests.reset();
      // As the DaemonSet runs it: its own pod named, so it reads its own
      // tolerations and records Events on itself.
      const self = server.create("pods", {
        metadata: { namespace: NS, name: "icd-node-1" },
        spec: { nodeName: NODE, containers: [{ name: "daemon", image: "icd" }] },
      });
      node = start(kubeconfig, [
        "--role=node",
        `--node-name=${NODE}`,
        `--pod-name=${self.metadata.name}`,
        `--pod-uid=${self.metadata.uid}`,
      ]);
      await waitFor(
        () => expected.every((ref) => server.kubelet(NODE).imagesPresent().includes(ref)),
        { what: "images on the node", timeoutMs: 20_000 },
      );
      await waitFor(() => server.requests.counts()["create events"] === 1, {
        what: "the node's Event on its own pod",
      });
      assertEquals(await stop(node), 0, await node.stderr);
      node = undefined;
      const made = new Set(server.requests.entries().map((r) => `${r.verb} ${r.resource}`));
      for (
        const call of ["get pods", "create events", "list configmaps", "watch nodes", "get leases"]
      ) {
        assert(made.has(call), `the node made no ${call}`);
      }
      assertWithinRbac(server, await rulesOf("image-cache-daemon"), "node");
    } finally {
      await stop(aggregator, "SIGKILL");
      if (node) await stop(node, "SIGKILL");
    }
  });
});

Deno.test("Two aggregator processes: after the leader is SIGKILLed the standby publishes within a lease duration plus a retry period, and a bad object keeps exactly one Event", async () => {
  await withCluster(async (server, kubeconfig) => {
    server.create("configmaps", {
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["alpine:3.20"]' },
    });
    server.create("configmaps", {
      metadata: { namespace: "apps", name: "broken", labels: LABELS },
      data: { images: "{not a list" },
    });
    const brokenEvents = () =>
      server.list("events", { namespace: "apps" })
        .filter((e) => (e.involvedObject as { name?: string })?.name === "broken");
    const eventCreates = () =>
      server.requests.entries().filter((r) => r.verb === "create" && r.resource === "events");
    const leaseMs = 4_000;
    const retryMs = 1_000;
    const election = [
      `--leader-elect-lease-duration=${leaseMs}ms`,
      "--leader-elect-renew-deadline=3s",
      `--leader-elect-retry-period=${retryMs}ms`,
    ];
    const procs = new Map<string, Proc>();
    for (const pod of ["aggregator-a", "aggregator-b"]) {
      procs.set(pod, start(kubeconfig, ["--role=aggregator", `--pod-name=${pod}`, ...election]));
    }
    try {
      await waitFor(() => publishedRefs(server)?.length === 1, {
        what: "the first published set",
        timeoutMs: 20_000,
      });
      const holder = () =>
        (server.get("leases", NS, "image-cache-daemon-aggregator")?.spec as {
          holderIdentity?: string;
        })?.holderIdentity;
      const leader = holder()!;
      const standby = [...procs.keys()].find((p) => p !== leader)!;
      // The leader reports the bad object once; the standby holds its report back.
      await waitFor(() => brokenEvents().length === 1, { what: "the leader's Event" });
      // Let the standby observe a few renewals, as it would in steady state.
      await new Promise((resolve) => setTimeout(resolve, 3 * retryMs));
      const killedAt = Date.now();
      await stop(procs.get(leader)!, "SIGKILL");
      procs.delete(leader);
      const cm = server.get("configmaps", "apps", "list")!;
      server.update("configmaps", { ...cm, data: { images: '["alpine:3.20", "redis:7"]' } });
      await waitFor(() => publishedRefs(server)?.includes("docker.io/library/redis:7"), {
        what: "the standby's publication",
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      const elapsed = Date.now() - killedAt;
      assertEquals(holder(), standby);
      assert(elapsed <= leaseMs + retryMs, `published ${elapsed} ms after the SIGKILL`);
      // Not before the old lease could have run out on the standby's clock.
      assert(elapsed >= leaseMs - retryMs, `took over after only ${elapsed} ms`);
      const transitions = (server.get("leases", NS, "image-cache-daemon-aggregator")!.spec as {
        leaseTransitions: number;
      }).leaseTransitions;
      assertEquals(transitions, 1);
      // The new leader sends its held-back report once; it has the dead
      // leader's Event's name, so it meets that Event (409) and stops there:
      // still one Event object, counted once, and no retries.
      await waitFor(() => eventCreates().length === 2, { what: "the new leader's report" });
      await new Promise((resolve) => setTimeout(resolve, 3 * retryMs));
      const events = brokenEvents();
      assertEquals(events.length, 1);
      assertEquals(events[0].count, 1);
      assertEquals(eventCreates().map((r) => r.status), [201, 409]);
      // Both replicas, Events and Lease writes included, within the aggregator's RBAC.
      assertWithinRbac(server, await rulesOf("image-cache-daemon-aggregator"), "aggregators");
    } finally {
      for (const proc of procs.values()) await stop(proc, "SIGKILL");
    }
  });
});
