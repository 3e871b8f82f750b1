/**
 * The install manifests: every YAML file parses, both kustomizations render
 * (`kubectl kustomize`), every rendered object validates against the
 * Kubernetes schema (kubernetes-models), the RBAC rules are exactly the table
 * in manifests/rbac_expectations.ts, and the daemon pod passes the Pod
 * Security "restricted" profile (testing/restricted_profile.ts, the checker
 * the pull pods are held to).
 */
import {
  AGGREGATOR_MEMORY_LIMIT_MIB,
  AGGREGATOR_OLD_SPACE_MIB,
  AGGREGATOR_SEMI_SPACE_MIB,
  AGGREGATOR_V8_FLAGS,
  DAEMON_MEMORY_LIMIT_MIB,
  DAEMON_OLD_SPACE_MIB,
} from "../build/v8_flags.ts";
import { parseAllDocuments } from "yaml";
import {
  ClusterRole,
  ClusterRoleBinding,
  DaemonSet,
  Deployment,
  Namespace,
  PodDisruptionBudget,
  Role,
  RoleBinding,
  ServiceAccount,
} from "../testing/kubernetes_models.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  apiCallOf,
  type DaemonRole,
  type InstalledRules,
  isAllowed,
  type PolicyRule,
  REQUIRED_API_CALLS,
  type RequiredRule,
  requiredRules,
} from "../manifests/rbac_expectations.ts";
import { loadConfig } from "../config/config.ts";
import { VERSION } from "../config/version.ts";
import { kustomize, parseManifests } from "../manifests/render.ts";
import { restrictedViolations } from "../testing/restricted_profile.ts";

const ROOT = new URL("../", import.meta.url);
const NAMESPACE = "image-cache-daemon";

// deno-lint-ignore no-explicit-any -- rendered manifests are untyped YAML; each is schema-validated below
type Manifest = Record<string, any>;

const rendered = new Map<string, Promise<Manifest[]>>();

/** Renders a kustomization with kubectl's built-in kustomize (no cluster needed), once per run. */
function render(dir: string): Promise<Manifest[]> {
  if (!rendered.has(dir)) {
    rendered.set(
      dir,
      kustomize(dir).then((text) => parseManifests(text) as Manifest[]),
    );
  }
  return rendered.get(dir)!;
}

async function yamlFiles(dir: URL): Promise<URL[]> {
  const files: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) files.push(...await yamlFiles(url));
    else if (/\.ya?ml$/.test(entry.name)) files.push(url);
  }
  return files.sort((a, b) => a.href.localeCompare(b.href));
}

// deno-lint-ignore no-explicit-any -- the model classes differ only in their object type
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

/** The layouts: what each kustomization renders and runs. */
const LAYOUTS = [
  { dir: "manifests", strategy: "pod", split: true },
  { dir: "manifests/overlays/cri", strategy: "cri", split: true },
  { dir: "manifests/overlays/single-process", strategy: "pod", split: false },
] as const;

const SPLIT_KINDS = [
  "v1/Namespace",
  "v1/ServiceAccount",
  "v1/ServiceAccount",
  "rbac.authorization.k8s.io/v1/ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
  "rbac.authorization.k8s.io/v1/Role",
  "rbac.authorization.k8s.io/v1/Role",
  "rbac.authorization.k8s.io/v1/RoleBinding",
  "rbac.authorization.k8s.io/v1/RoleBinding",
  "apps/v1/DaemonSet",
  "apps/v1/Deployment",
  "policy/v1/PodDisruptionBudget",
];
const SINGLE_KINDS = [
  "v1/Namespace",
  "v1/ServiceAccount",
  "rbac.authorization.k8s.io/v1/ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
  "rbac.authorization.k8s.io/v1/Role",
  "rbac.authorization.k8s.io/v1/RoleBinding",
  "apps/v1/DaemonSet",
];

