/**
 * The sources' watchers against the fake API server, through the real
 * client-node: add, update, delete, bad edits, 410, dropped watches, 500
 * storms, Argo installed late, and RBAC-restricted namespaces.
 */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import type { KubeObject } from "../testing/fake_apiserver/types.ts";
import { waitFor } from "../testing/wait.ts";
import { DesiredImages } from "../images/desired_images.ts";
import { recordingLogger } from "../log/logger.ts";
import { EventRecorder } from "../kube/events.ts";
import { newConfigMapSource } from "../sources/configmap.ts";
import { newArgoSource } from "../sources/argo.ts";
import type { Source } from "../sources/source.ts";
import { runImagesCommand } from "../cli/images_command.ts";
import { parse } from "yaml";

const SELECTOR = "app.kubernetes.io/part-of=image-cache-daemon";
const LABELS = { "app.kubernetes.io/part-of": "image-cache-daemon" };

interface Harness {
  server: FakeApiServer;
  desired: DesiredImages;
  log: ReturnType<typeof recordingLogger>;
  events: EventRecorder;
  start(source: Source): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function harness(options: Parameters<typeof startFakeApiServer>[0] = {}): Promise<Harness> {
  const server = await startFakeApiServer(options);
  const desired = new DesiredImages();
  const log = recordingLogger();
  const events = new EventRecorder({ kubeConfig: server.kubeConfig(), host: "node-1", log });
  const controller = new AbortController();
  const running: Promise<void>[] = [];
  return {
    server,
    desired,
    log,
    events,
    async start(source) {
      running.push(source.run(controller.signal));
      await source.synced;
    },
    async [Symbol.asyncDispose]() {
      controller.abort();
      await Promise.all(running);
      await events.flush();
      await server.close();
    },
  };
}

function configMap(namespace: string, name: string, data: Record<string, string>, extra = {}) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { namespace, name, labels: LABELS, ...extra },
    data,
  };
}

function cmSource(h: Harness, namespaces?: string[]) {
  return newConfigMapSource({
    kubeConfig: h.server.kubeConfig(),
    labelSelector: SELECTOR,
    namespaces,
    sink: h.desired,
    log: h.log,
    events: h.events,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
  });
}

/** An Argo source of `kind` on the harness, with backoff overrides for the test. */
function argoSource(
  h: Harness,
  kind: Parameters<typeof newArgoSource>[0],
  overrides: Partial<Parameters<typeof newArgoSource>[1]> = {},
) {
  return newArgoSource(kind, {
    kubeConfig: h.server.kubeConfig(),
    sink: h.desired,
    log: h.log,
    events: h.events,
    ...overrides,
  });
}

/** One of issue 13's crash inputs, from `fixtures/argo-hostile/`. */
async function hostileFixture(name: string): Promise<KubeObject & { spec: unknown }> {
  const url = new URL(`fixtures/argo-hostile/${name}`, import.meta.url);
  return parse(await Deno.readTextFile(url));
}

function workflowTemplate(namespace: string, name: string, image: string) {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplate",
    metadata: { namespace, name },
    spec: {
      entrypoint: "main",
      templates: [{ name: "main", container: { image, command: ["true"] } }],
    },
  };
}

const ALPINE = "docker.io/library/alpine:latest";
const NGINX = "docker.io/library/nginx:1.27";
const BUSYBOX = "docker.io/library/busybox:1.36";

