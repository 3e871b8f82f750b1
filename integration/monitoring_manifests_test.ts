/**
 * The monitoring components and the single-file installs: each component
 * renders with `kubectl kustomize` on top of the base install, every rendered
 * object validates against its schema (kubernetes-models, and
 * @kubernetes-models/prometheus-operator for PodMonitor and PrometheusRule),
 * and what they configure matches the daemon: the port, the path, the pod
 * labels, the alerts of the rule file and the dashboard JSON.
 */
import { parse } from "yaml";
import {
  ClusterRole,
  ClusterRoleBinding,
  ConfigMap,
  DaemonSet,
  Deployment,
  Namespace,
  PodDisruptionBudget,
  PodMonitor,
  PrometheusRule,
  Role,
  RoleBinding,
  ServiceAccount,
} from "../testing/kubernetes_models.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { loadConfig } from "../config/config.ts";
import { DaemonMetrics, METRIC_PREFIX } from "../operate/metrics.ts";
import {
  kustomize,
  kustomizeWithComponents,
  parseManifests as parseYaml,
  PROMETHEUS_RULE_FILE,
  prometheusRuleFor,
  RELEASE_MANIFESTS,
  renderRelease,
  RULES_FILE,
} from "../manifests/render.ts";

const ROOT = new URL("../", import.meta.url);
const NAMESPACE = "image-cache-daemon";
const DASHBOARD = "manifests/components/grafana-dashboard/image-cache-daemon.json";
const COMPONENTS = [
  "podmonitor",
  "prometheus-annotations",
  "prometheus-rules",
  "grafana-dashboard",
] as const;

// deno-lint-ignore no-explicit-any -- rendered manifests are untyped YAML; each is schema-validated
type Manifest = Record<string, any>;

// deno-lint-ignore no-explicit-any -- the model classes differ only in their object type
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

function parseManifests(text: string): Manifest[] {
  return parseYaml(text) as Manifest[];
}

/** Validates every object against its schema; an object of no known kind fails. */
function validateAll(objects: Manifest[]): void {
  for (const object of objects) {
    const key = `${object.apiVersion}/${object.kind}`;
    const Model = MODELS[key];
    assert(Model !== undefined, `unexpected object ${key}`);
    new Model(object).validate();
    if (object.kind !== "Namespace" && !object.kind.startsWith("Cluster")) {
      assertEquals(object.metadata.namespace, NAMESPACE, `${key} namespace`);
    }
  }
}

/** The base install with one component, the way a user's kustomization lists it. */
async function withComponent(component: string): Promise<Manifest[]> {
  return parseManifests(await kustomizeWithComponents([component]));
}

function only(objects: Manifest[], kind: string): Manifest {
  const found = objects.filter((o) => o.kind === kind);
  assertEquals(found.length, 1, `expected one ${kind}`);
  return found[0];
}

function kinds(objects: Manifest[]): string[] {
  return objects.map((o) => o.kind).sort();
}

/** The base install: the node DaemonSet and the aggregator Deployment, each with its RBAC. */
const BASE_KINDS = [
  "ClusterRole",
  "ClusterRole",
  "ClusterRoleBinding",
  "ClusterRoleBinding",
  "DaemonSet",
  "Deployment",
  "Namespace",
  "PodDisruptionBudget",
  "Role",
  "Role",
  "RoleBinding",
  "RoleBinding",
  "ServiceAccount",
  "ServiceAccount",
];

for (const component of COMPONENTS) {
  Deno.test(`the ${component} component renders on the base install, every object valid by its schema`, async () => {
    const objects = await withComponent(component);
    validateAll(objects);
    const added = {
      "podmonitor": ["PodMonitor"],
      "prometheus-annotations": [],
      "prometheus-rules": ["PrometheusRule"],
      "grafana-dashboard": ["ConfigMap"],
    }[component];
    assertEquals(kinds(objects), [...BASE_KINDS, ...added].sort());
  });
}