/** The Role and ClusterRole rules bound to one ServiceAccount of the daemon's namespace. */
function rulesOf(objects: Manifest[], serviceAccount: string): InstalledRules {
  const bound = (bindingKind: string, roleKind: string) =>
    objects.filter((b) =>
      b.kind === bindingKind &&
      b.subjects.some((s: Manifest) =>
        s.kind === "ServiceAccount" && s.name === serviceAccount && s.namespace === NAMESPACE
      )
    ).flatMap((b) => {
      assertEquals(b.roleRef.apiGroup, "rbac.authorization.k8s.io");
      assertEquals(b.roleRef.kind, roleKind);
      return objects.filter((r) => r.kind === roleKind && r.metadata.name === b.roleRef.name)
        .flatMap((r) => r.rules as PolicyRule[]);
    });
  return {
    cluster: bound("ClusterRoleBinding", "ClusterRole"),
    namespaced: bound("RoleBinding", "Role"),
    namespace: NAMESPACE,
  };
}

/** Each workload of a layout with the role its arguments give it. */
function workloads(objects: Manifest[]): { workload: Manifest; role: DaemonRole }[] {
  return objects.filter((o) => o.kind === "DaemonSet" || o.kind === "Deployment").map(
    (workload) => {
      const [container] = workload.spec.template.spec.containers;
      const { config } = loadConfig(container.args ?? [], () => undefined);
      return { workload, role: config.role };
    },
  );
}

function only(objects: Manifest[], kind: string): Manifest {
  const found = objects.filter((o) => o.kind === kind);
  assertEquals(found.length, 1, `expected one ${kind}`);
  return found[0];
}

/** Flattens rules to one `group/resource: verbs` row per resource, verbs sorted. */
function ruleTable(rules: readonly PolicyRule[]): Record<string, string[]> {
  const table: Record<string, string[]> = {};
  for (const rule of rules) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const key = `${group || "core"}/${resource}`;
        table[key] = [...new Set([...(table[key] ?? []), ...rule.verbs])].sort();
      }
    }
  }
  return table;
}

function expectedTable(
  strategy: "pod" | "cri",
  scope: "cluster" | "namespace",
  role: DaemonRole = "all",
) {
  return ruleTable(
    requiredRules(strategy, role).filter((r) => r.scope === scope).map((r) => ({
      apiGroups: [r.apiGroup],
      resources: [r.resource],
      verbs: r.verbs,
    })),
  );
}

/** The rules of the DaemonSet's ServiceAccount. */
function installedRules(objects: Manifest[]): InstalledRules {
  return rulesOf(objects, only(objects, "DaemonSet").spec.template.spec.serviceAccountName);
}

/** The Pod Security "restricted" violations of the DaemonSet's pod template. */
function templateViolations(objects: Manifest[]): string[] {
  const template = only(objects, "DaemonSet").spec.template;
  return restrictedViolations({
    apiVersion: "v1",
    kind: "Pod",
    metadata: template.metadata,
    spec: template.spec,
  });
}

function daemonContainer(objects: Manifest[]): Manifest {
  const containers = only(objects, "DaemonSet").spec.template.spec.containers;
  assertEquals(containers.length, 1);
  return containers[0];
}

Deno.test("every YAML file under manifests/ parses without errors or warnings", async () => {
  const files = await yamlFiles(new URL("manifests/", ROOT));
  assert(files.length >= 10, `found only ${files.length} files`);
  for (const file of files) {
    for (const doc of parseAllDocuments(await Deno.readTextFile(file))) {
      assertEquals([...doc.errors, ...doc.warnings].map(String), [], file.pathname);
    }
  }
});

