import { CoreV1Api, CustomObjectsApi, type V1ConfigMap, type V1Pod } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { rejection, withServer } from "./test_helpers.ts";

const cm = (
  name: string,
  labels: Record<string, string> = {},
  namespace = "default",
): V1ConfigMap => ({
  metadata: { name, namespace, labels },
  data: { k: name },
});

Deno.test("create assigns uid, creationTimestamp and a growing resourceVersion; get returns it", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const a = await core.createNamespacedConfigMap({ namespace: "default", body: cm("a") });
    const b = await core.createNamespacedConfigMap({ namespace: "default", body: cm("b") });
    assertMatch(a.metadata!.uid!, /^[0-9a-f-]{36}$/);
    assert(a.metadata!.creationTimestamp instanceof Date);
    assert(Number(b.metadata!.resourceVersion) > Number(a.metadata!.resourceVersion));
    const got = await core.readNamespacedConfigMap({ namespace: "default", name: "a" });
    assertEquals(got.data, { k: "a" });
    assertEquals(got.metadata!.resourceVersion, a.metadata!.resourceVersion);
  });
});

Deno.test("create with generateName appends a 5-character suffix", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const made = await core.createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { generateName: "pull-" } },
    });
    assertMatch(made.metadata!.name!, /^pull-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });
});

Deno.test("errors carry kube-apiserver's Status bodies", async (t) => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("taken") });
    const cases: {
      name: string;
      call: () => Promise<unknown>;
      code: number;
      reason: string;
      message: string | RegExp;
    }[] = [
      {
        name: "409 AlreadyExists",
        call: () => core.createNamespacedConfigMap({ namespace: "default", body: cm("taken") }),
        code: 409,
        reason: "AlreadyExists",
        message: 'configmaps "taken" already exists',
      },
      {
        name: "422 Invalid for a name that is not a DNS-1123 subdomain",
        call: () => core.createNamespacedConfigMap({ namespace: "default", body: cm("Bad_Name") }),
        code: 422,
        reason: "Invalid",
        message:
          /^ConfigMap "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
      },
      {
        name: "422 Invalid without name or generateName",
        call: () => core.createNamespacedConfigMap({ namespace: "default", body: { data: {} } }),
        code: 422,
        reason: "Invalid",
        message:
          'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
      },
      {
        name: "404 NotFound on delete",
        call: () => core.deleteNamespacedConfigMap({ namespace: "default", name: "missing" }),
        code: 404,
        reason: "NotFound",
        message: 'configmaps "missing" not found',
      },
      {
        name: "404 for a namespace that does not exist",
        call: () =>
          core.createNamespacedConfigMap({ namespace: "nowhere", body: cm("x", {}, "nowhere") }),
        code: 404,
        reason: "NotFound",
        message: 'namespaces "nowhere" not found',
      },
      {
        name: "400 for a bad label selector",
        call: () => core.listNamespacedConfigMap({ namespace: "default", labelSelector: "a in (" }),
        code: 400,
        reason: "BadRequest",
        message: /unable to parse requirement/,
      },
      {
        name: "400 for an unsupported field selector",
        call: () =>
          core.listNamespacedConfigMap({ namespace: "default", fieldSelector: "data.k=a" }),
        code: 400,
        reason: "BadRequest",
        message: "field label not supported: data.k",
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const { code, body } = await rejection(c.call());
        assertEquals(code, c.code);
        assertEquals(body.kind, "Status");
        assertEquals(body.apiVersion, "v1");
        assertEquals(body.status, "Failure");
        assertEquals(body.reason, c.reason);
        assertEquals(body.code, c.code);
        if (typeof c.message === "string") assertEquals(body.message, c.message);
        else assertMatch(String(body.message), c.message);
      });
    }
  });
});

