/**
 * `deno task demo`: a fake 3-node cluster with ConfigMaps and Argo templates,
 * daemon processes under the production permission set, and progress until
 * every node holds every desired image. The default layout is the split one:
 * one aggregator (`--role=aggregator`) publishes the desired set and one node
 * daemon per node (`--role=node`) pulls it; `--layout=single` runs one
 * `--role=all` daemon per node instead.
 *
 * @module
 */
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import type { KubeObject } from "../testing/fake_apiserver/mod.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { imagesFromConfigMap } from "../sources/configmap_images.ts";
import {
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowTemplate,
} from "../sources/argo_images.ts";
import { spawnDaemon } from "../testing/daemon_process.ts";
import { parseFlags } from "../config/flags.ts";
import { PUBLISHED_SET_SELECTOR, readShard, viewShards } from "../publication/published_set.ts";

const NAMESPACE = "image-cache-daemon";
const NODES = ["node-1", "node-2", "node-3"];
const PART_OF = { "app.kubernetes.io/part-of": "image-cache-daemon" };

const encoder = new TextEncoder();
const out = (text: string) => Deno.stdout.writeSync(encoder.encode(text + "\n"));

/** The objects the demo cluster starts with. */
function demoObjects(): { resource: string; obj: KubeObject }[] {
  const wt = (name: string, templates: unknown[], extra: Record<string, unknown> = {}) => ({
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplate",
    metadata: { namespace: "argo", name },
    spec: { entrypoint: "main", templates, ...extra },
  });
  return [
    {
      resource: "configmaps",
      obj: {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: "platform", name: "base-images", labels: PART_OF },
        data: { images: '["alpine:3.20", "busybox:1.36", "python:3.12-slim"]' },
      },
    },
    {
      resource: "configmaps",
      obj: {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          namespace: "ml",
          name: "training",
          labels: PART_OF,
          annotations: { "image-cache-daemon/key": "prepull.yaml" },
        },
        data: { "prepull.yaml": "- pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime\n- nginx:1.27\n" },
      },
    },
    {
      resource: "configmaps",
      obj: {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { namespace: "team-x", name: "typo", labels: PART_OF },
        data: { images: '["Alpine:latest", "{{inputs.parameters.image}}"]' },
      },
    },
    {
      resource: "workflowtemplates",
      obj: wt("ci", [
        {
          name: "main",
          steps: [[{ name: "build", template: "build" }, { name: "lint", template: "lint" }]],
        },
        { name: "build", container: { image: "golang:1.23", command: ["go", "build"] } },
        { name: "lint", script: { image: "node:22-alpine", source: "npx eslint ." } },
      ]),
    },
    {
      resource: "workflowtemplates",
      obj: wt("etl", [
        {
          name: "main",
          inputs: { parameters: [{ name: "image", value: "postgres:16" }] },
          container: { image: "{{inputs.parameters.image}}" },
          sidecars: [{ name: "proxy", image: "envoyproxy/envoy:v1.31.0" }],
        },
      ]),
    },
    {
      resource: "clusterworkflowtemplates",
      obj: {
        apiVersion: "argoproj.io/v1alpha1",
        kind: "ClusterWorkflowTemplate",
        metadata: { name: "shared-notify" },
        spec: { templates: [{ name: "notify", container: { image: "curlimages/curl:8.9.1" } }] },
      },
    },
    {
      resource: "cronworkflows",
      obj: {
        apiVersion: "argoproj.io/v1alpha1",
        kind: "CronWorkflow",
        metadata: { namespace: "argo", name: "nightly-report" },
        spec: {
          schedule: "0 2 * * *",
          workflowSpec: {
            entrypoint: "main",
            templates: [{ name: "main", container: { image: "python:3.12-slim" } }],
          },
        },
      },
    },
  ];
}