for (const { dir, strategy, split } of LAYOUTS) {
  Deno.test(`${dir} renders only the objects the daemon uses, each valid by its schema`, async () => {
    const objects = await render(dir);
    assertEquals(
      objects.map((o) => `${o.apiVersion}/${o.kind}`).sort(),
      (split ? SPLIT_KINDS : SINGLE_KINDS).sort(),
    );
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      new Model(object).validate();
      if (object.kind !== "Namespace" && !object.kind.startsWith("Cluster")) {
        assertEquals(object.metadata.namespace, NAMESPACE, `${object.kind} namespace`);
      }
    }
  });

  Deno.test(`${dir} runs ${split ? "an aggregator Deployment and a node DaemonSet" : "one DaemonSet with --role=all"}`, async () => {
    const roles = workloads(await render(dir)).map(({ workload, role }) =>
      `${workload.kind}:${role}`
    ).sort();
    assertEquals(roles, split ? ["DaemonSet:node", "Deployment:aggregator"] : ["DaemonSet:all"]);
  });

  Deno.test(`${dir} grants each workload exactly the RBAC rules of its role and the ${strategy} strategy`, async () => {
    const objects = await render(dir);
    for (const { workload, role } of workloads(objects)) {
      const sa = workload.spec.template.spec.serviceAccountName;
      assert(objects.some((o) => o.kind === "ServiceAccount" && o.metadata.name === sa), sa);
      const rules = rulesOf(objects, sa);
      const label = `${workload.kind} (${role})`;
      assertEquals(ruleTable(rules.cluster), expectedTable(strategy, "cluster", role), label);
      assertEquals(ruleTable(rules.namespaced), expectedTable(strategy, "namespace", role), label);
      for (const rule of [...rules.cluster, ...rules.namespaced]) {
        assert(!rule.verbs.includes("*"), "no wildcard verbs");
        assert(!(rule.resources ?? []).includes("*"), "no wildcard resources");
      }
    }
    // Every binding names a ServiceAccount of a workload: nothing granted to nobody.
    const accounts = new Set(
      workloads(objects).map(({ workload }) => workload.spec.template.spec.serviceAccountName),
    );
    for (const binding of objects.filter((o) => o.kind.endsWith("Binding"))) {
      for (const subject of binding.subjects) assert(accounts.has(subject.name), subject.name);
    }
  });

  Deno.test(`${dir} passes its DaemonSet arguments through the daemon's own flag parser`, async () => {
    const container = daemonContainer(await render(dir));
    const { config, positionals } = loadConfig(container.args ?? [], () => undefined);
    assertEquals(positionals, []);
    assertEquals(config.pullStrategy, strategy);
    assertEquals(config.metricsBindAddress, { hostname: "0.0.0.0", port: 8080 });
  });
}

Deno.test("node daemons keep no cluster-wide grant but list and watch of Nodes (their own, asked for by name)", async () => {
  const objects = await render("manifests");
  const ds = only(objects, "DaemonSet");
  const rules = rulesOf(objects, ds.spec.template.spec.serviceAccountName);
  assertEquals(ruleTable(rules.cluster), { "core/nodes": ["list", "watch"] });
});

Deno.test("the aggregator: two replicas spread over nodes, a PodDisruptionBudget, the restricted profile, its identity from the downward API", async () => {
  const objects = await render("manifests");
  const deployment = only(objects, "Deployment");
  assertEquals(deployment.spec.replicas, 2);
  const template = deployment.spec.template;
  const term = template.spec.affinity.podAntiAffinity
    .preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  assertEquals(term.topologyKey, "kubernetes.io/hostname");
  assertEquals(term.labelSelector.matchLabels, deployment.spec.selector.matchLabels);
  // Over zones too, best effort: a cluster without zones still schedules both.
  const [spread] = template.spec.topologySpreadConstraints;
  assertEquals(spread.topologyKey, "topology.kubernetes.io/zone");
  assertEquals(spread.whenUnsatisfiable, "ScheduleAnyway");
  assertEquals(spread.labelSelector.matchLabels, deployment.spec.selector.matchLabels);
  const pdb = only(objects, "PodDisruptionBudget");
  // One at a time, and never blocking a drain: not with one replica, not for a replica not ready.
  assertEquals(pdb.spec.maxUnavailable, 1);
  assertEquals(pdb.spec.minAvailable, undefined);
  assertEquals(pdb.spec.unhealthyPodEvictionPolicy, "AlwaysAllow");
  assertEquals(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) {
    assertEquals(template.metadata.labels[key], value);
  }
  assertEquals(
    restrictedViolations({
      apiVersion: "v1",
      kind: "Pod",
      metadata: template.metadata,
      spec: template.spec,
    }),
    [],
  );
  const [container] = template.spec.containers;
  const fieldRefs = Object.fromEntries(
    container.env.filter((e: Manifest) => e.valueFrom)
      .map((e: Manifest) => [e.name, e.valueFrom.fieldRef?.fieldPath]),
  );
  assertEquals(fieldRefs, { POD_NAME: "metadata.name", POD_NAMESPACE: "metadata.namespace" });
  assertEquals(container.readinessProbe.httpGet, { path: "/readyz", port: "metrics" });
  const { config } = loadConfig(container.args, () => undefined);
  assertEquals(config.leaderElectLeaseDurationMs, 15_000);
  assertEquals(config.leaderElectRenewDeadlineMs, 10_000);
  assertEquals(config.leaderElectRetryPeriodMs, 2_000);
  // The DaemonSet's selector does not select the aggregator's pods, nor the reverse.
  const ds = only(objects, "DaemonSet");
  assert(
    ds.spec.selector.matchLabels["app.kubernetes.io/component"] !==
      deployment.spec.selector.matchLabels["app.kubernetes.io/component"],
  );
});