Deno.test("update with a stale resourceVersion is a 409 Conflict with the real message", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const first = await core.createNamespacedConfigMap({ namespace: "default", body: cm("c") });
    const second = await core.replaceNamespacedConfigMap({
      namespace: "default",
      name: "c",
      body: { ...first, data: { k: "2" } },
    });
    assert(Number(second.metadata!.resourceVersion) > Number(first.metadata!.resourceVersion));
    const { code, body } = await rejection(
      core.replaceNamespacedConfigMap({
        namespace: "default",
        name: "c",
        body: { ...first, data: { k: "3" } },
      }),
    );
    assertEquals(code, 409);
    assertEquals(body.reason, "Conflict");
    assertEquals(
      body.message,
      'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again',
    );
    assertEquals(body.details, { name: "c", kind: "configmaps" });
  });
});

Deno.test("a no-op update keeps the resourceVersion", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const first = await core.createNamespacedConfigMap({ namespace: "default", body: cm("same") });
    const again = await core.replaceNamespacedConfigMap({
      namespace: "default",
      name: "same",
      body: first,
    });
    assertEquals(again.metadata!.resourceVersion, first.metadata!.resourceVersion);
  });
});

Deno.test("list filters by label selector with the full syntax and by field selector", async (t) => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    server.create("configmaps", cm("a", { app: "x", tier: "web" }));
    server.create("configmaps", cm("b", { app: "y", tier: "db" }));
    server.create("configmaps", cm("c", { app: "z" }));
    server.create("configmaps", cm("d", { app: "x" }, "other"));
    const cases: [string, { labelSelector?: string; fieldSelector?: string }, string[]][] = [
      ["=", { labelSelector: "app=x" }, ["a"]],
      ["==", { labelSelector: "app==y" }, ["b"]],
      ["!=", { labelSelector: "app!=x" }, ["b", "c"]],
      ["in", { labelSelector: "app in (x,z)" }, ["a", "c"]],
      ["notin", { labelSelector: "app notin (x,z)" }, ["b"]],
      ["exists", { labelSelector: "tier" }, ["a", "b"]],
      ["!key", { labelSelector: "!tier" }, ["c"]],
      ["combined", { labelSelector: "tier,app!=y" }, ["a"]],
      ["metadata.name=", { fieldSelector: "metadata.name=b" }, ["b"]],
      ["metadata.name!=", { fieldSelector: "metadata.name!=b" }, ["a", "c"]],
      ["labels and fields", { labelSelector: "tier", fieldSelector: "metadata.name==a" }, ["a"]],
    ];
    for (const [name, selectors, expected] of cases) {
      await t.step(name, async () => {
        const list = await core.listNamespacedConfigMap({ namespace: "default", ...selectors });
        assertEquals(list.items.map((i) => i.metadata!.name), expected);
      });
    }
    await t.step("across all namespaces, with metadata.namespace", async () => {
      const all = await core.listConfigMapForAllNamespaces({ labelSelector: "app=x" });
      assertEquals(all.items.map((i) => `${i.metadata!.namespace}/${i.metadata!.name}`), [
        "default/a",
        "other/d",
      ]);
      const other = await core.listConfigMapForAllNamespaces({
        fieldSelector: "metadata.namespace=other",
      });
      assertEquals(other.items.map((i) => i.metadata!.name), ["d"]);
    });
  });
});

Deno.test("pods are selected by spec.nodeName and status.phase", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const pod = (name: string, nodeName: string): V1Pod => ({
      metadata: { name },
      spec: { nodeName, containers: [{ name: "c", image: "alpine" }] },
    });
    server.create("pods", pod("p1", "n1"));
    server.create("pods", pod("p2", "n2"));
    server.updateStatus("pods", {
      metadata: { name: "p2", namespace: "default" },
      status: { phase: "Failed" },
    });
    const byNode = await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=n1" });
    assertEquals(byNode.items.map((p) => p.metadata!.name), ["p1"]);
    const notFailed = await core.listNamespacedPod({
      namespace: "default",
      fieldSelector: "status.phase!=Failed",
    });
    assertEquals(notFailed.items.map((p) => p.metadata!.name), ["p1"]);
    const both = await core.listNamespacedPod({
      namespace: "default",
      fieldSelector: "spec.nodeName=n2,status.phase=Failed",
    });
    assertEquals(both.items.map((p) => p.metadata!.name), ["p2"]);
  });
});