Deno.test("the PodMonitor scrapes the daemon pods' metrics port and labels series with the node", async () => {
  const objects = await withComponent("podmonitor");
  const monitor = only(objects, "PodMonitor").spec;
  // The node daemons and the aggregator alike.
  for (const kind of ["DaemonSet", "Deployment"]) {
    const labels: Record<string, string> = only(objects, kind).spec.template.metadata.labels;
    for (const [key, value] of Object.entries(monitor.selector.matchLabels)) {
      assertEquals(labels[key], value, `${kind}: selector ${key}`);
    }
    for (const expression of monitor.selector.matchExpressions) {
      assertEquals(expression.operator, "In");
      assert(
        expression.values.includes(labels[expression.key]),
        `${kind}: selector ${expression.key}`,
      );
    }
  }
  const template = only(objects, "DaemonSet").spec.template;
  const container = template.spec.containers[0];
  const [endpoint] = monitor.podMetricsEndpoints;
  const port = container.ports.find((p: Manifest) => p.name === endpoint.port);
  assert(port !== undefined, `the daemon container has no port named ${endpoint.port}`);
  const { config } = loadConfig(container.args, () => undefined);
  assertEquals(config.metricsBindAddress?.port, port.containerPort);
  assertEquals(endpoint.path, "/metrics");
  assertEquals(endpoint.relabelings, [{
    sourceLabels: ["__meta_kubernetes_pod_node_name"],
    targetLabel: "node",
  }]);
  // `up` is matched by the pod's name label in ImageCacheDaemonNotReady.
  assert(monitor.podTargetLabels.includes("app.kubernetes.io/name"));
});

Deno.test("the prometheus-annotations component annotates every pod that serves metrics with its port", async () => {
  const objects = await withComponent("prometheus-annotations");
  const workloads = objects.filter((o) => o.kind === "DaemonSet" || o.kind === "Deployment");
  assert(workloads.some((w) => w.kind === "DaemonSet"));
  for (const workload of workloads) {
    const template = workload.spec.template;
    const [container] = template.spec.containers;
    const { config } = loadConfig(container.args, () => undefined);
    const port = container.ports.find((p: Manifest) => p.name === "metrics");
    assertEquals(port?.containerPort, config.metricsBindAddress?.port, workload.metadata.name);
    assertEquals(template.metadata.annotations, {
      "prometheus.io/scrape": "true",
      "prometheus.io/port": String(port.containerPort),
      "prometheus.io/path": "/metrics",
    }, workload.metadata.name);
  }
  // Nothing else changes: the same objects as the base install.
  const base = parseManifests(await kustomize("manifests"));
  assertEquals(kinds(objects), kinds(base));
});

Deno.test("the PrometheusRule holds exactly the groups of the plain rule file", async () => {
  const rules = await Deno.readTextFile(new URL(RULES_FILE, ROOT));
  const committed = await Deno.readTextFile(new URL(PROMETHEUS_RULE_FILE, ROOT));
  assertEquals(committed, prometheusRuleFor(rules), "run `deno task manifests`");
  const rendered = only(await withComponent("prometheus-rules"), "PrometheusRule");
  assertEquals(rendered.spec.groups, parse(rules).groups);
});

Deno.test("prometheusRuleFor() rejects a file that is not a rule file", () => {
  assertThrows(
    () => prometheusRuleFor("alert: x\n"),
    TypeError,
    'expected a rule file with "groups"',
  );
  assertThrows(() => prometheusRuleFor(""), TypeError, "Cannot wrap");
});

Deno.test("the dashboard ConfigMap is labelled for the Grafana sidecar and holds the dashboard JSON", async () => {
  const map = only(await withComponent("grafana-dashboard"), "ConfigMap");
  assertEquals(map.metadata.labels.grafana_dashboard, "1");
  assertEquals(map.metadata.name, "image-cache-daemon-dashboard", "no hash suffix");
  const file = await Deno.readTextFile(new URL(DASHBOARD, ROOT));
  assertEquals(map.data, { "image-cache-daemon.json": file });
  const dashboard = JSON.parse(file);
  assertEquals(dashboard.uid, "image-cache-daemon");
  const ids = dashboard.panels.map((p: Manifest) => p.id);
  assertEquals(new Set(ids).size, ids.length, "panel ids are unique");
});