Deno.test("the base DaemonSet pod passes the Pod Security restricted profile", async () => {
  const objects = await render("manifests");
  assertEquals(templateViolations(objects), []);
  assertEquals(only(objects, "DaemonSet").spec.template.spec.securityContext.runAsUser, 65532);
  const sc = daemonContainer(objects).securityContext;
  assertEquals(sc.readOnlyRootFilesystem, true);
  assertEquals(sc.capabilities, { drop: ["ALL"] });
});

Deno.test("the namespace enforces Pod Security restricted for the daemon and its pull pods", async () => {
  const labels = only(await render("manifests"), "Namespace").metadata.labels;
  for (const mode of ["enforce", "audit", "warn"]) {
    assertEquals(labels[`pod-security.kubernetes.io/${mode}`], "restricted");
  }
});

Deno.test("the base DaemonSet runs the released image on every Linux node", async () => {
  const objects = await render("manifests");
  const ds = only(objects, "DaemonSet");
  const spec = ds.spec.template.spec;
  const container = daemonContainer(objects);
  assertEquals(container.image, `ghcr.io/image-cache-daemon/image-cache-daemon:${VERSION}`);
  assertEquals(spec.tolerations, [{ operator: "Exists" }]);
  assertEquals(spec.nodeSelector, { "kubernetes.io/os": "linux" });
  assertEquals(spec.automountServiceAccountToken, true);
  assertEquals(spec.terminationGracePeriodSeconds, 15);
  assertEquals(spec.priorityClassName, undefined);
  assertEquals(ds.spec.updateStrategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxUnavailable: "10%" },
  });
  for (const [key, value] of Object.entries(ds.spec.selector.matchLabels)) {
    assertEquals(ds.spec.template.metadata.labels[key], value);
  }
});

