/**
 * The daemon as it ships: a process under exactly the production permission
 * set (`-P=daemon`, plus reading its kubeconfig), against the fake API server
 * over TLS. It pulls, serves its endpoints, makes only API calls its RBAC
 * allows, and on SIGTERM deletes its in-flight pull pods and exits 0.
 */
import { parse } from "yaml";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { freePort, spawnDaemon } from "../testing/daemon_process.ts";
import { waitFor } from "../testing/wait.ts";
import {
  apiCallOf,
  type InstalledRules,
  isAllowed,
  type PolicyRule,
} from "../manifests/rbac_expectations.ts";

const NS = "image-cache-daemon";
const NODE = "node-1";
const PART_OF = "app.kubernetes.io/part-of=image-cache-daemon";
const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };

/** The rules of the single-process layout, which runs the daemon as this test does (`--role=all`). */
async function installedRules(): Promise<InstalledRules> {
  const read = async (file: string) =>
    parse(
      await Deno.readTextFile(
        new URL(`../manifests/overlays/single-process/${file}`, import.meta.url),
      ),
    ) as {
      rules: PolicyRule[];
    };
  return {
    cluster: (await read("clusterrole.yaml")).rules,
    namespaced: (await read("role.yaml")).rules,
    namespace: NS,
  };
}

Deno.test("The daemon process (the shipped bundle) under -P=daemon pulls over TLS, stays within its RBAC, and exits 0 on SIGTERM with its pods cleaned", async () => {
  await endToEnd({});
});

Deno.test("The daemon run from source (main.ts) under the same permission set does the same", async () => {
  await endToEnd({ entry: "main.ts" });
});

