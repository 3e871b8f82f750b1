/**
 * Deterministic cluster contents for the benchmarks: realistic Argo
 * WorkflowTemplates (steps, DAG, script, containerSet, sidecars, inline
 * templates, parameters) and labelled ConfigMaps, drawn from a fixed pool of
 * image references with a seeded PRNG, so every run sees the same objects.
 *
 * @module
 */

/** A seeded PRNG (mulberry32): same seed, same sequence, on every machine. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REGISTRIES = [
  "",
  "docker.io/",
  "ghcr.io/acme-data/",
  "quay.io/analytics/",
  "registry.example.com/ml-platform/",
  "123456789012.dkr.ecr.eu-west-1.amazonaws.com/",
  "europe-docker.pkg.dev/acme-prod/pipelines/",
];
const NAMES = [
  "ingest",
  "transform",
  "validate",
  "train",
  "score",
  "export",
  "notify",
  "dbt-runner",
  "spark-job",
  "python-base",
  "feature-store",
  "report",
  "etl-worker",
  "model-server",
  "uploader",
  "s3-sync",
];

function hex(random: () => number, length: number): string {
  let out = "";
  while (out.length < length) out += Math.floor(random() * 16).toString(16);
  return out;
}

/**
 * `count` distinct image references as people write them: short Docker Hub
 * names, registry paths, semver and date tags, and about one in eight pinned
 * by digest.
 */
export function imagePool(count: number, seed = 1): string[] {
  const random = seededRandom(seed);
  const pool: string[] = [];
  for (let i = 0; i < count; i++) {
    const registry = REGISTRIES[i % REGISTRIES.length];
    const name = `${NAMES[Math.floor(random() * NAMES.length)]}-${i}`;
    const pinned = random() < 0.125;
    if (pinned) {
      pool.push(`${registry}${name}@sha256:${hex(random, 64)}`);
    } else {
      const tag = random() < 0.5
        ? `${1 + Math.floor(random() * 4)}.${Math.floor(random() * 20)}.${
          Math.floor(random() * 10)
        }`
        : `2025${String(1 + Math.floor(random() * 12)).padStart(2, "0")}${
          String(1 + Math.floor(random() * 28)).padStart(2, "0")
        }-${hex(random, 7)}`;
      pool.push(`${registry}${name}:${tag}`);
    }
  }
  return pool;
}

/** Options of {@linkcode workflowTemplates}. */
export interface WorkflowTemplateOptions {
  /** How many objects. */
  count: number;
  /** The images to draw from; every one is used at least once when `count * 5 >= pool.length`. */
  pool: readonly string[];
  /** @default {7} */
  seed?: number;
  /** Namespaces the objects spread over. @default {20} */
  namespaces?: number;
}