Deno.test("the prometheus-operator overlay is the base install plus all three Operator/Grafana objects", async () => {
  const objects = parseManifests(await kustomize("manifests/overlays/prometheus-operator"));
  validateAll(objects);
  assertEquals(kinds(objects), [...BASE_KINDS, "ConfigMap", "PodMonitor", "PrometheusRule"].sort());
});

Deno.test("renderRelease() writes each single-file install as kubectl kustomize renders it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "icd-release-" });
  try {
    const written = await renderRelease(dir);
    assertEquals(written.map((p) => p.slice(dir.length + 1)), Object.keys(RELEASE_MANIFESTS));
    for (const [name, source] of Object.entries(RELEASE_MANIFESTS)) {
      const objects = parseManifests(await Deno.readTextFile(`${dir}/${name}`));
      validateAll(objects);
      assertEquals(objects, parseManifests(await kustomize(source)), name);
      assert(objects.some((o) => o.kind === "DaemonSet"), `${name} installs the DaemonSet`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every alert has a summary, a description and a README runbook section its runbook_url points to", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const file = parse(await Deno.readTextFile(new URL(RULES_FILE, ROOT)));
  const alerts = file.groups.flatMap((g: Manifest) => g.rules).filter((r: Manifest) => r.alert);
  assert(alerts.length >= 6, `only ${alerts.length} alerts`);
  for (const rule of alerts) {
    const { summary, description, runbook_url: url } = rule.annotations;
    assert(summary?.length > 10, `${rule.alert}: summary`);
    assert(description?.length > 80, `${rule.alert}: a description that says what to do`);
    assertEquals(
      url,
      `https://github.com/image-cache-daemon/image-cache-daemon/blob/main/README.md#${rule.alert.toLowerCase()}`,
    );
    assert(readme.includes(`\n#### ${rule.alert}\n`), `README has no runbook for ${rule.alert}`);
    assert(readme.includes(`| \`${rule.alert}\``), `README's alert table lacks ${rule.alert}`);
  }
});

Deno.test("README's metric table lists exactly the metrics the daemon exports", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const section = readme.slice(readme.indexOf("| Metric "), readme.indexOf("Kubernetes Events"));
  const documented = new Set<string>();
  for (const line of section.split("\n").slice(2)) {
    if (!line.startsWith("| `")) break;
    for (const [, name] of line.split("|")[1].matchAll(/`(\w+)`/g)) documented.add(name);
  }
  const text = await new DaemonMetrics().render();
  const exported = [...text.matchAll(/^# TYPE (\w+) /gm)].map((m) =>
    m[1].startsWith(METRIC_PREFIX) ? m[1].slice(METRIC_PREFIX.length) : m[1]
  );
  assertEquals([...documented].sort(), exported.sort());
});

Deno.test("the dashboard's panels tile Grafana's 24-column grid without overlap and query through the data source variable", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(new URL(DASHBOARD, ROOT)));
  const variables = dashboard.templating.list.map((v: Manifest) => `${v.name}:${v.type}`);
  assertEquals(variables, ["datasource:datasource", "node:query"]);
  const cells = new Map<string, string>();
  for (const panel of dashboard.panels as Manifest[]) {
    const { x, y, w, h } = panel.gridPos;
    assert(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${panel.title}: outside the grid`);
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const taken = cells.get(`${row}:${col}`);
        assert(taken === undefined, `${panel.title} overlaps ${taken}`);
        cells.set(`${row}:${col}`, panel.title);
      }
    }
    if (panel.type === "row") continue;
    assert(panel.description?.length > 10, `${panel.title}: a description`);
    assertEquals(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
    const refIds = panel.targets.map((t: Manifest) => t.refId);
    assertEquals(new Set(refIds).size, refIds.length, `${panel.title}: unique refIds`);
    for (const target of panel.targets) {
      assertEquals(target.datasource, panel.datasource, `${panel.title} ${target.refId}`);
    }
  }
});