async function endToEnd(options: { entry?: string; denoFlags?: string[] }): Promise<void> {
  const server = await startFakeApiServer({ tls: true, nodes: [NODE] });
  const dir = await Deno.makeTempDir({ prefix: "icd-process-" });
  let child: Deno.ChildProcess | undefined;
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    const self = server.create("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { namespace: NS, name: "icd-self" },
      spec: { containers: [{ name: "daemon", image: "icd:0.1.0" }], tolerations: [] },
    });
    server.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "apps", name: "list", labels: LABELS },
      data: { images: '["alpine:3.20", "nginx:1.27"]' },
    });
    server.create("workflowtemplates", {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "argo", name: "ci" },
      spec: { templates: [{ name: "main", container: { image: "golang:1.23" } }] },
    });
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfig, server.kubeconfigYaml());
    const port = freePort();
    const statusPort = freePort();
    child = spawnDaemon([
      `--kubeconfig=${kubeconfig}`,
      `--node-name=${NODE}`,
      `--pod-namespace=${NS}`,
      "--pod-name=icd-self",
      `--pod-uid=${self.metadata.uid}`,
      `--metrics-bind-address=127.0.0.1:${port}`,
      `--status-bind-address=127.0.0.1:${statusPort}`,
    ], {
      entry: options.entry,
      denoFlags: [...(options.denoFlags ?? []), `--allow-read=${kubeconfig}`],
    });
    const stderr = new Response(child.stderr).text();
    const base = `http://127.0.0.1:${port}`;
    const expected = [
      "docker.io/library/alpine:3.20",
      "docker.io/library/golang:1.23",
      "docker.io/library/nginx:1.27",
    ];
    await waitFor(
      () => expected.every((ref) => server.kubelet(NODE).imagesPresent().includes(ref)),
      { what: "images on the node", timeoutMs: 20_000 },
    );
    const ready = await waitFor(async () => {
      const response = await fetch(`${base}/readyz`);
      await response.body?.cancel();
      return response.status === 200;
    }, { what: "/readyz 200" });
    assert(ready);
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return /image_cache_daemon_pulls_total\{result="success"\} 3\b/.test(text) ? text : undefined;
    }, { what: "three successful pulls in /metrics" });
    assertMatch(metrics, /image_cache_daemon_desired_images 3\b/);
    // /status, which names every tenant's objects, is not on the address the
    // pod network reaches, only on its own (loopback by default).
    const onMetrics = await fetch(`${base}/status`);
    await onMetrics.body?.cancel();
    assertEquals(onMetrics.status, 404);
    const report = await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json();
    assertEquals(report.desired, 3);

    // A slow pull in flight when SIGTERM arrives.
    server.kubelet(NODE).setPullDelay("docker.io/library/slow:1", 60_000);
    const cm = server.get("configmaps", "apps", "list")!;
    server.update("configmaps", { ...cm, data: { images: '["alpine:3.20", "slow:1"]' } });
    await waitFor(
      () => server.list("pods", { namespace: NS, labelSelector: PART_OF }).length === 1,
      {
        what: "slow pull pod",
      },
    );
    const started = Date.now();
    child.kill("SIGTERM");
    const status = await child.status;
    child = undefined;
    assertEquals(status.code, 0, await stderr);
    assert(Date.now() - started < 10_000, "exits within 10 s");
    assertEquals(server.list("pods", { namespace: NS, labelSelector: PART_OF }).length, 0);

    // Every request it made is one its RBAC allows.
    const rules = await installedRules();
    const calls = server.requests.entries()
      .filter((r) => r.url.startsWith("/api/") || r.url.startsWith("/apis/"))
      .map((r) => ({ record: r, call: apiCallOf(r.method, r.url) }));
    assert(calls.length > 0);
    for (const { record, call } of calls) {
      assert(isAllowed(rules, call), `not allowed by RBAC: ${record.method} ${record.url}`);
    }
    // Each daemon watches only its own node: pull pods by spec.nodeName, the
    // Node by name; never every pod or every node of the cluster.
    for (const { record, call } of calls) {
      const query = new URL(record.url, "http://x").searchParams;
      if (call.resource === "pods" && (call.verb === "list" || call.verb === "watch")) {
        assertEquals(query.get("fieldSelector"), `spec.nodeName=${NODE}`, record.url);
        assertEquals(call.namespace, NS, record.url);
      }
      if (call.resource === "nodes") {
        assertEquals(query.get("fieldSelector"), `metadata.name=${NODE}`, record.url);
      }
    }
    assert(calls.some(({ call }) => call.resource === "nodes" && call.verb === "watch"));
    assert(calls.some(({ call }) => call.resource === "pods" && call.verb === "watch"));
    // No per-object reads but the daemon's own pod (for its tolerations).
    const gets = calls.filter(({ call }) => call.verb === "get").map(({ call }) =>
      `${call.resource}/${call.name}`
    );
    assertEquals(gets, ["pods/icd-self"]);
  } finally {
    if (child) {
      child.kill("SIGKILL");
      await child.status;
      await child.stderr.cancel().catch(() => {});
    }
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Signals: SIGINT exits 0, a second signal exits at once, and SIGTERM with the API down still exits within 10 s", async (t) => {
  const server = await startFakeApiServer({ nodes: [NODE] });
  const dir = await Deno.makeTempDir({ prefix: "icd-signals-" });
  try {
    server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    server.kubelet(NODE).setPullDelay("docker.io/library/slow:1", 60_000);
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfig, server.kubeconfigYaml());
    const start = () => {
      const child = spawnDaemon([
        `--kubeconfig=${kubeconfig}`,
        `--node-name=${NODE}`,
        `--pod-namespace=${NS}`,
        "--image=slow:1",
        "--metrics-bind-address=0",
        "--status-bind-address=0",
      ], { denoFlags: [`--allow-read=${kubeconfig}`] });
      const stderr = new Response(child.stderr).text();
      return { child, stderr };
    };
    // A pull pod of this step's daemon: the last step's pod may still be
    // terminating (the simulated kubelet removes it after a delay), and a
    // signal sent on seeing it could reach a daemon that has not yet
    // installed its handlers (killed by the signal: exit 143).
    const pullPods = () =>
      server.list("pods", { namespace: NS, labelSelector: PART_OF })
        .filter((pod) => !pod.metadata.deletionTimestamp).length;
    const exit = async (d: ReturnType<typeof start>) => {
      const started = Date.now();
      const status = await d.child.status;
      return { code: status.code, ms: Date.now() - started, stderr: await d.stderr };
    };

    await t.step("SIGINT: pods cleaned, exit 0", async () => {
      const d = start();
      await waitFor(() => pullPods() === 1, { what: "pull in flight" });
      d.child.kill("SIGINT");
      const { code, stderr } = await exit(d);
      assertEquals(code, 0, stderr);
      assertEquals(pullPods(), 0);
    });

    await t.step("a second signal exits at once with 130", async () => {
      const d = start();
      await waitFor(() => pullPods() === 1, { what: "pull in flight" });
      server.faults.setLatency(5_000); // the clean-up would take a while
      d.child.kill("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 100));
      d.child.kill("SIGTERM");
      const { code, ms, stderr } = await exit(d);
      server.faults.setLatency(0);
      assertEquals(code, 130, stderr);
      assert(ms < 3_000, `took ${ms} ms`);
      assertMatch(stderr, /Second signal, exiting at once/);
      await server.delete("pods", NS, server.list("pods", { namespace: NS })[0].metadata.name!);
      await waitFor(() => server.list("pods", { namespace: NS }).length === 0, {
        what: "the left pull pod gone",
      });
    });

    await t.step("SIGTERM with the API down: out within 10 s, the deadline logged", async () => {
      const d = start();
      await waitFor(() => pullPods() === 1, { what: "pull in flight" });
      server.faults.setLatency(11_000); // every request hangs past the deadline
      d.child.kill("SIGTERM");
      const { code, ms, stderr } = await exit(d);
      server.faults.setLatency(0);
      assert(ms < 10_000, `took ${ms} ms`);
      assertEquals(code, 1, stderr);
      assertMatch(stderr, /Shutdown did not finish in time/);
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("An API server the Deno permissions refuse is named with the permission, not 'fetch failed'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "icd-refused-" });
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://api.example.invalid:6443" } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  const child = spawnDaemon([
    `--kubeconfig=${kubeconfig}`,
    `--node-name=${NODE}`,
    `--pod-namespace=${NS}`,
    "--metrics-bind-address=0",
    "--status-bind-address=0",
  ], { denoFlags: [`--allow-read=${kubeconfig}`] });
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += chunk;
    }
  })();
  // The daemon must keep running on a refused API server: an exit fails the
  // test at once, with the exit status and the whole output.
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);
  try {
    await waitFor(() => /"Watch failed, retrying"/.test(stderr) || exited !== undefined, {
      what: "a failed watch",
      timeoutMs: 20_000,
    });
    if (exited) {
      await reading;
      throw new Error(`The daemon exited (${JSON.stringify(exited)}):\n${stderr}`);
    }
    const line = stderr.split("\n").find((l) => l.includes('"Watch failed, retrying"'))!;
    const error = String(JSON.parse(line).error);
    assertMatch(error, /"api\.example\.invalid"/);
    assertMatch(error, /--allow-net/);
    assert(!/^fetch failed$/.test(error), error);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited already; the assertions above report an early exit.
    }
    await status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  }
});