Deno.test("limit/continue pages through a consistent snapshot; a compacted token is 410", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    for (let i = 0; i < 7; i++) server.create("configmaps", cm(`cm-${i}`));
    const first = await core.listNamespacedConfigMap({ namespace: "default", limit: 3 });
    assertEquals(first.items.map((i) => i.metadata!.name), ["cm-0", "cm-1", "cm-2"]);
    assertEquals(first.metadata!.remainingItemCount, 4);
    // Changes after the first page do not show in later pages.
    server.delete("configmaps", "default", "cm-4");
    server.create("configmaps", cm("cm-9"));
    const second = await core.listNamespacedConfigMap({
      namespace: "default",
      limit: 3,
      _continue: first.metadata!._continue,
    });
    assertEquals(second.items.map((i) => i.metadata!.name), ["cm-3", "cm-4", "cm-5"]);
    assertEquals(second.metadata!.resourceVersion, first.metadata!.resourceVersion);
    const third = await core.listNamespacedConfigMap({
      namespace: "default",
      limit: 3,
      _continue: second.metadata!._continue,
    });
    assertEquals(third.items.map((i) => i.metadata!.name), ["cm-6"]);
    assertEquals(third.metadata!._continue, undefined);

    server.compact();
    const { code, body } = await rejection(
      core.listNamespacedConfigMap({
        namespace: "default",
        limit: 3,
        _continue: first.metadata!._continue,
      }),
    );
    assertEquals(code, 410);
    assertEquals(body.reason, "Expired");
  });
});

Deno.test("a resourceVersion=0 list comes from the watch cache, which may trail; a list without one is the latest state", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const names = (list: { items: V1ConfigMap[] }) => list.items.map((i) => i.metadata!.name);
    server.create("configmaps", cm("old"));
    const before = server.resourceVersion;
    server.faults.lagWatchCache(Infinity);
    server.delete("configmaps", "default", "old");
    server.create("configmaps", cm("new"));

    const any = await core.listNamespacedConfigMap({ namespace: "default", resourceVersion: "0" });
    assertEquals(names(any), ["old"], "the cache has not seen the delete or the create");
    assertEquals(any.metadata!.resourceVersion, before);
    const latest = await core.listNamespacedConfigMap({ namespace: "default" });
    assertEquals(names(latest), ["new"]);
    assertEquals(latest.metadata!.resourceVersion, server.resourceVersion);
    // "Not older than" a version the cache has not reached is never answered from it.
    const notOlder = await core.listNamespacedConfigMap({
      namespace: "default",
      resourceVersion: server.resourceVersion,
    });
    assertEquals(names(notOlder), ["new"]);

    // Trailing by one commit: the cache has the delete but not the create.
    server.faults.lagWatchCache(1);
    assertEquals(
      names(await core.listNamespacedConfigMap({ namespace: "default", resourceVersion: "0" })),
      [],
    );
    server.faults.lagWatchCache(0);
    assertEquals(
      names(await core.listNamespacedConfigMap({ namespace: "default", resourceVersion: "0" })),
      ["new"],
    );
  });
});

Deno.test("a list pages through the trailing watch cache's state when asked for any state", async () => {
  await withServer({ watchCacheLag: Infinity }, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    for (let i = 0; i < 5; i++) server.create("configmaps", cm(`cm-${i}`));
    const first = await core.listNamespacedConfigMap({
      namespace: "default",
      resourceVersion: "0",
      limit: 2,
    });
    assertEquals(first.items.length, 0, "created after the cache stopped");
    server.faults.lagWatchCache(2);
    const page = await core.listNamespacedConfigMap({
      namespace: "default",
      resourceVersion: "0",
      limit: 2,
    });
    assertEquals(page.items.map((i) => i.metadata!.name), ["cm-0", "cm-1"]);
    const rest = await core.listNamespacedConfigMap({
      namespace: "default",
      limit: 2,
      _continue: page.metadata!._continue,
    });
    assertEquals(rest.items.map((i) => i.metadata!.name), ["cm-2"]);
    assertEquals(rest.metadata!.resourceVersion, page.metadata!.resourceVersion);
  });
});