Deno.test("the daemon learns its identity from the downward API", async () => {
  const container = daemonContainer(await render("manifests"));
  const fieldRefs = Object.fromEntries(
    container.env.map((e: Manifest) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
  );
  assertEquals(fieldRefs, {
    NODE_NAME: "spec.nodeName",
    POD_NAME: "metadata.name",
    POD_NAMESPACE: "metadata.namespace",
    POD_UID: "metadata.uid",
  });
});

Deno.test("the probes and the metrics port match the daemon's HTTP server", async () => {
  const container = daemonContainer(await render("manifests"));
  assertEquals(container.ports, [{ name: "metrics", containerPort: 8080, protocol: "TCP" }]);
  assertEquals(container.livenessProbe.httpGet, { path: "/healthz", port: "metrics" });
  assertEquals(container.readinessProbe.httpGet, { path: "/readyz", port: "metrics" });
});

Deno.test("the daemon requests little and has a memory limit, matched by V8's heap limit, but no CPU limit", async () => {
  const container = daemonContainer(await render("manifests"));
  assertEquals(container.resources, {
    requests: { cpu: "20m", memory: "160Mi" },
    limits: { memory: `${DAEMON_MEMORY_LIMIT_MIB}Mi` },
  });
  // The image's old-space limit leaves the non-heap part of the process room under the limit.
  assert(DAEMON_OLD_SPACE_MIB < DAEMON_MEMORY_LIMIT_MIB - 64, `${DAEMON_OLD_SPACE_MIB}`);
});

Deno.test("the aggregator has a larger memory limit, and sets V8's heap limit to match it", async () => {
  const deployment = only(await render("manifests"), "Deployment");
  const [container] = deployment.spec.template.spec.containers;
  assertEquals(container.resources.limits, { memory: `${AGGREGATOR_MEMORY_LIMIT_MIB}Mi` });
  const env = Object.fromEntries(
    (container.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]),
  );
  assertEquals(env.DENO_V8_FLAGS, AGGREGATOR_V8_FLAGS);
  assertEquals(
    AGGREGATOR_V8_FLAGS,
    `--max-old-space-size=${AGGREGATOR_OLD_SPACE_MIB},--max-semi-space-size=${AGGREGATOR_SEMI_SPACE_MIB}`,
  );
  assert(
    AGGREGATOR_OLD_SPACE_MIB + 3 * AGGREGATOR_SEMI_SPACE_MIB < AGGREGATOR_MEMORY_LIMIT_MIB - 64,
    `${AGGREGATOR_OLD_SPACE_MIB}`,
  );
});

Deno.test("the CRI overlay mounts the runtime socket where the daemon-cri permission set allows it", async () => {
  const objects = await render("manifests/overlays/cri");
  const spec = only(objects, "DaemonSet").spec.template.spec;
  const container = daemonContainer(objects);
  assertEquals(container.image, `ghcr.io/image-cache-daemon/image-cache-daemon:${VERSION}-cri`);
  // Only the node daemons: the aggregator pulls nothing, and its image cannot open a socket.
  assertEquals(
    only(objects, "Deployment").spec.template.spec.containers[0].image,
    `ghcr.io/image-cache-daemon/image-cache-daemon:${VERSION}`,
  );
  const { config } = loadConfig(container.args, () => undefined);
  assertEquals(container.volumeMounts, [{ name: "cri-socket", mountPath: config.criSocket }]);
  assertEquals(spec.volumes, [{
    name: "cri-socket",
    hostPath: { path: "/run/containerd/containerd.sock", type: "Socket" },
  }]);
  const sets = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).permissions;
  assertEquals(sets["daemon-cri"].read.includes(config.criSocket), true);
  assertEquals(sets["daemon-cri"].write, [config.criSocket]);
  assertEquals(sets["daemon-cri"].net.includes(`unix:${config.criSocket}`), true);
  assertEquals(sets.daemon.write, undefined);
  // hostPath is outside "restricted" (and "baseline"): the overlay says so.
  assertEquals(templateViolations(objects), [
    'HostPath volumes: spec.volumes["cri-socket"].hostPath must be unset',
  ]);
  const labels = only(objects, "Namespace").metadata.labels;
  assertEquals(labels["pod-security.kubernetes.io/enforce"], "privileged");
  assertEquals(container.securityContext.allowPrivilegeEscalation, false);
});

