/**
 * `deno task manifests`: writes the generated manifests.
 *
 * - Always: `manifests/components/prometheus-rules/prometheusrule.yaml`, the
 *   PrometheusRule wrapping `monitoring/image-cache-daemon.rules.yaml` (the
 *   plain rule file is the one source of the alerts).
 * - With `--release DIR`: the single-file installs of a release, each one
 *   `kubectl kustomize` of a kustomization ({@linkcode RELEASE_MANIFESTS}).
 *
 * @module
 */
import { relative } from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";

const ROOT = new URL("../", import.meta.url);

/** The plain Prometheus rule file, relative to the repository root. */
export const RULES_FILE = "monitoring/image-cache-daemon.rules.yaml";

/** The generated PrometheusRule, relative to the repository root. */
export const PROMETHEUS_RULE_FILE = "manifests/components/prometheus-rules/prometheusrule.yaml";

/** Release asset name → kustomization it renders (relative to the repository root). */
export const RELEASE_MANIFESTS: Readonly<Record<string, string>> = {
  "install.yaml": "manifests",
  "install-cri.yaml": "manifests/overlays/cri",
  "install-single-process.yaml": "manifests/overlays/single-process",
  "install-prometheus-operator.yaml": "manifests/overlays/prometheus-operator",
};

/**
 * The PrometheusRule for a Prometheus rule file's text: the same `groups`,
 * in the daemon's namespace with its labels.
 *
 * @throws {TypeError} when the text is not a rule file with `groups`.
 */
export function prometheusRuleFor(rulesText: string): string {
  const rules = parse(rulesText) as { groups?: unknown };
  if (rules === null || typeof rules !== "object" || !Array.isArray(rules.groups)) {
    throw new TypeError(`Cannot wrap ${RULES_FILE}: expected a rule file with "groups"`);
  }
  const header = [
    `# Generated from ${RULES_FILE} by \`deno task manifests\`: edit that file,`,
    "# then run the task (a test fails while the two differ).",
  ].join("\n");
  const resource = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "image-cache-daemon",
      namespace: "image-cache-daemon",
      labels: {
        "app.kubernetes.io/name": "image-cache-daemon",
        "app.kubernetes.io/instance": "image-cache-daemon",
      },
    },
    spec: { groups: rules.groups },
  };
  return `${header}\n${stringify(resource, { lineWidth: 0 })}`;
}

/**
 * Renders a kustomization with `kubectl kustomize` (`dir` absolute, or
 * relative to the repository root); throws with kubectl's message on failure.
 */
export async function kustomize(dir: string): Promise<string> {
  const out = await new Deno.Command("kubectl", {
    args: ["kustomize", dir.startsWith("/") ? dir : new URL(dir, ROOT).pathname],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`kubectl kustomize ${dir} failed: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

/**
 * Renders the default install with kustomize components added, the way a
 * user's own kustomization lists them (`components` are directory names under
 * `manifests/components/`).
 */
export async function kustomizeWithComponents(components: readonly string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "icd-kustomize-" });
  try {
    // kustomize takes relative paths only.
    const up = relative(dir, new URL("manifests", ROOT).pathname);
    const list = components.map((c) => `  - ${up}/components/${c}\n`).join("");
    await Deno.writeTextFile(
      `${dir}/kustomization.yaml`,
      `resources:\n  - ${up}\ncomponents:\n${list}`,
    );
    return await kustomize(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The objects of a multi-document YAML text such as `kubectl kustomize`
 * prints.
 *
 * @throws {SyntaxError} naming the first document that does not parse.
 */
export function parseManifests(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) {
      throw new SyntaxError(`Cannot parse YAML document ${i + 1}: ${doc.errors[0].message}`);
    }
    return doc.toJS() as Record<string, unknown>;
  });
}

/** Writes every {@linkcode RELEASE_MANIFESTS} file into `outDir`; returns their paths. */
export async function renderRelease(outDir: string): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const [name, dir] of Object.entries(RELEASE_MANIFESTS)) {
    const path = `${outDir}/${name}`;
    await Deno.writeTextFile(path, await kustomize(dir));
    written.push(path);
  }
  return written;
}

async function main(args: string[]): Promise<number> {
  const rules = await Deno.readTextFile(new URL(RULES_FILE, ROOT));
  await Deno.writeTextFile(new URL(PROMETHEUS_RULE_FILE, ROOT), prometheusRuleFor(rules));
  const at = args.indexOf("--release");
  if (at >= 0) {
    const dir = args[at + 1];
    if (dir === undefined) throw new TypeError("--release needs a directory");
    for (const path of await renderRelease(dir)) {
      Deno.stdout.writeSync(new TextEncoder().encode(`${path}\n`));
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
