import { assertEquals, assertMatch } from "../assert.ts";
import { withServer } from "./test_helpers.ts";

const KUBECTL = "/usr/bin/kubectl";
const hasKubectl = await Deno.stat(KUBECTL).then(() => true, () => false);

const MANIFESTS = `apiVersion: v1
kind: ConfigMap
metadata:
  name: images
  labels: { app.kubernetes.io/part-of: image-cache-daemon }
data:
  images: '["alpine"]'
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-1
spec:
  containers:
  - name: main
    image: nginx:1.27
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: build
spec:
  templates:
  - name: main
    container:
      image: golang:1.23
`;

Deno.test({
  name:
    "a real kubectl can apply -f (validating), get and delete ConfigMaps, pods and WorkflowTemplates over TLS",
  // Only a developer machine without kubectl skips this; in CI a missing kubectl fails it.
  ignore: !hasKubectl && !Deno.env.get("CI"),
  fn: async () => {
    await withServer({ tls: true }, async (server) => {
      await kubectlOn(server, async (run, dir) => {
        await Deno.writeTextFile(`${dir}/manifests.yaml`, MANIFESTS);
        const kubectl = async (...args: string[]) => {
          const result = await run(...args);
          if (!result.ok) throw new Error(`kubectl ${args.join(" ")} failed: ${result.stderr}`);
          return result.stdout;
        };
        assertMatch(await kubectl("version"), /Server Version: v1\.32\.0-fake/);
        const created = await kubectl("apply", "-f", `${dir}/manifests.yaml`);
        assertEquals(created.trim().split("\n"), [
          "configmap/images created",
          "pod/pod-1 created",
          "workflowtemplate.argoproj.io/build created",
        ]);
        const list = JSON.parse(
          await kubectl("get", "configmaps,pods,workflowtemplates", "-o", "json"),
        );
        assertEquals(
          list.items.map((i: { kind: string; metadata: { name: string } }) =>
            `${i.kind}/${i.metadata.name}`
          ),
          [
            "ConfigMap/images",
            "Pod/pod-1",
            "WorkflowTemplate/build",
          ],
        );
        assertMatch(
          await kubectl("get", "cm", "-l", "app.kubernetes.io/part-of=image-cache-daemon"),
          /images/,
        );
        // A second apply finds nothing to change; an edited one patches.
        assertMatch(
          await kubectl("apply", "-f", `${dir}/manifests.yaml`),
          /configmap\/images unchanged/,
        );
        await Deno.writeTextFile(
          `${dir}/manifests.yaml`,
          MANIFESTS.replace(`'["alpine"]'`, `'["alpine", "busybox"]'`),
        );
        assertMatch(
          await kubectl("apply", "-f", `${dir}/manifests.yaml`),
          /configmap\/images configured/,
        );
        assertEquals(
          server.get("configmaps", "default", "images")?.data,
          { images: '["alpine", "busybox"]' },
        );
        await kubectl("delete", "-f", `${dir}/manifests.yaml`, "--wait=false");
        assertEquals(server.list("configmaps", { namespace: "default" }), []);
        assertEquals(server.list("workflowtemplates"), []);
      });
    });
  },
});