const ENV = [
  { name: "PIPELINE_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
  { name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "http://otel-collector.observability:4317" },
  { name: "WAREHOUSE_URL", value: "postgresql://warehouse.internal:5432/analytics" },
  { name: "LOG_LEVEL", value: "info" },
  { name: "AWS_REGION", value: "eu-west-1" },
  { name: "PIPELINE_STAGE", value: "production" },
  {
    name: "DB_PASSWORD",
    valueFrom: { secretKeyRef: { name: "warehouse-credentials", key: "password" } },
  },
];

function resources(random: () => number) {
  const cpu = [100, 250, 500, 1000][Math.floor(random() * 4)];
  const mem = [128, 256, 512, 1024, 2048][Math.floor(random() * 5)];
  return {
    requests: { cpu: `${cpu}m`, memory: `${mem}Mi` },
    limits: { cpu: `${cpu * 2}m`, memory: `${mem * 2}Mi` },
  };
}

/**
 * WorkflowTemplates of about 8 KB each with five templates: a steps entry
 * point, a container with a sidecar, a DAG with an inline task template, a
 * script, and a containerSet. Images are picked round-robin from the pool
 * (so the distinct count is exactly `min(pool, 5·count)`-ish) and reached in
 * three ways: literally, through a workflow parameter, and through an input
 * parameter's default.
 */
export function workflowTemplates(options: WorkflowTemplateOptions): Record<string, unknown>[] {
  const random = seededRandom(options.seed ?? 7);
  const { pool, count } = options;
  const namespaces = options.namespaces ?? 20;
  let next = 0;
  const pick = () => pool[(next++) % pool.length];
  const objects: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const main = pick();
    const sidecar = pick();
    const inline = pick();
    const script = pick();
    const set = pick();
    const name = `pipeline-${String(i).padStart(5, "0")}`;
    const volumeMounts = [
      { name: "work", mountPath: "/work" },
      { name: "config", mountPath: "/etc/pipeline", readOnly: true },
    ];
    objects.push({
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: {
        namespace: `team-${i % namespaces}`,
        name,
        labels: {
          "app.kubernetes.io/name": name,
          "app.kubernetes.io/managed-by": "argocd",
          "workflows.argoproj.io/controller-instanceid": "main",
        },
        annotations: {
          "workflows.argoproj.io/description":
            `Nightly pipeline ${i}: ingest, validate, transform and publish the ${
              NAMES[i % NAMES.length]
            } dataset for the analytics warehouse.`,
          "workflows.argoproj.io/maintainer": `data-team-${i % namespaces}@acme.example`,
          "workflows.argoproj.io/version": ">= 3.5.0",
          "acme.io/runbook": `https://runbooks.acme.example/pipelines/${name}#on-failure`,
          "acme.io/owner-slack": `#data-team-${i % namespaces}-alerts`,
          "argocd.argoproj.io/tracking-id": `pipelines:argoproj.io/WorkflowTemplate:team-${
            i % namespaces
          }/${name}`,
        },
      },
      spec: {
        entrypoint: "main",
        serviceAccountName: "pipeline-runner",
        arguments: {
          parameters: [
            { name: "image", value: main },
            { name: "date", value: "{{workflow.creationTimestamp.Y}}" },
            { name: "bucket", value: `s3://acme-data-${i % 50}/raw` },
          ],
        },
        volumeClaimTemplates: [{
          metadata: { name: "work" },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
        }],
        volumes: [{ name: "config", configMap: { name: `${name}-config` } }],
        podGC: { strategy: "OnPodSuccess" },
        nodeSelector: { "node.kubernetes.io/pool": "batch" },
        tolerations: [
          { key: "dedicated", operator: "Equal", value: "batch", effect: "NoSchedule" },
          { key: "spot", operator: "Exists", effect: "NoSchedule" },
        ],
        affinity: {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [{
              weight: 50,
              podAffinityTerm: {
                topologyKey: "kubernetes.io/hostname",
                labelSelector: { matchLabels: { "app.kubernetes.io/name": name } },
              },
            }],
          },
        },
        podMetadata: {
          labels: {
            "acme.io/team": `team-${i % namespaces}`,
            "acme.io/cost-center": `cc-${i % 7}`,
          },
          annotations: { "cluster-autoscaler.kubernetes.io/safe-to-evict": "true" },
        },
        securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 },
        synchronization: {
          semaphores: [{ configMapKeyRef: { name: "pipeline-limits", key: "warehouse" } }],
        },
        metrics: {
          prometheus: [{
            name: "pipeline_duration_seconds",
            help: "Duration of the pipeline",
            labels: [{ key: "pipeline", value: name }],
            gauge: { realtime: true, value: "{{workflow.duration}}" },
          }],
        },
        onExit: "publish",
        artifactRepositoryRef: { configMap: "artifact-repositories", key: "warehouse" },
        hooks: {
          running: { expression: "workflow.status == 'Running'", template: "publish" },
        },
        ttlStrategy: { secondsAfterCompletion: 86400 },
        templates: [
          {
            name: "main",
            steps: [
              [{
                name: "extract",
                template: "extract",
                arguments: {
                  parameters: [{ name: "bucket", value: "{{workflow.parameters.bucket}}" }],
                },
              }],
              [
                { name: "process", template: "process" },
                {
                  name: "score",
                  template: "score",
                  when: "{{steps.extract.outputs.result}} != empty",
                },
              ],
              [{ name: "publish", template: "publish" }],
            ],
          },
          {
            name: "extract",
            inputs: { parameters: [{ name: "bucket" }] },
            retryStrategy: { limit: "3", retryPolicy: "Always", backoff: { duration: "30s" } },
            container: {
              image: "{{workflow.parameters.image}}",
              command: ["/usr/local/bin/extract"],
              args: [
                "--source",
                "{{inputs.parameters.bucket}}",
                "--date",
                "{{workflow.parameters.date}}",
              ],
              env: ENV,
              resources: resources(random),
              volumeMounts,
            },
            sidecars: [{
              name: "proxy",
              image: sidecar,
              args: ["--port", "15001", "--upstream", "warehouse.internal:5432"],
              resources: resources(random),
              mirrorVolumeMounts: true,
            }],
            outputs: {
              artifacts: [{ name: "raw", path: "/work/raw", s3: { key: `${name}/raw.tgz` } }],
            },
          },
          {
            name: "process",
            retryStrategy: {
              limit: "2",
              retryPolicy: "OnError",
              backoff: { duration: "1m", factor: "2", maxDuration: "10m" },
            },
            dag: {
              tasks: [
                {
                  name: "clean",
                  inline: {
                    container: {
                      image: inline,
                      command: ["python", "-m", "pipeline.clean"],
                      args: ["--in", "/work/raw", "--out", "/work/clean"],
                      env: ENV.slice(0, 3),
                      resources: resources(random),
                    },
                  },
                },
                {
                  name: "aggregate",
                  dependencies: ["clean"],
                  template: "score",
                  arguments: { parameters: [{ name: "mode", value: "aggregate" }] },
                },
              ],
            },
          },
          {
            name: "score",
            inputs: {
              parameters: [
                { name: "mode", value: "score" },
                { name: "runtime", value: script },
              ],
            },
            script: {
              image: "{{inputs.parameters.runtime}}",
              command: ["python"],
              source: [
                "import json, os, sys",
                "from pipeline import model",
                "",
                "mode = '{{inputs.parameters.mode}}'",
                "rows = model.load('/work/clean')",
                "result = model.score(rows) if mode == 'score' else model.aggregate(rows)",
                "if not rows:",
                "    print('no rows for ' + os.environ.get('PIPELINE_STAGE', 'dev'), file=sys.stderr)",
                "    sys.exit(0)",
                "metrics = {'rows': len(rows), 'mode': mode, 'columns': sorted(rows[0].keys())}",
                "with open('/work/metrics.json', 'w') as out:",
                "    json.dump(metrics, out)",
                "json.dump({'rows': len(rows), 'mode': mode}, sys.stdout)",
                "",
              ].join("\n"),
              resources: resources(random),
              volumeMounts,
            },
          },
          {
            name: "publish",
            activeDeadlineSeconds: 3600,
            inputs: {
              artifacts: [{
                name: "clean",
                path: "/work/clean",
                s3: {
                  endpoint: "s3.eu-west-1.amazonaws.com",
                  bucket: `acme-data-${i % 50}`,
                  key: `${name}/{{workflow.parameters.date}}/clean.tgz`,
                  accessKeySecret: { name: "s3-credentials", key: "accessKey" },
                  secretKeySecret: { name: "s3-credentials", key: "secretKey" },
                },
              }],
            },
            podSpecPatch: JSON.stringify({
              terminationGracePeriodSeconds: 120,
              priorityClassName: "batch-low",
            }),
            containerSet: {
              volumeMounts,
              containers: [
                {
                  name: "package",
                  image: set,
                  command: ["sh", "-c"],
                  args: ["tar czf /work/out.tgz -C /work clean"],
                  resources: resources(random),
                },
                {
                  name: "upload",
                  image: main,
                  dependencies: ["package"],
                  command: ["/usr/local/bin/upload"],
                  args: ["--file", "/work/out.tgz", "--to", "{{workflow.parameters.bucket}}"],
                  env: ENV,
                  resources: resources(random),
                },
              ],
            },
          },
        ],
      },
    });
  }
  return objects;
}