Deno.test("apiCallOf() classifies API requests as RBAC does", async (t) => {
  const cases: [string, string, ReturnType<typeof apiCallOf>][] = [
    ["GET", "/api/v1/configmaps?labelSelector=a%3Db", {
      apiGroup: "",
      resource: "configmaps",
      verb: "list",
      namespace: undefined,
      name: undefined,
    }],
    ["GET", "/api/v1/configmaps?watch=true&resourceVersion=5", {
      apiGroup: "",
      resource: "configmaps",
      verb: "watch",
      namespace: undefined,
      name: undefined,
    }],
    ["POST", "/api/v1/namespaces/image-cache-daemon/pods", {
      apiGroup: "",
      resource: "pods",
      verb: "create",
      namespace: "image-cache-daemon",
      name: undefined,
    }],
    ["DELETE", "/api/v1/namespaces/image-cache-daemon/pods/pull-abc", {
      apiGroup: "",
      resource: "pods",
      verb: "delete",
      namespace: "image-cache-daemon",
      name: "pull-abc",
    }],
    ["PATCH", "/api/v1/namespaces/team-a/events/cm.1", {
      apiGroup: "",
      resource: "events",
      verb: "patch",
      namespace: "team-a",
      name: "cm.1",
    }],
    ["GET", "/api/v1/nodes/node-1", {
      apiGroup: "",
      resource: "nodes",
      verb: "get",
      namespace: undefined,
      name: "node-1",
    }],
    ["GET", "/apis/argoproj.io/v1alpha1/namespaces/ci/workflowtemplates?watch=1", {
      apiGroup: "argoproj.io",
      resource: "workflowtemplates",
      verb: "watch",
      namespace: "ci",
      name: undefined,
    }],
    ["GET", "/api/v1/namespaces/image-cache-daemon/pods/p/log", {
      apiGroup: "",
      resource: "pods/log",
      verb: "get",
      namespace: "image-cache-daemon",
      name: "p",
    }],
  ];
  for (const [method, path, expected] of cases) {
    await t.step(`${method} ${path}`, () => assertEquals(apiCallOf(method, path), expected));
  }
  await t.step("rejects a request that is not about a resource", () => {
    assertThrows(() => apiCallOf("GET", "/version"), TypeError, "Cannot classify");
  });
});

Deno.test("isAllowed() permits the single-process daemon's calls and nothing beyond them", async () => {
  const rules = installedRules(await render("manifests/overlays/single-process"));
  const allowed: [string, string][] = [
    ["GET", "/api/v1/configmaps?watch=true"],
    ["POST", "/api/v1/namespaces/team-a/events"],
    ["PATCH", "/api/v1/namespaces/team-a/events/x.1"],
    ["GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dn1"],
    ["GET", "/apis/argoproj.io/v1alpha1/clusterworkflowtemplates"],
    ["POST", "/api/v1/namespaces/image-cache-daemon/pods"],
    ["DELETE", "/api/v1/namespaces/image-cache-daemon/pods/pull-1"],
  ];
  const denied: [string, string][] = [
    ["POST", "/api/v1/namespaces/team-a/pods"],
    ["GET", "/api/v1/namespaces/image-cache-daemon/secrets/creds"],
    ["GET", "/api/v1/namespaces/image-cache-daemon/pods/p/log"],
    ["GET", "/api/v1/configmaps/x"],
    ["DELETE", "/api/v1/namespaces/team-a/events/x.1"],
    ["PATCH", "/api/v1/nodes/n1"],
    ["GET", "/apis/argoproj.io/v1alpha1/namespaces/ci/workflows"],
  ];
  for (const [method, path] of allowed) {
    assert(isAllowed(rules, apiCallOf(method, path)), `${method} ${path} should be allowed`);
  }
  for (const [method, path] of denied) {
    assert(!isAllowed(rules, apiCallOf(method, path)), `${method} ${path} should be denied`);
  }
});