/** The references the daemons should cache, computed with the daemon's own extraction. */
export function expectedImages(objects: { resource: string; obj: KubeObject }[]): string[] {
  const desired = new DesiredImages();
  for (const { resource, obj } of objects) {
    const origin = `${resource}/${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
    try {
      const images = resource === "configmaps"
        ? imagesFromConfigMap(obj).images
        : resource === "workflowtemplates"
        ? imagesFromWorkflowTemplate(obj)
        : resource === "clusterworkflowtemplates"
        ? imagesFromClusterWorkflowTemplate(obj)
        : imagesFromCronWorkflow(obj);
      desired.set(origin, images);
    } catch {
      // A bad object contributes nothing, as in the daemon.
    }
  }
  return desired.refs();
}

async function main(args: string[]): Promise<number> {
  const { flags } = parseFlags(args, [
    { name: "verbose", type: "bool", help: "show the daemons' info logs" },
    { name: "timeout", type: "string", help: "seconds before giving up" },
    { name: "layout", type: "string", help: "split (default) or single" },
  ]);
  const layout = flags.layout ?? "split";
  if (layout !== "split" && layout !== "single") {
    out(`--layout ${JSON.stringify(layout)}: expected split or single`);
    return 2;
  }
  const split = layout === "split";
  const timeoutMs = Number(flags.timeout ?? 90) * 1000;
  const server = await startFakeApiServer({ nodes: NODES });
  for (const node of NODES) server.kubelet(node).defaultPullDelayMs = 150;
  const objects = demoObjects();
  for (const { resource, obj } of objects) {
    server.create(resource as Parameters<typeof server.create>[0], obj);
  }
  // A big image pulls slowly, as in life.
  for (const node of NODES) {
    server.kubelet(node).setPullDelay(
      "docker.io/pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
      1200 + 400 * NODES.indexOf(node),
    );
  }
  const expected = expectedImages(objects);
  const dir = await Deno.makeTempDir({ prefix: "image-cache-demo-" });
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfig, server.kubeconfigYaml());
  out(`Fake cluster at ${server.url} with nodes ${NODES.join(", ")}`);
  out(
    `Objects: ${objects.length} (ConfigMaps, WorkflowTemplates, a ClusterWorkflowTemplate, a CronWorkflow)`,
  );
  out(`Desired images (${expected.length}):`);
  for (const ref of expected) out(`  ${ref}`);
  const logFlags = [
    "--metrics-bind-address=0",
    "--status-bind-address=0",
    "--log-format=text",
    `--log-level=${flags.verbose === "true" ? "info" : "warn"}`,
  ];
  let aggregator: Deno.ChildProcess | undefined;
  if (split) {
    out(
      "Layout: split. One aggregator (--role=aggregator) watches the sources and publishes the desired set;",
    );
    out(
      "one node daemon per node (--role=node) watches only that set. All under -P=daemon.",
    );
    aggregator = spawnDaemon([
      `--kubeconfig=${kubeconfig}`,
      `--pod-namespace=${NAMESPACE}`,
      "--pod-name=image-cache-daemon-aggregator-0",
      "--role=aggregator",
      ...logFlags,
    ], { denoFlags: [`--allow-read=${kubeconfig}`] });
    pipeLines(aggregator.stderr, "[aggregator] ");
  } else {
    out(`Layout: single. One daemon per node (--role=all) under -P=daemon…`);
  }

  const daemons = NODES.map((node) => {
    const self = server.create("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { namespace: NAMESPACE, name: `image-cache-daemon-${node}` },
      spec: {
        containers: [{
          name: "daemon",
          image: "ghcr.io/image-cache-daemon/image-cache-daemon:0.1.0",
        }],
      },
    });
    const child = spawnDaemon([
      `--kubeconfig=${kubeconfig}`,
      `--node-name=${node}`,
      `--pod-namespace=${NAMESPACE}`,
      `--pod-name=${self.metadata.name}`,
      `--pod-uid=${self.metadata.uid}`,
      `--role=${split ? "node" : "all"}`,
      "--max-concurrent-pulls=3",
      "--resync-period=0",
      ...logFlags,
    ], { denoFlags: [`--allow-read=${kubeconfig}`] });
    pipeLines(child.stderr, `[${node}] `);
    return { node, child };
  });

  const started = Date.now();
  const present = (node: string) => {
    const names = new Set(server.kubelet(node).imagesPresent());
    return expected.filter((ref) => names.has(ref)).length;
  };
  let done = false;
  let last = "";
  let announced = 0;
  const publishedSet = () =>
    viewShards(
      server.list("configmaps", { namespace: NAMESPACE, labelSelector: PUBLISHED_SET_SELECTOR })
        .map((cm) => readShard(cm as never)),
    ).complete;
  while (Date.now() - started < timeoutMs) {
    const set = split ? publishedSet() : undefined;
    if (set && set.generation !== announced) {
      announced = set.generation;
      out(
        `  published set: generation ${set.generation}, ${set.images.length} images in ${set.shards.length} ConfigMap(s) labelled ${PUBLISHED_SET_SELECTOR}`,
      );
    }
    const line = NODES.map((n) => `${n} ${present(n)}/${expected.length}`).join("   ");
    if (line !== last) {
      out(`  ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s  ${line}`);
      last = line;
    }
    if (NODES.every((n) => present(n) === expected.length)) {
      done = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const leftover = () =>
    server.list("pods", {
      namespace: NAMESPACE,
      labelSelector: "app.kubernetes.io/part-of=image-cache-daemon",
    }).length;
  for (const { child } of daemons) child.kill("SIGTERM");
  aggregator?.kill("SIGTERM");
  const codes = await Promise.all(daemons.map(({ child }) => child.status.then((s) => s.code)));
  const aggregatorCode = aggregator ? (await aggregator.status).code : 0;
  out("");
  out("Node      images  kubelet pulls  daemon exit");
  for (const [i, node] of NODES.entries()) {
    const pulls = server.kubelet(node).pulls.length;
    out(
      `${node.padEnd(9)} ${`${present(node)}/${expected.length}`.padEnd(7)} ${
        String(pulls).padEnd(14)
      } ${codes[i]}`,
    );
  }
  if (aggregator) out(`aggregator exit ${aggregatorCode}`);
  out(`Pull pods left behind: ${leftover()}`);
  const events = server.list("events").filter((e) =>
    (e as { type?: string }).type === "Warning"
  ) as unknown as {
    involvedObject: { kind: string; namespace?: string; name: string };
    message: string;
  }[];
  if (events.length) {
    out("Warning events (bad input is reported, never pulled):");
    for (const e of events) {
      out(
        `  ${e.involvedObject.kind} ${e.involvedObject.namespace}/${e.involvedObject.name}: ${e.message}`,
      );
    }
  }
  await server.close();
  await Deno.remove(dir, { recursive: true });
  if (!done) {
    out(`Not every node held every image within ${timeoutMs / 1000}s`);
    return 1;
  }
  out(
    `Every node holds all ${expected.length} desired images (${
      ((Date.now() - started) / 1000).toFixed(1)
    }s).`,
  );
  return codes.every((c) => c === 0) && aggregatorCode === 0 ? 0 : 1;
}

async function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) !== -1) {
      out(prefix + buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