/** Runs kubectl against `server` in a scratch HOME; returns its outcome, failed or not. */
async function kubectlOn(
  server: { kubeconfigYaml(): string },
  fn: (kubectl: (...args: string[]) => Promise<KubectlResult>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fake-apiserver-kubectl-" });
  try {
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfigYaml());
    await fn(async (...args) => {
      const out = await new Deno.Command(KUBECTL, {
        args: ["--kubeconfig", `${dir}/kubeconfig`, ...args],
        stdout: "piped",
        stderr: "piped",
        env: { HOME: dir },
      }).output();
      const decoder = new TextDecoder();
      return {
        ok: out.success,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
      };
    }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface KubectlResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Only a developer machine without kubectl skips these; in CI a missing kubectl fails them. */
const kubectlTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !hasKubectl && !Deno.env.get("CI"), fn });

kubectlTest(
  "kubectl apply -f rejects a misspelt field, as a real server with strict field validation does",
  async () => {
    await withServer({}, async (server) => {
      await kubectlOn(server, async (kubectl, dir) => {
        await Deno.writeTextFile(
          `${dir}/typo.yaml`,
          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  images: x\n",
        );
        const result = await kubectl("apply", "-f", `${dir}/typo.yaml`);
        assertEquals(result.ok, false);
        assertMatch(result.stderr, /strict decoding error: unknown field "datta"/);
        assertEquals(server.get("configmaps", "default", "typo"), undefined);
        // Validation off: the unknown field is dropped, the rest is created.
        const lax = await kubectl("apply", "--validate=false", "-f", `${dir}/typo.yaml`);
        assertEquals(lax.ok, true, lax.stderr);
        assertEquals(Object.keys(server.get("configmaps", "default", "typo")!).sort(), [
          "apiVersion",
          "kind",
          "metadata",
        ]);
      });
    });
  },
);

kubectlTest(
  "kubectl apply --server-side creates, then updates, and records its field manager",
  async () => {
    await withServer({}, async (server) => {
      await kubectlOn(server, async (kubectl, dir) => {
        const manifest = (images: string) =>
          `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {team: a}\ndata:\n  images: '${images}'\n`;
        await Deno.writeTextFile(`${dir}/ssa.yaml`, manifest('["alpine"]'));
        const created = await kubectl("apply", "--server-side", "-f", `${dir}/ssa.yaml`);
        assertEquals(created.ok, true, created.stderr);
        assertMatch(created.stdout, /configmap\/ssa serverside-applied/);
        await Deno.writeTextFile(`${dir}/ssa.yaml`, manifest('["nginx"]'));
        const updated = await kubectl("apply", "--server-side", "-f", `${dir}/ssa.yaml`);
        assertEquals(updated.ok, true, updated.stderr);
        const cm = server.get("configmaps", "default", "ssa")!;
        assertEquals(cm.data, { images: '["nginx"]' });
        assertEquals(cm.metadata.labels, { team: "a" });
        const managed = cm.metadata.managedFields as {
          manager: string;
          operation: string;
          fieldsV1: Record<string, unknown>;
        }[];
        assertEquals(managed.map((m) => [m.manager, m.operation]), [["kubectl", "Apply"]]);
        assertEquals(managed[0].fieldsV1, {
          "f:metadata": { "f:labels": { "f:team": {} } },
          "f:data": { "f:images": {} },
        });
      });
    });
  },
);

kubectlTest(
  "kubectl get shows events' type, reason and message, and pods' readiness and status",
  async () => {
    await withServer({ nodes: ["node-1"] }, async (server) => {
      server.create("events", {
        metadata: { namespace: "default", name: "images.1" },
        involvedObject: { kind: "ConfigMap", name: "images", namespace: "default" },
        reason: "InvalidImageList",
        message: "images is not a list",
        type: "Warning",
        source: { component: "image-cache-daemon" },
      });
      server.create("pods", {
        metadata: { namespace: "default", name: "runs" },
        spec: { nodeName: "node-1", containers: [{ name: "main", image: "alpine:3.20" }] },
      });
      server.create("pods", {
        metadata: { namespace: "default", name: "waits" },
        spec: { containers: [{ name: "main", image: "alpine:3.20" }] },
      });
      await server.waitFor("pods", (p) => (p.status as { phase?: string })?.phase === "Running", {
        namespace: "default",
        name: "runs",
      });
      await kubectlOn(server, async (kubectl) => {
        const events = await kubectl("get", "events");
        assertEquals(events.ok, true, events.stderr);
        const [head, row] = events.stdout.trim().split("\n").map((l) => l.split(/\s{2,}/));
        assertEquals(head, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
        assertEquals(row.slice(1), [
          "Warning",
          "InvalidImageList",
          "configmap/images",
          "images is not a list",
        ]);
        const pods = await kubectl("get", "pods");
        assertEquals(pods.ok, true, pods.stderr);
        const lines = pods.stdout.trim().split("\n").map((l) => l.split(/\s+/));
        assertEquals(lines[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assertEquals(lines.slice(1).map((l) => l.slice(0, 4)), [
          ["runs", "1/1", "Running", "0"],
          ["waits", "0/1", "Pending", "0"],
        ]);
      });
    });
  },
);

kubectlTest(
  "kubectl taint adds and removes a node's taint, keeping the others and the status",
  async () => {
    await withServer({ nodes: ["node-1"] }, async (server) => {
      const other = { key: "other.example.com/keep", value: "x", effect: "NoExecute" };
      const node = server.get("nodes", undefined, "node-1")!;
      server.update("nodes", { ...node, spec: { ...node.spec as object, taints: [other] } });
      await kubectlOn(server, async (kubectl) => {
        const key = "startup-taint.cluster-autoscaler.kubernetes.io/images";
        const added = await kubectl("taint", "nodes", "node-1", `${key}=true:NoSchedule`);
        assertEquals(added.ok, true, added.stderr);
        assertMatch(added.stdout, /node\/node-1 tainted/);
        const taints = () =>
          (server.get("nodes", undefined, "node-1")!.spec as { taints?: unknown })
            .taints;
        assertEquals(taints(), [{ key, value: "true", effect: "NoSchedule" }, other]);
        const removed = await kubectl("taint", "nodes", "node-1", `${key}-`);
        assertEquals(removed.ok, true, removed.stderr);
        assertMatch(removed.stdout, /node\/node-1 untainted/);
        assertEquals(taints(), [other]);
        const status = server.get("nodes", undefined, "node-1")!.status as {
          conditions?: { type: string }[];
        };
        assertEquals(status.conditions?.some((c) => c.type === "Ready"), true);
      });
    });
  },
);