Deno.test("ConfigMap source follows labelled ConfigMaps through add, update and delete", async () => {
  await using h = await harness();
  h.server.create("configmaps", configMap("team-a", "images", { images: '["alpine"]' }));
  h.server.create("configmaps", {
    ...configMap("team-a", "unlabelled", { images: '["redis"]' }),
    metadata: { namespace: "team-a", name: "unlabelled" },
  });
  const source = cmSource(h);
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE]);
  assertEquals(source.status().synced, true);

  const cm = h.server.get("configmaps", "team-a", "images")!;
  h.server.update("configmaps", { ...cm, data: { images: "- nginx:1.27\n- busybox:1.36\n" } });
  await waitFor(() => h.desired.has(NGINX) && !h.desired.has(ALPINE), { what: "update" });
  assertEquals(h.desired.refs(), [BUSYBOX, NGINX]);

  h.server.create("configmaps", configMap("team-b", "more", { images: '["alpine"]' }));
  await waitFor(() => h.desired.has(ALPINE), { what: "second ConfigMap" });

  h.server.delete("configmaps", "team-a", "images");
  await waitFor(() => !h.desired.has(NGINX), { what: "delete" });
  assertEquals(h.desired.refs(), [ALPINE]);
});

Deno.test("ConfigMap source reads the key named by the image-cache-daemon/key annotation", async () => {
  await using h = await harness();
  h.server.create(
    "configmaps",
    configMap("ns", "custom", { "prepull.yaml": "- nginx:1.27" }, {
      annotations: { "image-cache-daemon/key": "prepull.yaml" },
    }),
  );
  await h.start(cmSource(h));
  assertEquals(h.desired.refs(), [NGINX]);
});

Deno.test("ConfigMap edited good → bad keeps its last good set, reports once with an Event, and recovers", async () => {
  await using h = await harness();
  h.server.create("configmaps", configMap("ns", "list", { images: '["alpine"]' }));
  const source = cmSource(h);
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE]);

  const current = () => h.server.get("configmaps", "ns", "list") as KubeObject;
  h.server.update("configmaps", { ...current(), data: { images: "[not json" } });
  await waitFor(() => source.status().errors === 1, { what: "error reported" });
  assertEquals(h.desired.refs(), [ALPINE], "last good set kept");
  const errors = h.log.lines.filter((l) => l.msg === "Invalid image list");
  assertEquals(errors.length, 1);
  assertEquals(errors[0].origin, "configmap/ns/list");
  await h.events.flush();
  const events = h.server.list("events", { namespace: "ns" }) as unknown as {
    involvedObject: { kind: string; name: string };
    reason: string;
    type: string;
  }[];
  assertEquals(events.length, 1);
  assertEquals(events[0].involvedObject.kind, "ConfigMap");
  assertEquals(events[0].involvedObject.name, "list");
  assertEquals(events[0].reason, "InvalidImageList");
  assertEquals(events[0].type, "Warning");

  // The same bad data again (a relabel, say) is not reported again.
  h.server.update("configmaps", {
    ...current(),
    metadata: { ...current().metadata, annotations: { touched: "1" } },
  });
  // A later change the source reports: the watch delivers in order, so once
  // it shows, the source has handled the relabel too.
  h.server.create("configmaps", configMap("ns", "barrier", { images: '["busybox:1"]' }));
  await waitFor(() => h.desired.has("docker.io/library/busybox:1"), { what: "barrier" });
  assertEquals(h.log.lines.filter((l) => l.msg === "Invalid image list").length, 1);
  h.server.delete("configmaps", "ns", "barrier");

  h.server.update("configmaps", { ...current(), data: { images: '["nginx:1.27"]' } });
  await waitFor(() => h.desired.has(NGINX) && source.status().errors === 0, { what: "recovery" });
  assertEquals(h.desired.refs(), [NGINX]);
});

Deno.test("ConfigMap created with bad data contributes nothing and gets a Warning Event", async () => {
  await using h = await harness();
  h.server.create("configmaps", configMap("ns", "bad", { images: '{"not": "a list"}' }));
  h.server.create("configmaps", configMap("ns", "refs", { images: '["alpine", "Bad:Ref:"]' }));
  const source = cmSource(h);
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE]);
  assertEquals(source.status().errors, 1);
  await h.events.flush();
  const reasons = (h.server.list("events", { namespace: "ns" }) as unknown as {
    reason: string;
    involvedObject: { name: string };
  }[]).map((e) => `${e.involvedObject.name}:${e.reason}`).sort();
  assertEquals(reasons, ["bad:InvalidImageList", "refs:InvalidImageReference"]);
});