/** Options of {@linkcode configMaps}. */
export interface ConfigMapOptions {
  /** How many labelled ConfigMaps. */
  count: number;
  pool: readonly string[];
  /** Labels that make the daemon read them. */
  labels: Record<string, string>;
  /** @default {11} */
  seed?: number;
}

/**
 * Labelled ConfigMaps with 3–8 images each from the pool, half as a JSON
 * array under `images`, half as a YAML list under an annotated key.
 */
export function configMaps(options: ConfigMapOptions): Record<string, unknown>[] {
  const random = seededRandom(options.seed ?? 11);
  const objects: Record<string, unknown>[] = [];
  for (let i = 0; i < options.count; i++) {
    const n = 3 + Math.floor(random() * 6);
    const images: string[] = [];
    for (let j = 0; j < n; j++) {
      images.push(options.pool[Math.floor(random() * options.pool.length)]);
    }
    const yaml = i % 2 === 1;
    objects.push({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        namespace: `apps-${i % 25}`,
        name: `prepull-${String(i).padStart(5, "0")}`,
        labels: { ...options.labels, "app.kubernetes.io/instance": `app-${i}` },
        ...(yaml ? { annotations: { "image-cache-daemon/key": "prepull.yaml" } } : {}),
      },
      data: yaml
        ? { "prepull.yaml": images.map((image) => `- ${image}\n`).join("") }
        : { images: JSON.stringify(images) },
    });
  }
  return objects;
}
