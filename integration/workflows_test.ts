/**
 * The GitHub workflows and the Dockerfile cannot run here (no GitHub, no
 * Docker engine), so they are checked statically: each workflow against
 * GitHub's schema with action-validator (from npm; it works offline), and the
 * parts that must agree with the code (Deno version, permission sets,
 * Dockerfile targets, the ConfigMap label) against the code.
 */
import { imagesFromConfigMap } from "../sources/configmap_images.ts";
import { parse } from "yaml";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { FLAGS } from "../config/config.ts";
import { WARDEN_COMMAND } from "../puller/warden_pod.ts";
import { DAEMON_OLD_SPACE_MIB, IMAGE_V8_FLAGS, SHIPPED_V8_FLAGS } from "../build/v8_flags.ts";
import { RELEASE_MANIFESTS } from "../manifests/render.ts";

const ROOT = new URL("../", import.meta.url);
const WORKFLOWS = new URL(".github/workflows/", ROOT);
const VALIDATOR = "@action-validator/cli@0.6.0";
const decoder = new TextDecoder();

// deno-lint-ignore no-explicit-any -- parsed workflow YAML, checked by the schema validator first
type Workflow = Record<string, any>;

async function validate(path: string): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("npx", {
    args: ["-y", VALIDATOR, path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { npm_config_update_notifier: "false", NO_COLOR: "1" },
  }).output();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

async function workflow(name: string): Promise<Workflow> {
  return parse(await Deno.readTextFile(new URL(name, WORKFLOWS)));
}

/** Every `run:` script of a workflow, joined. */
function scripts(wf: Workflow): string {
  return (Object.values(wf.jobs) as Workflow[]).flatMap((job) =>
    (job.steps ?? []).map((s: Workflow) => s.run ?? "")
  ).join("\n");
}

/** Every `uses:` of a workflow. */
function actions(wf: Workflow): string[] {
  return (Object.values(wf.jobs) as Workflow[]).flatMap((job) =>
    (job.steps ?? []).flatMap((s: Workflow) => s.uses ? [s.uses] : [])
  );
}

async function dockerfile(): Promise<string> {
  return await Deno.readTextFile(new URL("Dockerfile", ROOT));
}

function dockerTargets(text: string): string[] {
  return [...text.matchAll(/^FROM\s+\S+(?:\s+\S+)?\s+AS\s+(\S+)$/gim)].map((m) => m[1]);
}

Deno.test("every workflow passes GitHub's workflow schema (action-validator)", async (t) => {
  const names: string[] = [];
  for await (const entry of Deno.readDir(WORKFLOWS)) names.push(entry.name);
  assertEquals(names.sort(), ["ci.yml", "e2e.yml", "release.yml"]);
  for (const name of names) {
    await t.step(name, async () => {
      const result = await validate(new URL(name, WORKFLOWS).pathname);
      assertEquals(result.code, 0, result.output);
    });
  }
});

Deno.test("action-validator rejects a workflow with a misspelt key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "workflows_test_" });
  try {
    const path = `${dir}/bad.yml`;
    await Deno.writeTextFile(
      path,
      "name: bad\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz:\n      - run: echo\n",
    );
    const result = await validate(path);
    assertEquals(result.code, 1);
    assertMatch(result.output, /Additional property 'stepz' is not allowed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the ci workflow runs the same .ci/run as the project's CI", async () => {
  const wf = await workflow("ci.yml");
  assertMatch(scripts(wf), /bash \.ci\/run$/m);
  assertEquals(wf.permissions, { contents: "read" });
});

Deno.test("every action is pinned to a major version at least", async () => {
  for (const name of ["ci.yml", "e2e.yml", "release.yml"]) {
    for (const uses of actions(await workflow(name))) {
      assertMatch(uses, /^[\w.-]+\/[\w.-]+@(v\d+|[0-9a-f]{40})$/, `${name}: ${uses}`);
    }
  }
});

Deno.test("the release uses .ci/run's Deno and compiles both permission sets for x64 and arm64", async () => {
  const wf = await workflow("release.yml");
  const ciRun = await Deno.readTextFile(new URL(".ci/run", ROOT));
  assertEquals(`DENO_VERSION=${wf.env.DENO_VERSION}`, ciRun.match(/^DENO_VERSION=\S+$/m)?.[0]);
  assertEquals(wf.on, { push: { tags: ["v*.*.*"] } });
  assertEquals(wf.jobs.binaries.strategy.matrix.target, [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
  ]);
  const run = scripts(wf);
  const sets = Object.keys(
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).permissions,
  );
  // The binaries embed the shipped bundle, built first, with the shipped V8 flags.
  assertMatch(run, /task build\n/);
  for (const set of sets) {
    assertMatch(
      run,
      new RegExp(
        `compile --frozen -P=${set} --target .+ "\\$flags" \\\\\n\\s+-o .+ dist/image-cache-daemon\\.js`,
      ),
    );
  }
  assertMatch(run, /sha256sum image-cache-daemon-\* install\*\.yaml > SHA256SUMS/);
  assertEquals(wf.permissions, { contents: "read" });
  assertEquals(wf.jobs.publish.permissions, { contents: "write" });
  assertEquals(wf.jobs.images.permissions, { contents: "read", packages: "write" });
});

Deno.test("the release renders the single-file installs with deno task manifests and attaches them", async () => {
  const wf = await workflow("release.yml");
  const job = wf.jobs.manifests;
  const run = job.steps.map((s: Workflow) => s.run ?? "").join("\n");
  assertMatch(run, /task manifests --release dist$/m);
  // A PrometheusRule not regenerated from the rule file stops the release.
  assertMatch(run, /git diff --exit-code manifests\/$/m);
  const upload = job.steps.find((s: Workflow) => s.uses?.startsWith("actions/upload-artifact@"));
  assertEquals(upload.with, { name: "manifests", path: "dist/", "if-no-files-found": "error" });
  assert(wf.jobs.publish.needs.includes("manifests"));
  const download = wf.jobs.publish.steps.find((s: Workflow) => s.with?.name === "manifests");
  assertEquals(download.with.path, "dist");
  // Every rendered file is an install*.yaml, so the checksum and the upload
  // of dist/* both take it.
  for (const name of Object.keys(RELEASE_MANIFESTS)) assertMatch(name, /^install[\w-]*\.yaml$/);
  assertMatch(scripts(wf), /gh release (upload|create) "\$GITHUB_REF_NAME" dist\/\*/);
});

Deno.test("the release builds every Dockerfile image target for amd64 and arm64", async () => {
  const wf = await workflow("release.yml");
  const build = wf.jobs.images.steps.find((s: Workflow) =>
    s.uses?.startsWith("docker/build-push-action@")
  );
  assertEquals(build.with.platforms, "linux/amd64,linux/arm64");
  const built = wf.jobs.images.strategy.matrix.include.map((i: Workflow) => i.target).sort();
  const targets = dockerTargets(await dockerfile());
  for (const target of built) assert(targets.includes(target), `no Dockerfile target ${target}`);
  assertEquals(built, ["daemon", "daemon-cri", "warden"]);
});

Deno.test("the Dockerfile runs the shipped bundle with each image's permission set, its V8 flags and a warmed cache, as non-root", async () => {
  const text = await dockerfile();
  assertMatch(
    text,
    /^FROM --platform=\$BUILDPLATFORM denoland\/deno:debian-\$\{DENO_VERSION\} AS source$/m,
  );
  assertMatch(text, /^ARG DENO_VERSION=2\.9\.6$/m);
  assertMatch(text, /^RUN deno task build /m);
  assertMatch(text, /deno cache --no-lock dist\/image-cache-daemon\.js/);
  const entrypoints = Object.fromEntries(
    [...text.matchAll(/^FROM runtime AS (\S+)\nENTRYPOINT (.+)$/gm)].map((
      m,
    ) => [m[1], JSON.parse(m[2])]),
  );
  // The V8 flags are the image's default environment, which a workload
  // replaces (the aggregator's Deployment), never --v8-flags, which would
  // come after them and win.
  assertEquals(
    IMAGE_V8_FLAGS,
    [...SHIPPED_V8_FLAGS, `--max-old-space-size=${DAEMON_OLD_SPACE_MIB}`].join(","),
  );
  assertMatch(text, new RegExp(`^ENV DENO_V8_FLAGS=${IMAGE_V8_FLAGS}$`, "m"));
  for (const [target, set] of [["daemon", "daemon"], ["daemon-cri", "daemon-cri"]]) {
    assertEquals(entrypoints[target], [
      "/bin/deno",
      "run",
      `-P=${set}`,
      "--no-lock",
      "--quiet",
      "dist/image-cache-daemon.js",
    ]);
  }
  assertEquals(
    [...text.matchAll(/^FROM (gcr\.io\/distroless\/\S+) AS (\S*)$/gm)].map((
      m,
    ) => [m[2], m[1]]),
    [["runtime", "gcr.io/distroless/cc-debian12:nonroot"]],
  );
  // The last stage is the default target: the pod-strategy daemon.
  assertEquals(dockerTargets(text).at(-1), "daemon");
  assertEquals([...text.matchAll(/^USER (.+)$/gm)].map((m) => m[1]), [
    "65532:65532",
    "65532:65532",
  ]);
});

Deno.test("the warden image installs its binary where pull pods run it", async () => {
  const text = await dockerfile();
  const warden = text.slice(text.indexOf("FROM scratch AS warden"));
  assertMatch(warden, /^COPY --from=warden-build --chmod=0555 \/out\/warden \/warden$/m);
  const entrypoint = JSON.parse(warden.match(/^ENTRYPOINT (.+)$/m)![1]);
  assertEquals(entrypoint, ["/warden", "--install", WARDEN_COMMAND]);
});

Deno.test("the e2e workflow installs the manifests and asks through the default ConfigMap label", async () => {
  const wf = await workflow("e2e.yml");
  const run = scripts(wf);
  assertMatch(run, /kubectl apply -k manifests$/m);
  const selector = FLAGS.find((f) => f.name === "configmap-selector")!.default!;
  assert(
    run.includes(`label configmap images ${selector}`),
    "ConfigMap label is the default selector",
  );
  assertMatch(run, /crictl images -o json/);
  assertMatch(run, /status\.images/);
  // The ConfigMap the workflow creates must hold a list the daemon accepts.
  const literal = run.match(/--from-literal=images="((?:[^"\\]|\\.)*)"/)?.[1];
  assert(literal !== undefined, "the workflow creates the images ConfigMap from a literal");
  const image = (wf.env as Record<string, string>).E2E_IMAGE;
  const value = literal.replace(/\\"/g, '"').replaceAll("$E2E_IMAGE", image);
  assertEquals(
    imagesFromConfigMap({ metadata: { namespace: "e2e", name: "images" }, data: { images: value } })
      .images,
    [image],
  );
  assertEquals(actions(wf).includes("helm/kind-action@v1"), true);
});