Deno.test("A 410 Gone relist heals changes made while the watch history was compacted", async () => {
  await using h = await harness({ retainedEvents: 5 });
  h.server.create("configmaps", configMap("ns", "a", { images: '["alpine"]' }));
  const source = cmSource(h);
  await h.start(source);
  h.server.faults.dropWatches();
  for (let i = 0; i < 20; i++) {
    h.server.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "noise", name: `n${i}` },
      data: {},
    });
  }
  h.server.delete("configmaps", "ns", "a");
  h.server.create("configmaps", configMap("ns", "b", { images: '["nginx:1.27"]' }));
  h.server.compact();
  await waitFor(() => h.desired.has(NGINX) && !h.desired.has(ALPINE), { what: "relist" });
  assert(source.status().restarts >= 1);
});

Deno.test("Sources survive dropped watches and a 500 storm without losing images", async () => {
  await using h = await harness();
  h.server.create("configmaps", configMap("ns", "a", { images: '["alpine"]' }));
  const source = cmSource(h);
  await h.start(source);
  for (let round = 0; round < 3; round++) {
    h.server.faults.dropWatches();
    h.server.faults.failNext(5, 500);
    h.server.create(
      "configmaps",
      configMap("ns", `r${round}`, { images: `["busybox:1.${round}"]` }),
    );
    await waitFor(() => h.desired.has(`docker.io/library/busybox:1.${round}`), {
      what: `round ${round}`,
    });
    assert(h.desired.has(ALPINE), "nothing lost");
  }
  assert(source.status().restarts >= 1);
});

Deno.test("Argo sources report unavailable without Argo, count as synced, and pick Argo up when installed", async () => {
  await using h = await harness({ argoInstalled: false });
  const source = argoSource(h, "workflowtemplate", { backoffBaseMs: 20, backoffMaxMs: 100 });
  await h.start(source);
  assertEquals(source.status().available, false);
  assertMatch(source.status().reason ?? "", /is the CRD installed/);
  h.server.installArgo();
  h.server.create("workflowtemplates", workflowTemplate("wf", "build", "nginx:1.27"));
  await waitFor(() => h.desired.has(NGINX), { what: "Argo picked up" });
  assertEquals(source.status().available, true);
});

Deno.test("Argo sources read WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows", async () => {
  await using h = await harness();
  h.server.create("workflowtemplates", workflowTemplate("wf", "a", "alpine"));
  h.server.create("clusterworkflowtemplates", {
    ...workflowTemplate("", "cluster", "nginx:1.27"),
    kind: "ClusterWorkflowTemplate",
    metadata: { name: "cluster" },
  });
  h.server.create("cronworkflows", {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "CronWorkflow",
    metadata: { namespace: "wf", name: "nightly" },
    spec: {
      schedule: "0 0 * * *",
      workflowSpec: {
        entrypoint: "main",
        templates: [{ name: "main", script: { image: "busybox:1.36", source: "echo" } }],
      },
    },
  });
  for (const kind of ["workflowtemplate", "clusterworkflowtemplate", "cronworkflow"] as const) {
    await h.start(argoSource(h, kind));
  }
  assertEquals(h.desired.refs(), [ALPINE, BUSYBOX, NGINX]);
  assertEquals(h.desired.originsOf(NGINX), ["clusterworkflowtemplate/cluster"]);
  assertEquals(h.desired.originsOf(BUSYBOX), ["cronworkflow/wf/nightly"]);
  h.server.delete("workflowtemplates", "wf", "a");
  await waitFor(() => !h.desired.has(ALPINE), { what: "template deleted" });
});

Deno.test("ConfigMap source reports a forbidden cluster-wide list and works with --configmap-namespaces", async () => {
  await using h = await harness();
  h.server.authz.deny({ resource: "configmaps", namespace: "" });
  h.server.create("configmaps", configMap("allowed", "a", { images: '["alpine"]' }));
  const clusterWide = cmSource(h);
  await h.start(clusterWide);
  assertEquals(clusterWide.status().available, false);
  assertMatch(clusterWide.status().reason ?? "", /Forbidden/);
  assertEquals(h.desired.size, 0);

  const scoped = cmSource(h, ["allowed"]);
  await h.start(scoped);
  assertEquals(scoped.status().available, true);
  assertEquals(h.desired.refs(), [ALPINE]);
});