Deno.test("resourceVersionMatch=Exact lists the state at that version, and bad combinations are 400s", async (t) => {
  await withServer({ retainedEvents: 100 }, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    server.create("configmaps", cm("a"));
    const at = server.resourceVersion;
    server.create("configmaps", cm("b"));
    await t.step("Exact shows the past state", async () => {
      const exact = await core.listNamespacedConfigMap({
        namespace: "default",
        resourceVersion: at,
        resourceVersionMatch: "Exact",
      });
      assertEquals(exact.items.map((i) => i.metadata!.name), ["a"]);
      assertEquals(exact.metadata!.resourceVersion, at);
    });
    await t.step("a version newer than the store's is 504 Too large resource version", async () => {
      const { code, body } = await rejection(
        core.listNamespacedConfigMap({ namespace: "default", resourceVersion: "999999" }),
      );
      assertEquals(code, 504);
      assertMatch(String(body.message), /^Too large resource version: 999999, current: \d+$/);
    });
    await t.step("a compacted Exact version is 410", async () => {
      server.compact();
      const { code } = await rejection(
        core.listNamespacedConfigMap({
          namespace: "default",
          resourceVersion: at,
          resourceVersionMatch: "Exact",
        }),
      );
      assertEquals(code, 410);
    });
    for (
      const [what, query, message] of [
        ["a match without a version", { resourceVersionMatch: "NotOlderThan" }, /unless/],
        ["Exact with 0", { resourceVersion: "0", resourceVersionMatch: "Exact" }, /forbidden/],
        [
          "an unknown match",
          { resourceVersion: "1", resourceVersionMatch: "Newest" },
          /Unsupported/,
        ],
        ["a version with continue", { resourceVersion: "1", _continue: "eyJ9" }, /continue/],
      ] as const
    ) {
      await t.step(`${what} is 400`, async () => {
        const { code, body } = await rejection(
          core.listNamespacedConfigMap({ namespace: "default", ...query }),
        );
        assertEquals(code, 400);
        assertMatch(String(body.message), message);
      });
    }
  });
});

Deno.test("JSON patch, merge patch and strategic merge patch all apply", async () => {
  await withServer({}, async (server) => {
    const kc = server.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    server.create("configmaps", cm("p"));
    const jsonPatched = await core.patchNamespacedConfigMap({
      namespace: "default",
      name: "p",
      body: [{ op: "add", path: "/data/extra", value: "1" }],
    });
    assertEquals(jsonPatched.data, { k: "p", extra: "1" });
    const res = await fetch(`${server.url}/api/v1/namespaces/default/configmaps/p`, {
      method: "PATCH",
      headers: {
        "content-type": "application/merge-patch+json",
        authorization: `Bearer ${server.token}`,
      },
      body: JSON.stringify({ data: { k: null, merged: "2" } }),
    });
    assertEquals(res.status, 200);
    assertEquals((await res.json()).data, { extra: "1", merged: "2" });
    const event = server.create("events", {
      metadata: { name: "ev.1", namespace: "default" },
      involvedObject: { kind: "Pod", name: "x", namespace: "default" },
      reason: "Pulled",
      count: 1,
    });
    const strategic = await fetch(`${server.url}/api/v1/namespaces/default/events/ev.1`, {
      method: "PATCH",
      headers: { "content-type": "application/strategic-merge-patch+json" },
      body: JSON.stringify({ count: 2 }),
    });
    const patched = await strategic.json();
    assertEquals(patched.count, 2);
    assertEquals(patched.reason, "Pulled");
    assert(Number(patched.metadata.resourceVersion) > Number(event.metadata.resourceVersion));
  });
});

