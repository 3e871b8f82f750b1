/**
 * The monitoring against the real thing: Debian's `prometheus` package
 * (Prometheus and promtool), installed by `.ci/run`.
 *
 * - `promtool check rules` and `promtool test rules` (monitoring/rules_test.yaml,
 *   which must test every alert both firing and silent), and `promtool check
 *   metrics` (Prometheus's own naming lint) over a daemon's real `/metrics`.
 * - A Prometheus on 127.0.0.1 (free port, temporary data directory, 1 s
 *   scrapes, only these targets) scraping three daemon processes on the fake
 *   cluster through the documented scrape job (monitoring/prometheus.yml), with
 *   the rule file loaded. Every dashboard expression (read from the dashboard
 *   JSON, so a new panel is covered without touching this file) and every
 *   alert expression is evaluated through the HTTP API and must return series
 *   of the expected shape; alerts whose condition the test does not set up
 *   must return nothing.
 *
 * Without prometheus these tests are ignored, except under CI (`CI=true`),
 * where a missing Prometheus is a failure: CI installs it.
 */
import { parse } from "yaml";
import { assert, assertEquals } from "../testing/assert.ts";
import { startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { freePort, spawnDaemon } from "../testing/daemon_process.ts";
import { waitFor } from "../testing/wait.ts";
import { DaemonMetrics } from "../operate/metrics.ts";
import { fakeParts, FakeSource } from "../testing/fake_parts.ts";
import { kustomizeWithComponents, parseManifests, RULES_FILE } from "../manifests/render.ts";

const ROOT = new URL("../", import.meta.url);
const MONITORING = new URL("monitoring/", ROOT);
const DASHBOARD = new URL(
  "manifests/components/grafana-dashboard/image-cache-daemon.json",
  ROOT,
);
const NS = "image-cache-daemon";
const NODES = ["node-1", "node-2", "node-3"];
const BROKEN = "ghcr.io/acme/broken:1";
const decoder = new TextDecoder();

/**
 * Metrics the dashboard already reads but that work in progress adds (issue →
 * what exports them). A dashboard query that returns nothing must read one of
 * these, and the daemons must not export it yet: once they do, its queries
 * are held to returning data like every other.
 */
const NOT_YET_EXPORTED: Readonly<Record<string, string>> = {};

/**
 * The alerts whose condition holds in this test's cluster (a broken image on
 * every node, Argo not installed, one daemon not answering). The others must
 * evaluate to nothing: the aggregator alerts above all, since these daemons
 * run the single-process layout.
 */
const FIRING_HERE = [
  "ImageCacheDaemonNotReady",
  "ImageCacheImagesMissing",
  "ImageCachePullsFailingOnManyNodes",
  "ImageCacheSourceUnavailable",
];

async function installed(tool: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(tool, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

const HAVE_PROMETHEUS = await installed("prometheus") && await installed("promtool");
const UNDER_CI = Deno.env.get("CI") === "true";
const HINT = "apt-get install prometheus (.ci/run does it as root)";

/**
 * A test that needs Prometheus: ignored without it, outside CI (the name
 * says why); under CI it runs and fails on the missing tool.
 */
function prometheusTest(name: string, fn: () => Promise<void>): void {
  const ignore = !HAVE_PROMETHEUS && !UNDER_CI;
  Deno.test({
    name: ignore ? `${name} (ignored: prometheus is not installed; ${HINT})` : name,
    ignore,
    fn: async () => {
      if (!HAVE_PROMETHEUS) throw new Error(`prometheus and promtool are missing: ${HINT}`);
      await fn();
    },
  });
}

async function run(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: MONITORING,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, out: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

// deno-lint-ignore no-explicit-any -- parsed YAML and JSON documents, checked field by field
type Doc = Record<string, any>;

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function alertRules(): Promise<AlertRule[]> {
  const file = parse(await Deno.readTextFile(new URL(RULES_FILE, ROOT))) as Doc;
  return file.groups.flatMap((g: Doc) => g.rules).filter((r: Doc) => r.alert);
}

prometheusTest("promtool check rules accepts the rule file", async () => {
  const { code, out } = await run("promtool", ["check", "rules", "image-cache-daemon.rules.yaml"]);
  assertEquals(code, 0, out);
  assert(out.includes(`SUCCESS: ${(await alertRules()).length} rules found`), out);
});

prometheusTest(
  "promtool test rules passes, with every alert tested firing and silent",
  async () => {
    const { code, out } = await run("promtool", ["test", "rules", "rules_test.yaml"]);
    assertEquals(code, 0, out);
    const tests = parse(await Deno.readTextFile(new URL("rules_test.yaml", MONITORING))) as Doc;
    const cases = tests.tests.flatMap((t: Doc) => t.alert_rule_test ?? []) as Doc[];
    for (const { alert } of await alertRules()) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert(mine.some((c) => c.exp_alerts.length > 0), `${alert} is never tested firing`);
      assert(mine.some((c) => c.exp_alerts.length === 0), `${alert} is never tested silent`);
    }
  },
);

prometheusTest(
  "promtool check metrics finds nothing against Prometheus naming in /metrics",
  async () => {
    // Every family with samples: sources, a failing image, a settled pull.
    const parts = fakeParts([new FakeSource("configmap", { objects: 2, lastActivity: 1e12 })]);
    parts.desired.origins.set(BROKEN, ["static"]);
    parts.puller.images = [{ ref: BROKEN, state: "failed", attempts: 2, consecutiveFailures: 2 }];
    const metrics = new DaemonMetrics();
    metrics.observe(parts);
    metrics.pullStarted(BROKEN);
    metrics.pullFinished(BROKEN, { ok: true, durationMs: 1_500 });
    const text = await metrics.render();
    assert(text.includes("image_cache_daemon_image_consecutive_failures{"), text);
    const { code, out } = await run("promtool", ["check", "metrics"], text);
    assertEquals(out.trim(), "");
    assertEquals(code, 0);
  },
);

prometheusTest(
  "promtool check metrics is not blind: it flags a counter without _total",
  async () => {
    const bad =
      "# HELP image_cache_daemon_pulls Pulls.\n# TYPE image_cache_daemon_pulls counter\n" +
      "image_cache_daemon_pulls 1\n";
    const { code, out } = await run("promtool", ["check", "metrics"], bad);
    assert(code !== 0 && out.includes('counter metrics should have "_total" suffix'), out);
  },
);

// ---------------------------------------------------------------------------
// A real Prometheus scraping daemons on the fake cluster.

/** A pod as Kubernetes discovery would describe it, for the documented job's relabelling. */
interface PodTarget {
  address: string;
  node: string;
  pod: string;
  port: number;
}

/**
 * monitoring/prometheus.yml with its Kubernetes discovery replaced by static
 * targets that carry the `__meta_kubernetes_*` labels discovery would set for
 * the annotated daemon pods; the relabelling is the documented one, unchanged.
 */
async function prometheusConfig(targets: PodTarget[]): Promise<string> {
  const config = parse(await Deno.readTextFile(new URL("prometheus.yml", MONITORING))) as Doc;
  const annotations = await daemonPodAnnotations();
  const [job] = config.scrape_configs;
  assert(job.kubernetes_sd_configs, "the documented job discovers pods");
  delete job.kubernetes_sd_configs;
  job.static_configs = targets.map((t) => ({
    targets: [t.address],
    labels: {
      __meta_kubernetes_namespace: NS,
      __meta_kubernetes_pod_name: t.pod,
      __meta_kubernetes_pod_node_name: t.node,
      __meta_kubernetes_pod_label_app_kubernetes_io_name: "image-cache-daemon",
      __meta_kubernetes_pod_label_app_kubernetes_io_component: "daemon",
      __meta_kubernetes_pod_annotation_prometheus_io_scrape: annotations["prometheus.io/scrape"],
      __meta_kubernetes_pod_annotation_prometheus_io_path: annotations["prometheus.io/path"],
      // The manifests' port is 8080; these daemons share one host, each on its own.
      __meta_kubernetes_pod_annotation_prometheus_io_port: String(t.port),
    },
  }));
  config.global = { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" };
  config.rule_files = config.rule_files.map((f: string) => new URL(f, MONITORING).pathname);
  return JSON.stringify(config);
}

/** The pod annotations of the prometheus-annotations component, as rendered. */
async function daemonPodAnnotations(): Promise<Record<string, string>> {
  const rendered = parseManifests(await kustomizeWithComponents(["prometheus-annotations"]));
  const ds = (rendered as Doc[]).find((d) => d.kind === "DaemonSet")!;
  return ds.spec.template.metadata.annotations;
}

interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

class PrometheusApi {
  constructor(readonly base: string) {}

  async get(path: string, params: Record<string, string> = {}): Promise<Doc> {
    const url = new URL(path, this.base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = await response.json();
    if (body.status !== "success") {
      throw new Error(`${url.pathname} ${JSON.stringify(params)}: ${body.errorType} ${body.error}`);
    }
    return body.data;
  }

  async instant(expr: string): Promise<{ resultType: string; result: PromSeries[] }> {
    return await this.get("/api/v1/query", { query: expr }) as {
      resultType: string;
      result: PromSeries[];
    };
  }

  async range(
    expr: string,
    seconds: number,
  ): Promise<{ resultType: string; result: PromSeries[] }> {
    const end = Date.now() / 1000;
    return await this.get("/api/v1/query_range", {
      query: expr,
      start: String(end - seconds),
      end: String(end),
      step: "1",
    }) as { resultType: string; result: PromSeries[] };
  }
}

/** Grafana's variables, as Grafana would expand them for this test's Prometheus. */
function expandGrafana(expr: string): string {
  const expanded = expr
    .replaceAll("$__rate_interval", "30s")
    .replaceAll("$__interval", "1s")
    .replaceAll("$__range", "1m")
    .replaceAll('=~"$node"', '=~".*"');
  const unknown = expanded.match(/\$\w+/);
  assert(unknown === null, `unknown Grafana variable ${unknown?.[0]} in ${expr}`);
  return expanded;
}

/** Label names a template reads as `{{label}}` (legendFormat) or `$labels.label` (annotations). */
function templateLabels(template: string | undefined): string[] {
  if (template === undefined) return [];
  return [
    ...[...template.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]),
    ...[...template.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]),
  ];
}

/** Metric names an expression reads (identifiers followed by a selector, range or space). */
function metricNames(expr: string): string[] {
  const words = expr.match(/\b[a-z_][a-z0-9_]*(?=\s*[{[)\s]|$)/g) ?? [];
  return words.filter((w) =>
    w.startsWith("image_cache_daemon_") || w.startsWith("process_") || w === "up"
  );
}

prometheusTest(
  "Prometheus scraping daemons on the fake cluster gets data of the right shape for every dashboard panel and alert",
  async () => {
    const server = await startFakeApiServer({ nodes: NODES, argoInstalled: false });
    const dir = await Deno.makeTempDir({ prefix: "icd-prometheus-" });
    const children: Deno.ChildProcess[] = [];
    const logs: Promise<string>[] = [];
    const exited = new Set<number>();
    let prometheus: Deno.ChildProcess | undefined;
    try {
      server.create("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
      server.create("configmaps", {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          namespace: "apps",
          name: "list",
          labels: { "app.kubernetes.io/part-of": "image-cache-daemon" },
        },
        data: { images: JSON.stringify(["alpine:3.20", BROKEN]) },
      });
      // One image no node can pull: a registry problem, on every node.
      for (const node of NODES) server.kubelet(node).markUnpullable(BROKEN);
      const kubeconfig = `${dir}/kubeconfig`;
      await Deno.writeTextFile(kubeconfig, server.kubeconfigYaml());

      const targets: PodTarget[] = [];
      for (const node of NODES) {
        const pod = `image-cache-daemon-${node}`;
        const self = server.create("pods", {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { namespace: NS, name: pod },
          spec: { containers: [{ name: "daemon", image: "icd:0.1.0" }], tolerations: [] },
        });
        const port = freePort();
        const child = spawnDaemon([
          `--kubeconfig=${kubeconfig}`,
          `--node-name=${node}`,
          `--pod-namespace=${NS}`,
          `--pod-name=${pod}`,
          `--pod-uid=${self.metadata.uid}`,
          `--metrics-bind-address=127.0.0.1:${port}`,
          // /status is not scraped; three daemons on one host cannot share its port.
          "--status-bind-address=0",
          "--resync-period=0",
          "--log-level=error",
        ], { denoFlags: [`--allow-read=${kubeconfig}`] });
        const index = children.push(child) - 1;
        child.status.then(() => exited.add(index));
        child.stdout.cancel();
        logs.push(new Response(child.stderr).text());
        targets.push({ address: `127.0.0.1:${port}`, node, pod, port });
      }
      // A daemon pod that does not answer (crashed, or its node is gone).
      const deadPort = freePort();
      targets.push({
        address: `127.0.0.1:${deadPort}`,
        node: "node-4",
        pod: "image-cache-daemon-node-4",
        port: deadPort,
      });

      // Every live daemon has pulled what it can and failed the broken image.
      for (const [i, target] of targets.slice(0, NODES.length).entries()) {
        await waitFor(async () => {
          if (exited.has(i)) throw new Error("the daemon exited");
          const text = await (await fetch(`http://${target.address}/metrics`)).text();
          return text.includes("image_cache_daemon_ready 1") &&
            text.includes(`image_cache_daemon_image_consecutive_failures{image="${BROKEN}"}`) &&
            /image_cache_daemon_present_images 1\b/.test(text);
        }, { what: `${target.node} pulled alpine and failed ${BROKEN}`, timeoutMs: 30_000 })
          .catch(async (error) => {
            if (!exited.has(i)) children[i].kill("SIGTERM");
            throw new Error(`${error.message}\n${target.node}'s log:\n${await logs[i]}`);
          });
      }

      const promPort = freePort();
      const configFile = `${dir}/prometheus.yml`;
      await Deno.writeTextFile(configFile, await prometheusConfig(targets));
      prometheus = new Deno.Command("prometheus", {
        args: [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          "--log.level=warn",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const promLog = new Response(prometheus.stderr).text();
      const api = new PrometheusApi(`http://127.0.0.1:${promPort}`);
      await waitFor(async () => (await fetch(`${api.base}/-/ready`)).ok, {
        what: "Prometheus ready",
        timeoutMs: 30_000,
      }).catch(async (error) => {
        prometheus?.kill("SIGKILL");
        throw new Error(`${error.message}\n${await promLog}`);
      });

      // Scraped at least twice (rates need two samples), and rules evaluated.
      await waitFor(async () => {
        const { result } = await api.instant(
          "count_over_time(image_cache_daemon_build_info[1m]) >= 3",
        );
        return result.length === NODES.length;
      }, { what: "three scrapes of every daemon", timeoutMs: 30_000 });
      const { activeTargets } = await api.get("/api/v1/targets");
      assertEquals(
        activeTargets.map((t: Doc) => [t.labels.node, t.health]).sort(),
        [["node-1", "up"], ["node-2", "up"], ["node-3", "up"], ["node-4", "down"]],
      );
      await waitFor(async () => {
        const { groups } = await api.get("/api/v1/rules");
        return groups[0].rules.every((r: Doc) => r.lastEvaluation > "2000");
      }, { what: "every rule evaluated" });

      const names = await api.get("/api/v1/label/__name__/values") as unknown as string[];
      const exported = new Set(names);
      for (const name of Object.keys(NOT_YET_EXPORTED)) {
        assert(!exported.has(name), `${name} is exported now: remove it from NOT_YET_EXPORTED`);
      }
      /** Empty results are allowed only for expressions over metrics not exported yet. */
      const checkShape = (
        what: string,
        expr: string,
        series: PromSeries[],
        labels: string[],
      ): "data" | "waits" => {
        if (series.length === 0) {
          const waiting = metricNames(expr).filter((n) => n in NOT_YET_EXPORTED);
          assert(waiting.length > 0, `${what} returned no data: ${expr}`);
          return "waits";
        }
        for (const s of series) {
          for (const label of labels) {
            assert(
              label in s.metric,
              `${what}: series ${JSON.stringify(s.metric)} lacks "${label}"`,
            );
          }
        }
        return "data";
      };

      // Every target of every dashboard panel, as Grafana would ask.
      const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD)) as Doc;
      const panels = (dashboard.panels as Doc[]).filter((p) => p.targets);
      assert(panels.length >= 15, `only ${panels.length} panels with queries`);
      let withData = 0;
      for (const panel of panels) {
        for (const target of panel.targets as Doc[]) {
          const expr = expandGrafana(target.expr);
          const what = `panel "${panel.title}" ${target.refId}`;
          const labels = templateLabels(target.legendFormat);
          if (target.instant) {
            const { resultType, result } = await api.instant(expr);
            assertEquals(resultType, "vector", what);
            if (checkShape(what, target.expr, result, labels) === "data") withData++;
          } else {
            const { resultType, result } = await api.range(expr, 10);
            assertEquals(resultType, "matrix", what);
            if (checkShape(what, target.expr, result, labels) === "data") withData++;
          }
        }
      }
      assert(withData >= 20, `only ${withData} dashboard queries returned data`);
      // The node variable lists the daemons' nodes.
      const variable = dashboard.templating.list.find((v: Doc) => v.name === "node");
      assertEquals(variable.definition, "label_values(image_cache_daemon_build_info, node)");
      assertEquals(
        await api.get("/api/v1/label/node/values", { "match[]": "image_cache_daemon_build_info" }),
        NODES,
      );

      // Every alert expression, and the alerts Prometheus itself keeps.
      const expectPending = new Map<string, Record<string, string>[]>();
      for (const rule of await alertRules()) {
        const { resultType, result } = await api.instant(rule.expr);
        assertEquals(resultType, "vector", rule.alert);
        if (!FIRING_HERE.includes(rule.alert)) {
          assertEquals(result, [], `${rule.alert} must not fire here`);
          continue;
        }
        assert(result.length > 0, `${rule.alert} returned no data: ${rule.expr}`);
        const labels = Object.values(rule.annotations ?? {}).flatMap(templateLabels);
        checkShape(`alert ${rule.alert}`, rule.expr, result, labels);
        expectPending.set(rule.alert, result.map((s) => s.metric));
      }
      assertEquals([...expectPending.keys()].sort(), FIRING_HERE);
      assertEquals(
        expectPending.get("ImageCachePullsFailingOnManyNodes")!.map((m) => m.image),
        [BROKEN],
      );
      assertEquals(
        expectPending.get("ImageCacheImagesMissing")!.map((m) => m.node).sort(),
        NODES,
      );
      assertEquals(expectPending.get("ImageCacheDaemonNotReady")!.map((m) => m.node), ["node-4"]);
      const { groups } = await api.get("/api/v1/rules");
      for (const rule of groups[0].rules as Doc[]) {
        assertEquals([rule.name, rule.health, rule.lastError ?? ""], [rule.name, "ok", ""]);
      }
      await waitFor(async () => {
        const { alerts } = await api.get("/api/v1/alerts");
        const active = new Set((alerts as Doc[]).map((a) => a.labels.alertname));
        return [...expectPending.keys()].every((name) => active.has(name));
      }, { what: "Prometheus holds each alert whose condition is true as pending" });
    } finally {
      if (prometheus) {
        prometheus.kill("SIGTERM");
        await prometheus.status;
      }
      for (const [i, child] of children.entries()) {
        if (!exited.has(i)) child.kill("SIGTERM");
        await child.status;
      }
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