Deno.test("RBAC revoked for a namespace keeps that namespace's images (nothing lost)", async () => {
  await using h = await harness();
  h.server.create("configmaps", configMap("a", "x", { images: '["alpine"]' }));
  h.server.create("configmaps", configMap("b", "y", { images: '["nginx:1.27"]' }));
  const source = cmSource(h, ["a", "b"]);
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE, NGINX]);
  h.server.authz.deny({ resource: "configmaps", namespace: "b" });
  h.server.faults.dropWatches();
  await waitFor(() => source.status().available === false, { what: "forbidden seen" });
  assertEquals(h.desired.refs(), [ALPINE, NGINX]);
});

Deno.test("A brief 404 (CRD routes not served) keeps Argo's images; a lasting one drops them", async () => {
  await using h = await harness();
  h.server.create("workflowtemplates", workflowTemplate("wf", "a", "nginx:1.27"));
  const source = argoSource(h, "workflowtemplate", {
    backoffBaseMs: 20,
    backoffMaxMs: 50,
    unavailableBackoffMaxMs: 50,
    goneAfterMs: 1500,
  });
  await h.start(source);
  assertEquals(h.desired.refs(), [NGINX]);
  h.server.uninstallArgo({ keepObjects: true });
  await waitFor(() => source.status().available === false, { what: "404 seen" });
  assertEquals(h.desired.refs(), [NGINX], "a brief 404 loses nothing");
  h.server.installArgo();
  await waitFor(() => source.status().available, { what: "back" });
  assertEquals(h.desired.refs(), [NGINX]);

  h.server.uninstallArgo({ keepObjects: true });
  await waitFor(() => h.desired.size === 0, { what: "dropped after goneAfterMs" });
  assertEquals(source.status().available, false);
});

Deno.test("A relist applies new objects before dropping deleted ones, so a moved image is never removed", async () => {
  await using h = await harness({ retainedEvents: 3 });
  h.server.create("configmaps", configMap("ns", "old", { images: '["alpine"]' }));
  await h.start(cmSource(h));
  const removed: string[] = [];
  h.desired.subscribe((change) => removed.push(...change.removed));
  h.server.faults.dropWatches();
  h.server.delete("configmaps", "ns", "old");
  h.server.create("configmaps", configMap("ns", "new", { images: '["alpine"]' }));
  for (let i = 0; i < 5; i++) {
    h.server.create("configmaps", configMap("noise", `n${i}`, { images: "[]" }));
  }
  h.server.compact();
  await waitFor(() => h.desired.originsOf(ALPINE).join() === "configmap/ns/new", {
    what: "moved origin",
  });
  assertEquals(removed, []);
});