Deno.test("the pod status subresource changes only status, and the main resource ignores status", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const pod = await core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "s" }, spec: { containers: [{ name: "c", image: "alpine" }] } },
    });
    assertEquals(pod.status!.phase, "Pending");
    assertEquals(pod.spec!.containers[0].imagePullPolicy, "Always");
    const withStatus = await core.replaceNamespacedPodStatus({
      namespace: "default",
      name: "s",
      body: {
        ...pod,
        metadata: { ...pod.metadata, labels: { ignored: "yes" } },
        status: { phase: "Running" },
      },
    });
    assertEquals(withStatus.status!.phase, "Running");
    assertEquals(withStatus.metadata!.labels, undefined);
    const main = await core.replaceNamespacedPod({
      namespace: "default",
      name: "s",
      body: {
        ...withStatus,
        metadata: { ...withStatus.metadata, labels: { a: "b" } },
        status: { phase: "Failed" },
      },
    });
    assertEquals(main.status!.phase, "Running");
    assertEquals(main.metadata!.labels, { a: "b" });
  });
});

Deno.test("deleting an owner garbage-collects its dependants by uid", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const owner = server.create("configmaps", cm("owner"));
    const other = server.create("configmaps", cm("other-owner"));
    const ref = (o: typeof owner) => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      name: o.metadata.name!,
      uid: o.metadata.uid!,
    });
    server.create("configmaps", {
      metadata: { name: "dep", namespace: "default", ownerReferences: [ref(owner)] },
    });
    server.create("configmaps", {
      metadata: { name: "shared", namespace: "default", ownerReferences: [ref(owner), ref(other)] },
    });
    server.create("configmaps", { metadata: { name: "unrelated", namespace: "default" } });
    await core.deleteNamespacedConfigMap({ namespace: "default", name: "owner" });
    const left = (await core.listNamespacedConfigMap({ namespace: "default" })).items;
    assertEquals(left.map((i) => i.metadata!.name), ["other-owner", "shared", "unrelated"]);
    assertEquals(left[1].metadata!.ownerReferences!.map((r) => r.name), ["other-owner"]);
  });
});

Deno.test("deny rules answer 403 with kube-apiserver's message shape, and undo restores access", async () => {
  await withServer({}, async (server) => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const undo = server.authz.deny({ verb: "list", resource: "configmaps" });
    const cluster = await rejection(core.listConfigMapForAllNamespaces());
    assertEquals(cluster.code, 403);
    assertEquals(cluster.body.reason, "Forbidden");
    assertEquals(
      cluster.body.message,
      'configmaps is forbidden: User "system:serviceaccount:image-cache-daemon:image-cache-daemon" cannot list resource "configmaps" in API group "" at the cluster scope',
    );
    const namespaced = await rejection(core.listNamespacedConfigMap({ namespace: "default" }));
    assertMatch(String(namespaced.body.message), /in the namespace "default"$/);
    server.authz.deny({ verb: "create", resource: "pods", namespace: "default" });
    const pod = await rejection(core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "x" }, spec: { containers: [{ name: "c", image: "alpine" }] } },
    }));
    assertEquals(pod.code, 403);
    undo();
    assertEquals((await core.listConfigMapForAllNamespaces()).items, []);
    server.authz.reset();
    await core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "x" }, spec: { containers: [{ name: "c", image: "alpine" }] } },
    });
  });
});

Deno.test("Argo resources answer 404 while uninstalled and work once installed", async () => {
  await withServer({ argoInstalled: false }, async (server) => {
    const custom = server.kubeConfig().makeApiClient(CustomObjectsApi);
    const list = () =>
      custom.listNamespacedCustomObject({
        group: "argoproj.io",
        version: "v1alpha1",
        namespace: "default",
        plural: "workflowtemplates",
      });
    const missing = await rejection(list());
    assertEquals(missing.code, 404);
    assertEquals(missing.body.message, "the server could not find the requested resource");
    server.installArgo();
    await custom.createNamespacedCustomObject({
      group: "argoproj.io",
      version: "v1alpha1",
      namespace: "default",
      plural: "workflowtemplates",
      body: {
        apiVersion: "argoproj.io/v1alpha1",
        kind: "WorkflowTemplate",
        metadata: { name: "wt" },
        spec: {},
      },
    });
    await custom.createClusterCustomObject({
      group: "argoproj.io",
      version: "v1alpha1",
      plural: "clusterworkflowtemplates",
      body: {
        apiVersion: "argoproj.io/v1alpha1",
        kind: "ClusterWorkflowTemplate",
        metadata: { name: "cwt" },
        spec: {},
      },
    });
    const items =
      ((await list()) as { items: { metadata: { name: string; generation: number } }[] }).items;
    assertEquals(items.map((i) => [i.metadata.name, i.metadata.generation]), [["wt", 1]]);
    const cluster = await custom.listClusterCustomObject({
      group: "argoproj.io",
      version: "v1alpha1",
      plural: "clusterworkflowtemplates",
    }) as { items: unknown[] };
    assertEquals(cluster.items.length, 1);
    server.uninstallArgo();
    assertEquals((await rejection(list())).code, 404);
    server.installArgo();
    assertEquals(
      ((await list()) as { items: unknown[] }).items,
      [],
      "objects are dropped with the CRD",
    );
  });
});