Deno.test("isAllowed() in the split layout: the aggregator writes only its namespace's ConfigMaps and Lease, a node reads only the published set", async () => {
  const objects = await render("manifests");
  const aggregator = rulesOf(
    objects,
    only(objects, "Deployment").spec.template.spec.serviceAccountName,
  );
  const node = installedRules(objects);
  const ns = `/api/v1/namespaces/${NAMESPACE}`;
  const lease = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;
  const cases: [InstalledRules, string, string, boolean][] = [
    [aggregator, "POST", `${ns}/configmaps`, true],
    [aggregator, "DELETE", `${ns}/configmaps/image-cache-daemon-desired-3-0`, true],
    [aggregator, "POST", "/api/v1/namespaces/team-a/configmaps", false],
    [aggregator, "PUT", `${lease}/image-cache-daemon-aggregator`, true],
    [aggregator, "PUT", `${lease}/another-controllers-lease`, false],
    [aggregator, "GET", `${lease}/another-controllers-lease`, false],
    [aggregator, "POST", lease, true],
    [aggregator, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x", false],
    [aggregator, "POST", `${ns}/pods`, false],
    [node, "GET", `${ns}/configmaps?watch=true`, true],
    [node, "GET", "/api/v1/configmaps?watch=true", false],
    [node, "POST", `${ns}/configmaps`, false],
    [node, "GET", "/apis/argoproj.io/v1alpha1/workflowtemplates", false],
    [node, "POST", "/api/v1/namespaces/team-a/events", false],
    [node, "POST", `${ns}/events`, true],
    // A node reads the aggregator's Lease (is the tag ledger kept?), that one only, never writes it.
    [node, "GET", `${lease}/image-cache-daemon-aggregator`, true],
    [node, "GET", `${lease}/another-lease`, false],
    [node, "PUT", `${lease}/image-cache-daemon-aggregator`, false],
  ];
  for (const [rules, method, path, allowed] of cases) {
    const who = rules === aggregator ? "aggregator" : "node";
    assertEquals(isAllowed(rules, apiCallOf(method, path)), allowed, `${who}: ${method} ${path}`);
  }
});

Deno.test("isAllowed() honours resourceNames", () => {
  const rules: InstalledRules = {
    cluster: [],
    namespaced: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: ["a"] }],
    namespace: NAMESPACE,
  };
  const get = (name: string) => apiCallOf("GET", `/api/v1/namespaces/${NAMESPACE}/secrets/${name}`);
  assert(isAllowed(rules, get("a")));
  assert(!isAllowed(rules, get("b")));
});

Deno.test("REQUIRED_API_CALLS names each resource once per scope and role and says why", () => {
  const keys = REQUIRED_API_CALLS.flatMap((r) =>
    r.roles.map((role) =>
      `${role}:${r.scope}:${r.apiGroup}/${r.resource}:${r.mode}:${r.feature ?? "base"}`
    )
  );
  assertEquals(new Set(keys).size, keys.length);
  for (const rule of REQUIRED_API_CALLS) assert(rule.why.length > 10, rule.resource);
});

Deno.test("the warm-up component grants the DaemonSet, and only it, the warm-up rules, and turns the condition on", async () => {
  const objects = await render("integration/fixtures/warm-up");
  for (const { workload, role } of workloads(objects)) {
    const sa = workload.spec.template.spec.serviceAccountName;
    const rules = rulesOf(objects, sa);
    const features = workload.kind === "DaemonSet" ? ["warm-up" as const] : [];
    const expected = (scope: RequiredRule["scope"]) =>
      ruleTable(
        requiredRules("pod", role, features).filter((r) => r.scope === scope).map((r) => ({
          apiGroups: [r.apiGroup],
          resources: [r.resource],
          verbs: r.verbs,
        })),
      );
    const label = `${workload.kind} (${role})`;
    assertEquals(ruleTable(rules.cluster), expected("cluster"), label);
    // rulesOf() gathers every Role bound to the account; split them by namespace.
    const roleRules = (namespace: string) =>
      objects.filter((b) =>
        b.kind === "RoleBinding" && b.metadata.namespace === namespace &&
        b.subjects.some((s: Manifest) => s.name === sa && s.namespace === NAMESPACE)
      ).flatMap((b) =>
        objects.filter((r) =>
          r.kind === "Role" && r.metadata.name === b.roleRef.name &&
          r.metadata.namespace === namespace
        ).flatMap((r) => r.rules as PolicyRule[])
      );
    assertEquals(ruleTable(roleRules(NAMESPACE)), expected("namespace"), label);
    assertEquals(ruleTable(roleRules("default")), expected("default-namespace"), label);
  }
  const { config } = loadConfig(daemonContainer(objects).args, () => undefined);
  assertEquals(config.imagesCondition, true);
  assertEquals(config.role, "node");
});
