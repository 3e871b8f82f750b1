import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { stringify } from "yaml";
import {
  denoImagesIo,
  type DirEntry,
  type ImagesCommandIo,
  runImagesCommand,
} from "./images_command.ts";

const ROOT = new URL("../", import.meta.url);
const FIXTURES = "integration/fixtures";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command on the real fixture files (cwd is the repository root). */
async function run(args: string[], stdin = ""): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: ImagesCommandIo = {
    ...denoImagesIo(),
    readFile: (path) => Deno.readTextFile(new URL(path, ROOT)),
    readDir: (path) => Array.fromAsync(Deno.readDir(new URL(path, ROOT))),
    isDirectory: async (path) => (await Deno.stat(new URL(path, ROOT))).isDirectory,
    stdin: () => Promise.resolve(stdin),
    print: (text) => stdout += text,
    printError: (text) => stderr += text + "\n",
  };
  const code = await runImagesCommand(args, io);
  return { code, stdout, stderr };
}

/** Runs the command on an in-memory file system. */
async function runInMemory(
  args: string[],
  files: Record<string, string>,
  links: Record<string, string> = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const isDir = (path: string) =>
    Object.keys(files).some((f) => f.startsWith(path + "/")) ||
    Object.keys(links).some((l) => l.startsWith(path + "/"));
  const resolve = (path: string) => links[path] ?? path;
  const io: ImagesCommandIo = {
    readFile: (path) => {
      const text = files[resolve(path)];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file or directory: "${path}"`))
        : Promise.resolve(text);
    },
    readDir: (path) => {
      const names = new Map<string, DirEntry>();
      for (const entry of [...Object.keys(files), ...Object.keys(links)]) {
        if (!entry.startsWith(path + "/")) continue;
        const [name, ...rest] = entry.slice(path.length + 1).split("/");
        const isSymlink = rest.length === 0 && entry in links;
        names.set(name, {
          name,
          isFile: rest.length === 0 && !isSymlink,
          isDirectory: rest.length > 0,
          isSymlink,
        });
      }
      return Promise.resolve([...names.values()]);
    },
    isDirectory: (path) => {
      const target = resolve(path);
      if (target in files) return Promise.resolve(false);
      if (isDir(target)) return Promise.resolve(true);
      return Promise.reject(new Deno.errors.NotFound(`No such file or directory: "${path}"`));
    },
    stdin: () => Promise.resolve(""),
    print: (text) => stdout += text,
    printError: (text) => stderr += text + "\n",
  };
  const code = await runImagesCommand(args, io);
  return { code, stdout, stderr };
}

const FIXTURE_IMAGES = [
  "docker.io/alpine/git:2.45.2",
  "docker.io/aquasec/trivy:0.53.0",
  "docker.io/curlimages/curl:8.8.0",
  "docker.io/fluent/fluent-bit:3.0",
  "docker.io/fluent/fluent-bit:3.1",
  "docker.io/golangci/golangci-lint:v1.59.1",
  "docker.io/grafana/grafana:11.1.0",
  "docker.io/hadolint/hadolint:v2.12.0",
  "docker.io/koalaman/shellcheck:v0.10.0",
  "docker.io/library/alpine:3.20",
  "docker.io/library/busybox:1.36",
  "docker.io/library/debian:bookworm-slim",
  "docker.io/library/golang:1.22",
  "docker.io/library/maven:3.9-eclipse-temurin-21",
  "docker.io/library/nginx:1.27",
  "docker.io/library/node:20-alpine",
  "docker.io/library/postgres:16-alpine",
  "docker.io/library/python:3.10-slim",
  "docker.io/library/python:3.11-slim",
  "docker.io/library/python:3.12-alpine",
  "docker.io/library/python:3.12-slim",
  "docker.io/library/redis:7.2",
  "docker.io/library/ubuntu:24.04",
  "docker.io/prom/prometheus:v2.53.0",
  "gcr.io/kaniko-project/executor:v1.23.0",
  "ghcr.io/acme/etl:2024.06",
  "ghcr.io/groundnuty/k8s-wait-for:v2.0",
  "quay.io/prometheus/node-exporter:v1.8.1",
  "registry.example.com/base/runner:2.1",
  "registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097",
];

const VALID = ["-f", `${FIXTURES}/argo`, "-f", `${FIXTURES}/configmaps/valid`];

Deno.test("images prints the fixtures' references sorted, one per line, and exits 0", async () => {
  const { code, stdout, stderr } = await run(VALID);
  assertEquals(code, 0);
  assertEquals(stdout, FIXTURE_IMAGES.join("\n") + "\n");
  assert(!stdout.includes("should-not-appear"), "an unlabelled ConfigMap counted");
  assertEquals(stderr.trim().split("\n"), [
    `image-cache-daemon images: note: ${FIXTURES}/configmaps/valid/platform-images.yaml: ConfigMap "platform/unrelated" not read: its labels do not match --configmap-selector`,
    'image-cache-daemon images: rejected: configmap/team-a/team-a: Cannot parse image reference "ghcr.io/acme/api:{{ .Values.tag }}": templated, not resolvable',
    'image-cache-daemon images: rejected: cronworkflow/data/nightly-etl: Cannot parse image reference "{{workflow.parameters.report-image}}": templated, not resolvable',
    'image-cache-daemon images: rejected: workflowtemplate/ci/test-matrix: Cannot parse image reference "{{inputs.parameters.image}}": templated, not resolvable',
  ]);
});

Deno.test("images --output json gives origins, rejected references and errors", async () => {
  const { code, stdout } = await run([...VALID, "--output", "json"]);
  assertEquals(code, 0);
  const report = JSON.parse(stdout);
  assertEquals(Object.keys(report), ["images", "rejected", "errors", "notes"]);
  assertEquals(report.images.map((i: { image: string }) => i.image), FIXTURE_IMAGES);
  const origins = (image: string) =>
    report.images.find((i: { image: string }) => i.image === image).origins;
  assertEquals(origins("docker.io/library/alpine:3.20"), [
    "configmap/monitoring/monitoring-images",
    "configmap/platform/platform-images",
  ]);
  assertEquals(origins("docker.io/fluent/fluent-bit:3.0"), [
    "clusterworkflowtemplate/shared-defaults",
  ]);
  assertEquals(origins("docker.io/koalaman/shellcheck:v0.10.0"), ["workflowtemplate/tools/lint"]);
  assertEquals(origins("docker.io/hadolint/hadolint:v2.12.0"), ["configmap/tools/tool-images"]);
  assertEquals(origins("ghcr.io/acme/etl:2024.06"), ["cronworkflow/data/nightly-etl"]);
  assertEquals(report.rejected, [
    {
      origin: "configmap/team-a/team-a",
      image: "ghcr.io/acme/api:{{ .Values.tag }}",
      reason:
        'Cannot parse image reference "ghcr.io/acme/api:{{ .Values.tag }}": templated, not resolvable',
    },
    {
      origin: "cronworkflow/data/nightly-etl",
      image: "{{workflow.parameters.report-image}}",
      reason:
        'Cannot parse image reference "{{workflow.parameters.report-image}}": templated, not resolvable',
    },
    {
      origin: "workflowtemplate/ci/test-matrix",
      image: "{{inputs.parameters.image}}",
      reason:
        'Cannot parse image reference "{{inputs.parameters.image}}": templated, not resolvable',
    },
  ]);
  assertEquals(report.errors, []);
  assertEquals(report.notes, [{
    origin: `${FIXTURES}/configmaps/valid/platform-images.yaml`,
    note: 'ConfigMap "platform/unrelated" not read: its labels do not match --configmap-selector',
  }]);
});

Deno.test("images reads standard input given as -", async () => {
  const list = await Deno.readTextFile(new URL(`${FIXTURES}/argo/tools.list.yaml`, ROOT));
  const { code, stdout } = await run(["-f", "-", "-o", "json"], list);
  assertEquals(code, 0);
  assertEquals(JSON.parse(stdout).images, [
    { image: "docker.io/hadolint/hadolint:v2.12.0", origins: ["configmap/tools/tool-images"] },
    { image: "docker.io/koalaman/shellcheck:v0.10.0", origins: ["workflowtemplate/tools/lint"] },
  ]);
});

Deno.test("images applies the daemon's source flags", async (t) => {
  const cases: { name: string; args: string[]; has: string[]; lacks: string[] }[] = [
    {
      name: "--configmap-selector narrows the ConfigMaps that count",
      args: ["--configmap-selector", "tier=apps"],
      has: ["docker.io/library/nginx:1.27"],
      lacks: ["docker.io/grafana/grafana:11.1.0", "quay.io/prometheus/node-exporter:v1.8.1"],
    },
    {
      name: "an empty selector selects every ConfigMap",
      args: ["--configmap-selector="],
      has: ["docker.io/library/should-not-appear:1.0", "docker.io/library/nginx:1.27"],
      lacks: [],
    },
    {
      name: "--configmap-namespaces keeps only the named namespaces",
      args: ["--configmap-namespaces", "platform", "--configmap-namespaces", "tools"],
      has: ["quay.io/prometheus/node-exporter:v1.8.1", "docker.io/hadolint/hadolint:v2.12.0"],
      lacks: ["docker.io/grafana/grafana:11.1.0", "docker.io/library/nginx:1.27"],
    },
    {
      name: "--watch-configmaps=false ignores ConfigMaps",
      args: ["--watch-configmaps=false"],
      has: ["docker.io/library/golang:1.22"],
      lacks: ["docker.io/library/nginx:1.27", "docker.io/hadolint/hadolint:v2.12.0"],
    },
    {
      name: "--watch-argo-cron-workflows=false ignores CronWorkflows",
      args: ["--watch-argo-cron-workflows=false"],
      has: ["docker.io/library/golang:1.22"],
      lacks: ["ghcr.io/acme/etl:2024.06"],
    },
    {
      name: "--watch-argo-workflow-templates=false ignores WorkflowTemplates",
      args: ["--watch-argo-workflow-templates=false"],
      has: ["registry.example.com/base/runner:2.1"],
      lacks: ["docker.io/library/golang:1.22", "docker.io/koalaman/shellcheck:v0.10.0"],
    },
    {
      name: "--watch-argo-cluster-workflow-templates=false ignores ClusterWorkflowTemplates",
      args: ["--watch-argo-cluster-workflow-templates=false"],
      has: ["docker.io/library/golang:1.22"],
      lacks: ["registry.example.com/base/runner:2.1"],
    },
    {
      name: "--image adds static references",
      args: ["--image", "nginx:1.27-alpine"],
      has: ["docker.io/library/nginx:1.27-alpine"],
      lacks: [],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const { code, stdout } = await run([...VALID, ...c.args]);
      assertEquals(code, 0);
      const images = stdout.trim().split("\n");
      for (const image of c.has) assert(images.includes(image), `missing ${image}`);
      for (const image of c.lacks) assert(!images.includes(image), `unexpected ${image}`);
    });
  }
});

Deno.test("images exits 1 and reports files or ConfigMaps it cannot read", async () => {
  const { code, stdout } = await run([
    "-f",
    `${FIXTURES}/configmaps/invalid`,
    "-f",
    `${FIXTURES}/no-such-file.yaml`,
    "-o",
    "json",
  ]);
  assertEquals(code, 1);
  const report = JSON.parse(stdout);
  assertEquals(report.images, [
    { image: "docker.io/library/busybox:1.36", origins: ["configmap/broken/still-good"] },
  ]);
  const errors: { origin: string; error: string }[] = report.errors;
  assertEquals(errors.slice(0, 3), [
    {
      origin: "configmap/broken/not-a-list",
      error:
        'ConfigMap "broken/not-a-list" key "images": expected a list of strings, got an object',
    },
    {
      origin: "configmap/broken/number-item",
      error: 'ConfigMap "broken/number-item" key "images": item 3 is a number, expected a string',
    },
    {
      origin: "configmap/broken/missing-key",
      error: 'ConfigMap "broken/missing-key" key "images" is missing',
    },
  ]);
  assertEquals(errors[3].origin, `${FIXTURES}/configmaps/invalid/unparsable.yaml`);
  assertMatch(errors[3].error, /^Invalid YAML: .* at line 9, column 1$/);
  assertEquals(errors[4].origin, `${FIXTURES}/no-such-file.yaml`);
  assertMatch(errors[4].error, /^Cannot read: /);
  assertEquals(errors.length, 5);
});

Deno.test("images reads directories recursively, manifest extensions only", async (t) => {
  const cm = (name: string, image: string) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name,
        namespace: "ns",
        labels: { "app.kubernetes.io/part-of": "image-cache-daemon" },
      },
      data: { images: JSON.stringify([image]) },
    });
  await t.step("nested directories, *.yaml, *.yml and *.json, other files skipped", async () => {
    const { code, stdout } = await runInMemory(["-f", "k8s"], {
      "k8s/a.yaml": cm("a", "a:1"),
      "k8s/deep/er/b.yml": cm("b", "b:1"),
      "k8s/deep/c.json": cm("c", "c:1"),
      "k8s/notes.txt": cm("d", "d:1"),
      "k8s/deep/kustomization.yaml.orig": cm("e", "e:1"),
    });
    assertEquals(code, 0);
    assertEquals(stdout, "docker.io/library/a:1\ndocker.io/library/b:1\ndocker.io/library/c:1\n");
  });
  await t.step("a file named explicitly is read whatever its extension", async () => {
    const { stdout } = await runInMemory(["-f", "k8s/notes.txt"], {
      "k8s/notes.txt": cm("d", "d:1"),
    });
    assertEquals(stdout, "docker.io/library/d:1\n");
  });
  await t.step("links to files are followed, links to directories are not", async () => {
    const { code, stdout } = await runInMemory(["-f", "k8s"], {
      "k8s/a.yaml": cm("a", "a:1"),
      "shared/b.yaml": cm("b", "b:1"),
    }, { "k8s/b.yaml": "shared/b.yaml", "k8s/loop.yaml": "k8s" });
    assertEquals(code, 0);
    assertEquals(stdout, "docker.io/library/a:1\ndocker.io/library/b:1\n");
  });
  await t.step("invalid JSON in a *.json file", async () => {
    const { code, stderr } = await runInMemory(["-f", "k8s"], { "k8s/a.json": "{" });
    assertEquals(code, 1);
    assertMatch(stderr, /^image-cache-daemon images: error: k8s\/a\.json: Invalid JSON: /);
  });
  await t.step("one bad document among good ones", async () => {
    const { code, stdout, stderr } = await runInMemory(["-f", "all.yaml"], {
      "all.yaml": `${cm("a", "a:1")}\n---\nkind: [\n---\n${cm("b", "b:1")}\n`,
    });
    assertEquals(code, 1);
    assertEquals(stdout, "docker.io/library/a:1\ndocker.io/library/b:1\n");
    assertMatch(stderr, /error: all\.yaml: Document 2: invalid YAML: /);
  });
  await t.step("List kinds, nested, and *List kinds from kubectl", async () => {
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: [
        JSON.parse(cm("a", "a:1")),
        { apiVersion: "v1", kind: "ConfigMapList", items: [JSON.parse(cm("b", "b:1"))] },
      ],
    };
    const { stdout } = await runInMemory(["-f", "list.json"], {
      "list.json": JSON.stringify(list),
    });
    assertEquals(stdout, "docker.io/library/a:1\ndocker.io/library/b:1\n");
  });
  await t.step("objects of other kinds and groups are not read, and say so", async () => {
    const { code, stdout, stderr } = await runInMemory(["-f", "x.yaml"], {
      "x.yaml": [
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {template: {spec: {containers: [{image: nginx}]}}}",
        "apiVersion: example.com/v1\nkind: WorkflowTemplate\nmetadata: {name: x}\nspec: {templates: [{container: {image: nope}}]}",
        "just a string",
        "",
      ].join("\n---\n"),
    });
    assertEquals(code, 0);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n"), [
      'image-cache-daemon images: note: x.yaml: Deployment "shop/web" not read: the daemon reads only ConfigMaps, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows',
      'image-cache-daemon images: note: x.yaml: WorkflowTemplate "x" not read: apiVersion "example.com/v1" is not the one the daemon watches',
      "image-cache-daemon images: note: x.yaml: document 3 is not a Kubernetes object",
    ]);
  });
});

Deno.test("images exits 2 on bad flags", async (t) => {
  const cases: [string[], string][] = [
    [["-f", "x", "--output", "yaml"], '--output "yaml": expected text or json'],
    [["-f", "x", "--configmap-selector", "a b c"], '--configmap-selector "a b c": '],
    [["-f", "x", "--watch-configmaps=maybe"], '--watch-configmaps "maybe": expected true or false'],
    [["-f", "x", "--node-name", "n"], "Unknown flag --node-name"],
    [["x.yaml"], 'Unexpected argument "x.yaml": give manifests with -f'],
    [[], "No manifests: give -f FILE, -f DIR or -f - for standard input"],
    [["-f"], "--filename: missing value"],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const { code, stdout, stderr } = await runInMemory(args, {});
      assertEquals(code, 2);
      assertEquals(stdout, "");
      assert(stderr.startsWith(`image-cache-daemon images: ${message}`), stderr);
    });
  }
});

Deno.test("images --help lists its flags and the daemon's source flags", async () => {
  const { code, stdout } = await runInMemory(["--help"], {});
  assertEquals(code, 0);
  for (
    const flag of [
      "-f, --filename",
      "-o, --output",
      "--image",
      "--configmap-selector",
      "--configmap-namespaces",
      "--watch-configmaps",
      "--watch-argo-workflow-templates",
      "--watch-argo-cluster-workflow-templates",
      "--watch-argo-cron-workflows",
    ]
  ) {
    assert(stdout.includes(flag), `help lacks ${flag}`);
  }
});

Deno.test("main.ts images runs with read permission only", async () => {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "main.ts",
      "images",
      "-f",
      `${FIXTURES}/argo/nightly-etl.cronworkflow.yaml`,
      "-f",
      "-",
    ],
    cwd: ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      NO_COLOR: "1",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  const writer = child.stdin.getWriter();
  await writer.write(
    new TextEncoder().encode(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {app.kubernetes.io/part-of: image-cache-daemon}\ndata:\n  images: '[alpine]'\n",
    ),
  );
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  assertEquals(
    text.decode(stdout),
    [
      "docker.io/library/alpine:latest",
      "ghcr.io/acme/etl:2024.06",
      "ghcr.io/groundnuty/k8s-wait-for:v2.0",
      "",
    ].join("\n"),
  );
  assertMatch(text.decode(stderr), /cronworkflow\/data\/nightly-etl: .*templated, not resolvable/);
  assertEquals(code, 0);
});

Deno.test("images notes files with no manifests, and objects its flags leave out", async (t) => {
  await t.step("an empty file and one of only comments", async () => {
    const { code, stdout, stderr } = await runInMemory(["-f", "k8s"], {
      "k8s/empty.yaml": "",
      "k8s/comments.yaml": "# nothing here yet\n---\n",
    });
    assertEquals(code, 0);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n"), [
      "image-cache-daemon images: note: k8s/comments.yaml: no manifests",
      "image-cache-daemon images: note: k8s/empty.yaml: no manifests",
    ]);
  });
  await t.step("a kind its --watch flag turns off, a ConfigMap in another namespace", async () => {
    const { code, stderr } = await runInMemory(
      ["-f", "x.yaml", "--watch-argo-cron-workflows=false", "--configmap-namespaces", "a"],
      {
        "x.yaml": [
          "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: n, namespace: a}\nspec: {workflowSpec: {templates: []}}",
          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: b, labels: {app.kubernetes.io/part-of: image-cache-daemon}}\ndata: {images: '[alpine]'}",
        ].join("\n---\n"),
      },
    );
    assertEquals(code, 0);
    assertEquals(stderr.trim().split("\n"), [
      'image-cache-daemon images: note: x.yaml: CronWorkflow "a/n" not read: --watch-argo-cron-workflows is false',
      'image-cache-daemon images: note: x.yaml: ConfigMap "b/c" not read: its namespace is not one of --configmap-namespaces',
    ]);
  });
});

Deno.test("images rejects the Argo objects the daemon rejects, as errors that make it exit 1", async () => {
  const wt = (name: string, spec: unknown) =>
    JSON.stringify({
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "ci", name },
      ...(spec === undefined ? {} : { spec }),
    });
  let deep: Record<string, unknown> = { container: { image: "alpine" } };
  for (let i = 0; i < 40; i++) deep = { steps: [[{ name: `s${i}`, inline: deep }]] };
  const files = {
    "k/good.json": wt("good", { templates: [{ name: "a", container: { image: "nginx:1.27" } }] }),
    "k/no-spec.json": wt("no-spec", undefined),
    "k/not-a-list.json": wt("not-a-list", { templates: { a: 1 } }),
    "k/deep.json": wt("deep", { templates: [{ name: "deep", ...deep }] }),
    "k/number.json": wt("number", { templates: [{ name: "a", container: { image: 5 } }] }),
    "k/empty.json": wt("empty", { templates: [{ name: "a", container: { image: "" } }] }),
    "k/grow.yaml": await Deno.readTextFile(
      new URL(`${FIXTURES}/argo-hostile/doubling.workflowtemplate.yaml`, ROOT),
    ),
    "k/pad.yaml": await Deno.readTextFile(
      new URL(`${FIXTURES}/argo-hostile/huge-format.workflowtemplate.yaml`, ROOT),
    ),
  };
  const { code, stdout, stderr } = await runInMemory(["-f", "k"], files);
  assertEquals(code, 1);
  assertEquals(stdout, "docker.io/library/nginx:1.27\n");
  assertEquals(stderr.trim().split("\n"), [
    'image-cache-daemon images: rejected: workflowtemplate/ci/empty: Cannot parse image reference "": empty reference',
    'image-cache-daemon images: error: workflowtemplate/ci/deep: WorkflowTemplate "ci/deep": template "deep": inline templates nest deeper than 32 levels (limit MAX_INLINE_DEPTH = 32)',
    'image-cache-daemon images: error: workflowtemplate/tenant/grow: WorkflowTemplate "tenant/grow": template "grow": an expanded string passes 65536 characters (limit MAX_EXPANDED_LENGTH = 65536)',
    'image-cache-daemon images: error: workflowtemplate/ci/no-spec: WorkflowTemplate "ci/no-spec": spec is missing',
    'image-cache-daemon images: error: workflowtemplate/ci/not-a-list: WorkflowTemplate "ci/not-a-list": spec.templates is a map, expected a list of templates',
    'image-cache-daemon images: error: workflowtemplate/ci/number: WorkflowTemplate "ci/number": template "a": container.image is a number, expected an image reference',
    'image-cache-daemon images: error: workflowtemplate/tenant/pad: WorkflowTemplate "tenant/pad": template "pad", step "s": withSequence format "%0999999999d" is wider than 1024 (limit MAX_SEQUENCE_WIDTH = 1024)',
  ]);
});

Deno.test("images applies the daemon's trust flags and caps, with the daemon's messages", async () => {
  const cm = (namespace: string, images: string[]) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        namespace,
        name: "list",
        labels: { "app.kubernetes.io/part-of": "image-cache-daemon" },
      },
      data: { images: JSON.stringify(images) },
    });
  const input = `${cm("tenant", ["ghcr.io/evil/miner:1", "docker.io/library/alpine:3.20"])}\n---\n${
    cm("platform", ["ghcr.io/evil/tool:1"])
  }`;
  const { code, stdout } = await run([
    "-f",
    "-",
    "-o",
    "json",
    "--allowed-repositories=docker.io/library/*",
    "--trusted-namespaces=platform",
  ], input);
  assertEquals(code, 0);
  const report = JSON.parse(stdout);
  assertEquals(report.images.map((i: { image: string }) => i.image), [
    "docker.io/library/alpine:3.20",
    "ghcr.io/evil/tool:1",
  ]);
  assertEquals(report.rejected.length, 1);
  assertMatch(report.rejected[0].reason, /not in --allowed-repositories/);
  const capped = await run(["-f", "-", "-o", "json", "--max-desired-images=1"], input);
  assertEquals(JSON.parse(capped.stdout).images.length, 1);
  assert(
    JSON.parse(capped.stdout).notes.some((n: { note: string }) =>
      /over --max-desired-images/.test(n.note)
    ),
  );
  const bad = await run(["-f", "-", "--max-desired-images=0"], input);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /--max-desired-images "0": expected a whole number/);
});

Deno.test("images refuses a manifest nested thousands deep with a clear error, and reads the others", async () => {
  const good = [
    "apiVersion: argoproj.io/v1alpha1",
    "kind: WorkflowTemplate",
    "metadata: {namespace: ci, name: good}",
    "spec:",
    "  templates: [{name: a, container: {image: 'nginx:1.27'}}]",
  ].join("\n");
  // Inline templates as deep as the daemon reads them stay readable.
  let inline: Record<string, unknown> = { container: { image: "alpine:3.20" } };
  for (let i = 0; i < 31; i++) inline = { steps: [[{ name: `s${i}`, inline }]] };
  const files = {
    "k/good.yaml": good,
    // Before: "Invalid YAML: Maximum call stack size exceeded".
    "k/deep.yaml": `${good.replace("good", "deep")}\n  x: ${"[".repeat(5_000)}`,
    "k/inline.yaml": stringify({
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      metadata: { namespace: "ci", name: "inline" },
      spec: { templates: [{ name: "deep", ...inline }] },
    }),
  };
  const { code, stdout, stderr } = await runInMemory(["-f", "k"], files);
  assertEquals(code, 1);
  assertEquals(stdout, "docker.io/library/alpine:3.20\ndocker.io/library/nginx:1.27\n");
  assertEquals(
    stderr.trim(),
    "image-cache-daemon images: error: k/deep.yaml: Invalid YAML: nests deeper than 512 levels",
  );
});