Deno.test("TLS: client-node trusts the generated CA from the kubeconfig", async () => {
  await withServer({ tls: true }, async (server) => {
    assertMatch(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assertMatch(server.kubeconfigYaml(), /certificate-authority-data: /);
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const list = await core.listNamespace();
    assertEquals(list.items.map((n) => n.metadata!.name), [
      "default",
      "kube-node-lease",
      "kube-public",
      "kube-system",
    ]);
  });
});

Deno.test("a wrong bearer token is 401 Unauthorized", async () => {
  await withServer({}, async (server) => {
    const res = await fetch(`${server.url}/api/v1/namespaces`, {
      headers: { authorization: "Bearer nope" },
    });
    assertEquals(res.status, 401);
    assertEquals((await res.json()).reason, "Unauthorized");
  });
});

Deno.test("unknown fields: Warn (the default) drops them with a Warning header, Strict rejects, Ignore drops silently", async (t) => {
  await withServer({}, async (server) => {
    const post = (query: string, name: string) =>
      fetch(`${server.url}/api/v1/namespaces/default/configmaps${query}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name, colour: "red" },
          data: { a: "b" },
          datta: { c: "d" },
        }),
      });
    await t.step("Warn", async () => {
      const response = await post("", "warned");
      assertEquals(response.status, 201);
      assertEquals(
        response.headers.get("warning"),
        [
          `299 - "unknown field \\"metadata.colour\\""`,
          `299 - "unknown field \\"datta\\""`,
        ].join(", "),
      );
      const stored = await response.json();
      assertEquals(stored.datta, undefined);
      assertEquals(stored.metadata.colour, undefined);
      assertEquals(stored.data, { a: "b" });
    });
    await t.step("Strict", async () => {
      const response = await post("?fieldValidation=Strict", "strict");
      assertEquals(response.status, 400);
      assertMatch(
        (await response.json()).message,
        /^ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.colour", unknown field "datta"$/,
      );
      assertEquals(server.get("configmaps", "default", "strict"), undefined);
    });
    await t.step("Ignore", async () => {
      const response = await post("?fieldValidation=Ignore", "ignored");
      assertEquals(response.status, 201);
      assertEquals(response.headers.get("warning"), null);
      assertEquals((await response.json()).datta, undefined);
    });
  });
});

Deno.test("/openapi/v3 lists each served group-version, whose PATCH operations accept fieldValidation", async () => {
  await withServer({ argoInstalled: false }, async (server) => {
    const get = async (path: string) => (await fetch(`${server.url}${path}`)).json();
    const root = await get("/openapi/v3");
    assertEquals(Object.keys(root.paths), ["api/v1"], "Argo is not installed");
    const doc = await get(root.paths["api/v1"].serverRelativeURL);
    const patch = doc.paths["/api/v1/namespaces/{namespace}/configmaps/{name}"].patch;
    assertEquals(patch["x-kubernetes-group-version-kind"], {
      group: "",
      version: "v1",
      kind: "ConfigMap",
    });
    assert(
      patch.parameters.some((p: { name: string; in: string }) =>
        p.name === "fieldValidation" && p.in === "query"
      ),
    );
    const schema = doc.components.schemas["io.k8s.api.core.v1.ConfigMap"];
    assertEquals(Object.keys(schema.properties).sort(), [
      "apiVersion",
      "binaryData",
      "data",
      "immutable",
      "kind",
      "metadata",
    ]);
    server.installArgo();
    assertEquals(Object.keys((await get("/openapi/v3")).paths), [
      "api/v1",
      "apis/argoproj.io/v1alpha1",
    ]);
  });
});

Deno.test("server-side apply creates when absent, merges when present, and rejects what a real server rejects", async (t) => {
  await withServer({}, async (server) => {
    const apply = (name: string, body: string, query = "?fieldManager=test") =>
      fetch(`${server.url}/api/v1/namespaces/default/configmaps/${name}${query}`, {
        method: "PATCH",
        headers: { "content-type": "application/apply-patch+yaml" },
        body,
      });
    const cmYaml = (name: string, data: string) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${data}\n`;
    await t.step("absent: created, 201", async () => {
      const response = await apply("a", cmYaml("a", "  one: '1'"));
      assertEquals(response.status, 201);
      assertEquals(server.get("configmaps", "default", "a")?.data, { one: "1" });
    });
    await t.step("present: merged, 200, one managedFields entry per manager", async () => {
      server.patch("configmaps", "default", "a", { data: { other: "x" } });
      const response = await apply("a", cmYaml("a", "  one: '2'"));
      assertEquals(response.status, 200);
      const cm = server.get("configmaps", "default", "a")!;
      assertEquals(cm.data, { one: "2", other: "x" });
      assertEquals((cm.metadata.managedFields as unknown[]).length, 1);
    });
    for (
      const [what, name, body, query, message] of [
        ["no fieldManager", "a", cmYaml("a", "  x: y"), "", /fieldManager is required/],
        ["another name", "a", cmYaml("b", "  x: y"), undefined, /does not match the name/],
        [
          "another kind",
          "a",
          "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
          undefined,
          /not a ConfigMap/,
        ],
        [
          "a misspelt field, strictly",
          "a",
          cmYaml("a", "  x: y") + "datta: {}\n",
          "?fieldManager=t&fieldValidation=Strict",
          /unknown field "datta"/,
        ],
      ] as const
    ) {
      await t.step(`${what}: 400`, async () => {
        const response = await apply(name, body, query);
        assertEquals(response.status, 400);
        assertMatch((await response.json()).message, message);
      });
    }
  });
});

Deno.test("Accept: as=Table answers a meta.k8s.io Table with the kind's columns", async () => {
  await withServer({}, async (server) => {
    server.create("configmaps", {
      metadata: { namespace: "default", name: "a" },
      data: { x: "1", y: "2" },
    });
    const response = await fetch(
      `${server.url}/api/v1/namespaces/default/configmaps?includeObject=None`,
      {
        headers: {
          accept:
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        },
      },
    );
    const table = await response.json();
    assertEquals([table.kind, table.apiVersion], ["Table", "meta.k8s.io/v1"]);
    assertEquals(
      table.columnDefinitions.map((c: { name: string }) => c.name),
      ["Name", "Data", "Age"],
    );
    assertEquals(table.rows.map((r: { cells: unknown[] }) => r.cells.slice(0, 2)), [["a", 2]]);
    assertEquals(table.rows[0].object, undefined, "includeObject=None");
    const plain = await (await fetch(`${server.url}/api/v1/namespaces/default/configmaps`)).json();
    assertEquals(plain.kind, "ConfigMapList");
  });
});

Deno.test("a built-in type's list puts metadata before the items; a custom resource's list, sorted like an unstructured map, after them", async () => {
  await withServer({}, async (server) => {
    server.create("configmaps", cm("a"));
    server.create("workflowtemplates", {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "default", name: "w" },
      spec: { templates: [] },
    });
    const keys = async (path: string) => {
      const response = await fetch(`${server.url}${path}?limit=1`, {
        headers: { authorization: `Bearer ${server.token}` },
      });
      return Object.keys(await response.json());
    };
    assertEquals(await keys("/api/v1/configmaps"), ["kind", "apiVersion", "metadata", "items"]);
    assertEquals(await keys("/apis/argoproj.io/v1alpha1/workflowtemplates"), [
      "apiVersion",
      "items",
      "kind",
      "metadata",
    ]);
  });
});