Deno.test("A WorkflowTemplate with null templates is reported once, with an Event, and contributes nothing", async () => {
  await using h = await harness();
  h.server.create("workflowtemplates", {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "WorkflowTemplate",
    metadata: { namespace: "wf", name: "broken" },
    spec: { templates: null },
  });
  h.server.create("workflowtemplates", workflowTemplate("wf", "fine", "alpine"));
  const source = argoSource(h, "workflowtemplate");
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE]);
  assertEquals(source.status().errors, 1);
  const lines = h.log.lines.filter((l) => l.msg === "Invalid image list");
  assertEquals(lines.map((l) => l.error), [
    'WorkflowTemplate "wf/broken": spec.templates is null, expected a list of templates',
  ]);
  await h.events.flush();
  const events = h.server.list("events", { namespace: "wf" }) as unknown as {
    reason: string;
    involvedObject: { kind: string; name: string };
  }[];
  assertEquals(events.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}:${e.reason}`), [
    "WorkflowTemplate/broken:InvalidImageList",
  ]);
});

Deno.test("An Argo source that RBAC forbids reports it, counts as synced, keeps nothing lost, and recovers", async () => {
  await using h = await harness();
  const undo = h.server.authz.deny({ resource: "workflowtemplates" });
  h.server.create("workflowtemplates", workflowTemplate("wf", "a", "nginx:1.27"));
  const source = argoSource(h, "workflowtemplate", {
    backoffBaseMs: 20,
    backoffMaxMs: 50,
    unavailableBackoffMaxMs: 50,
  });
  await h.start(source);
  assertEquals(source.status().synced, true);
  assertEquals(source.status().available, false);
  assertMatch(
    source.status().reason ?? "",
    /Forbidden \(check the RBAC rules\).*workflowtemplates/,
  );
  assertEquals(h.desired.size, 0);
  undo();
  await waitFor(() => h.desired.has(NGINX), { what: "allowed again" });
  assertEquals(source.status().available, true);
});

Deno.test("An Argo object past a limit is rejected whole, reported with its template, step and limit, and keeps its last good images", async () => {
  await using h = await harness();
  h.server.create("workflowtemplates", workflowTemplate("wf", "grow", "nginx:1.27"));
  h.server.create("workflowtemplates", workflowTemplate("wf", "other", "alpine"));
  const source = argoSource(h, "workflowtemplate");
  await h.start(source);
  assertEquals(h.desired.refs(), [ALPINE, NGINX]);

  // The crash input: a template calling itself with a parameter that doubles.
  const current = h.server.get("workflowtemplates", "wf", "grow") as KubeObject;
  const doubling = await hostileFixture("doubling.workflowtemplate.yaml");
  h.server.update("workflowtemplates", { ...current, spec: doubling.spec });
  await waitFor(() => source.status().errors === 1, { what: "limit reported" });
  assertEquals(h.desired.refs(), [ALPINE, NGINX], "last good set kept, the other object untouched");
  const lines = h.log.lines.filter((l) => l.msg === "Invalid image list");
  assertEquals(lines.length, 1);
  assertEquals(lines[0].limit, "MAX_EXPANDED_LENGTH");
  assertEquals(lines[0].kept, "last good set");
  assertEquals(
    lines[0].error,
    'WorkflowTemplate "wf/grow": template "grow": an expanded string passes 65536 characters (limit MAX_EXPANDED_LENGTH = 65536)',
  );
  await h.events.flush();
  const events = h.server.list("events", { namespace: "wf" }) as unknown as {
    reason: string;
    type: string;
    message: string;
    involvedObject: { kind: string; name: string };
  }[];
  assertEquals(events.map((e) => `${e.type} ${e.involvedObject.name}:${e.reason}`), [
    "Warning grow:ObjectLimitExceeded",
  ]);
  assertEquals(events[0].message, lines[0].error);

  // withSequence with a huge format width, in a new object: rejected, nothing else lost.
  h.server.create("workflowtemplates", await hostileFixture("huge-format.workflowtemplate.yaml"));
  await waitFor(() => source.status().errors === 2, { what: "second limit reported" });
  const pad = h.log.lines.filter((l) =>
    l.msg === "Invalid image list" && l.origin === "workflowtemplate/tenant/pad"
  );
  assertEquals(pad.map((l) => l.limit), ["MAX_SEQUENCE_WIDTH"]);
  assertMatch(String(pad[0].error), /^WorkflowTemplate "tenant\/pad": template "pad", step "s": /);
  assertEquals(h.desired.refs(), [ALPINE, NGINX]);
});

Deno.test("The images command rejects exactly the Argo objects the daemon's sources reject, with the same messages", async () => {
  await using h = await harness();
  let deep: Record<string, unknown> = { container: { image: "alpine" } };
  for (let i = 0; i < 40; i++) deep = { steps: [[{ name: `s${i}`, inline: deep }]] };
  const odd: Record<string, unknown> = {
    "no-spec": undefined,
    "null-templates": { templates: null },
    "deep": { templates: [{ name: "deep", ...deep }] },
    "map-image": { templates: [{ name: "a", container: { image: { name: "x" } } }] },
    "huge-loop": {
      templates: [{
        name: "a",
        steps: [[{
          name: "s",
          withSequence: { count: "100000" },
          inline: { container: { image: "a:{{item}}" } },
        }]],
      }],
    },
  };
  for (const [name, spec] of Object.entries(odd)) {
    h.server.create("workflowtemplates", {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "wf", name },
      ...(spec === undefined ? {} : { spec }),
    });
  }
  h.server.create("workflowtemplates", workflowTemplate("wf", "fine", "alpine"));
  const source = argoSource(h, "workflowtemplate");
  await h.start(source);
  const daemon = h.log.lines.filter((l) => l.msg === "Invalid image list")
    .map((l) => ({ origin: String(l.origin), error: String(l.error) }))
    .sort((a, b) => a.origin < b.origin ? -1 : 1);
  assertEquals(daemon.length, Object.keys(odd).length);

  // The same objects, as `kubectl get workflowtemplates -A -o yaml` would give them.
  const list = JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: h.server.list("workflowtemplates"),
  });
  let stdout = "";
  const code = await runImagesCommand(["-f", "-", "-o", "json"], {
    readFile: () => Promise.reject(new Error("not used")),
    readDir: () => Promise.reject(new Error("not used")),
    isDirectory: () => Promise.reject(new Error("not used")),
    stdin: () => Promise.resolve(list),
    print: (text) => stdout += text,
    printError: () => {},
  });
  assertEquals(code, 1);
  const report = JSON.parse(stdout);
  const cli = (report.errors as { origin: string; error: string }[])
    .sort((a, b) => a.origin < b.origin ? -1 : 1);
  assertEquals(cli, daemon);
  assertEquals(report.images.map((i: { image: string }) => i.image), h.desired.refs());
});

Deno.test("Objects nested 2,000 deep arrive through the API and watch, and are read or their item rejected with a reason, never a stack overflow", async () => {
  await using h = await harness();
  let deep: unknown = "x";
  for (let i = 0; i < 2_000; i++) deep = [deep];
  // The fake API server copies objects with structuredClone, which stops
  // near 5,000 levels; JSON.parse and the extraction have no such limit.
  // Argo keeps fields it does not know (and the daemon does not read them).
  const junk = workflowTemplate("wf", "junk", "nginx:1.27");
  (junk.spec.templates[0] as Record<string, unknown>).metadata = { annotations: { deep } };
  h.server.create("workflowtemplates", junk);
  const source = argoSource(h, "workflowtemplate");
  await h.start(source);
  assertEquals(h.desired.refs(), [NGINX]);
  // Used whole as an item, arriving on a watch event: serialised, and the
  // reference it makes rejected with a reason.
  const itemized = workflowTemplate("wf", "item", "alpine");
  h.server.create("workflowtemplates", {
    ...itemized,
    spec: {
      ...itemized.spec,
      templates: [
        {
          name: "main",
          inputs: { parameters: [{ name: "p" }] },
          container: { image: "alpine:{{inputs.parameters.p}}", command: [] },
        },
        {
          name: "loop",
          steps: [[{
            name: "s",
            template: "main",
            withItems: [deep],
            arguments: { parameters: [{ name: "p", value: "{{item}}" }] },
          }]],
        },
      ],
      entrypoint: "loop",
    },
  });
  await waitFor(
    () =>
      h.log.lines.some((l) =>
        l.msg === "Rejected image references" && l.origin === "workflowtemplate/wf/item"
      ),
    { what: "the item's reference rejected" },
  );
  const rejected = h.log.lines.find((l) =>
    l.msg === "Rejected image references" && l.origin === "workflowtemplate/wf/item"
  );
  assertMatch(JSON.stringify(rejected?.samples), /invalid tag \\"\[\[\[\[/);
  assertEquals(source.status().errors, 0);
  assertEquals(h.desired.refs(), [NGINX]);
});
