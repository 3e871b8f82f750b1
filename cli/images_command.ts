/**
 * `image-cache-daemon images`: reads manifests offline and prints the images
 * the daemon would cache from them. It uses the daemon's own extraction
 * functions and dedupe map, and the daemon's source flags, so its answer to
 * "what will be pulled?" is the daemon's.
 *
 * It only reads files and standard input: run it with `deno task images` or
 * `deno run --allow-read main.ts images -f …`.
 *
 * @module
 */
import { parseAllDocuments } from "yaml";
import { FLAGS, loadConfig, SOURCE_SELECTION_FLAGS } from "../config/config.ts";
import { type FlagSpec, formatHelp, parseFlags } from "../config/flags.ts";
import {
  DesiredImages,
  type DesiredImagesOptions,
  desiredImagesOptions,
} from "../images/desired_images.ts";
import { labelMatcher } from "../kube/label_selector.ts";
import {
  imagesFromClusterWorkflowTemplate,
  imagesFromCronWorkflow,
  imagesFromWorkflowTemplate,
} from "../sources/argo_images.ts";
import { yamlDepth } from "../sources/bounded_yaml.ts";
import { imagesFromConfigMap } from "../sources/configmap_images.ts";
import { originOf } from "../sources/source.ts";
import { STATIC_ORIGIN } from "../sources/static.ts";

/** A directory entry as {@linkcode ImagesCommandIo.readDir} reports it. */
export interface DirEntry {
  /** The entry's name, without the directory. */
  readonly name: string;
  /** A regular file. */
  readonly isFile: boolean;
  /** A directory. */
  readonly isDirectory: boolean;
  /** A symbolic link (then neither of the above). */
  readonly isSymlink: boolean;
}

/** Everything the command touches, passed in so that tests can drive it. */
export interface ImagesCommandIo {
  /** Reads a file as UTF-8 text. */
  readFile(path: string): Promise<string>;
  /** Lists a directory. */
  readDir(path: string): Promise<DirEntry[]>;
  /** Whether a path (symbolic links followed) is a directory. */
  isDirectory(path: string): Promise<boolean>;
  /** Reads all of standard input. */
  stdin(): Promise<string>;
  /** Writes command output to standard output. */
  print(text: string): void;
  /** Writes a message for humans to standard error. */
  printError(text: string): void;
}

/** The command's own flags. */
const OWN_FLAGS: readonly FlagSpec[] = [
  {
    name: "filename",
    short: "f",
    type: "strings",
    metavar: "FILE|DIR|-",
    help:
      "Manifests to read: a file, a directory (its *.yaml, *.yml and *.json files, recursively) or - for standard input; repeatable",
  },
  {
    name: "output",
    short: "o",
    type: "string",
    default: "text",
    metavar: "text|json",
    help:
      "text: one reference per line; json: references with their origins, rejections and errors",
  },
  { name: "help", short: "h", type: "bool", help: "Print this help and exit" },
];

/** The daemon flags that decide which images are allowed, and how many. */
const TRUST_FLAG_NAMES = [
  "trusted-namespaces",
  "trust-cluster-workflow-templates",
  "allowed-repositories",
  "max-images-per-object",
  "max-desired-images",
];

/** The daemon flags that decide which objects count, accepted with the same meaning. */
const SOURCE_FLAG_NAMES = ["image", ...SOURCE_SELECTION_FLAGS, ...TRUST_FLAG_NAMES];

/** Every flag of the `images` command: its own, then the daemon's source flags. */
const IMAGES_FLAGS: readonly FlagSpec[] = [
  ...OWN_FLAGS,
  ...FLAGS.filter((spec) => SOURCE_FLAG_NAMES.includes(spec.name)),
];

const USAGE = `image-cache-daemon images
Prints the images the daemon would cache from the given manifests, read offline:
ConfigMaps that match the selector, Argo WorkflowTemplates, ClusterWorkflowTemplates
and CronWorkflows (multi-document YAML, JSON, List kinds, directories).

Usage:
  image-cache-daemon images [-f FILE|DIR|-]... [--output text|json] [source flags]`;

/** The help text of the `images` command. */
function imagesHelpText(): string {
  return formatHelp(USAGE, IMAGES_FLAGS);
}

/** Parsed flags of the command. */
interface Options {
  readonly help: boolean;
  readonly files: readonly string[];
  readonly output: "text" | "json";
  readonly images: readonly string[];
  readonly selects: (labels: Readonly<Record<string, string>> | undefined) => boolean;
  readonly namespaces: readonly string[];
  readonly kinds: ReadonlySet<string>;
  /** The trust policy and caps, as the daemon applies them. */
  readonly desired: DesiredImagesOptions;
}

function flagValue(flags: Record<string, string | string[]>, name: string): string {
  const given = flags[name];
  if (typeof given === "string") return given;
  return IMAGES_FLAGS.find((spec) => spec.name === name)?.default ?? "";
}

function flagList(flags: Record<string, string | string[]>, name: string): string[] {
  const given = flags[name];
  return Array.isArray(given) ? given : [];
}

/** @throws {TypeError} naming the flag and what is expected. */
function parseOptions(args: readonly string[]): Options {
  const { flags, positionals } = parseFlags(args, IMAGES_FLAGS, { strictBooleans: true });
  if (positionals.length > 0) {
    throw new TypeError(
      `Unexpected argument ${JSON.stringify(positionals[0])}: give manifests with -f`,
    );
  }
  const output = flagValue(flags, "output");
  if (output !== "text" && output !== "json") {
    throw new TypeError(`--output ${JSON.stringify(output)}: expected text or json`);
  }
  const selector = flagValue(flags, "configmap-selector");
  let selects;
  try {
    selects = labelMatcher(selector);
  } catch (error) {
    throw new TypeError(
      `--configmap-selector ${JSON.stringify(selector)}: ${
        (error as Error).message.replace(/^Cannot parse label selector "[^"]*": /, "")
      }`,
    );
  }
  const kinds = new Set<string>();
  if (flagValue(flags, "watch-configmaps") === "true") kinds.add("ConfigMap");
  if (flagValue(flags, "watch-argo-workflow-templates") === "true") kinds.add("WorkflowTemplate");
  if (flagValue(flags, "watch-argo-cluster-workflow-templates") === "true") {
    kinds.add("ClusterWorkflowTemplate");
  }
  if (flagValue(flags, "watch-argo-cron-workflows") === "true") kinds.add("CronWorkflow");
  // The daemon's own parsing of these flags: the same defaults, bounds and messages.
  const trustArgs = TRUST_FLAG_NAMES.flatMap((name) => {
    const given = flags[name];
    if (given === undefined) return [];
    return (Array.isArray(given) ? given : [given]).map((value) => `--${name}=${value}`);
  });
  const { config } = loadConfig(trustArgs, () => undefined);
  const options: Options = {
    desired: desiredImagesOptions(config),
    help: flagValue(flags, "help") === "true",
    files: flagList(flags, "filename"),
    output,
    images: flagList(flags, "image"),
    selects,
    namespaces: flagList(flags, "configmap-namespaces"),
    kinds,
  };
  if (!options.help && options.files.length === 0 && options.images.length === 0) {
    throw new TypeError("No manifests: give -f FILE, -f DIR or -f - for standard input");
  }
  return options;
}

type Obj = Readonly<Record<string, unknown>>;

function asObject(value: unknown): Obj | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Obj
    : undefined;
}

const MANIFEST_EXTENSIONS = [".yaml", ".yml", ".json"];
/** Bounds directory recursion and nested `List`s. */
const MAX_DEPTH = 32;
/**
 * The deepest YAML a manifest file may nest. Inline Argo templates nest up to
 * `MAX_INLINE_DEPTH` (32) levels of about six YAML levels each; a few hundred
 * more is room to spare, and far from the stack's end.
 */
const MAX_MANIFEST_DEPTH = 512;
const STDIN = "-";
const STDIN_ORIGIN = "(stdin)";

/** What the command found, in the shape of its JSON output. */
interface Report {
  images: { image: string; origins: string[] }[];
  rejected: { origin: string; image: string; reason: string }[];
  errors: { origin: string; error: string }[];
  /** What was read but not used: files with no manifests, objects the daemon would not read. */
  notes: { origin: string; note: string }[];
}

/** The kinds the daemon reads, in the words of a note. */
const READ_KINDS = "ConfigMaps, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows";

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0].replace(/:$/, "");
}

/** The documents of a file: JSON for `*.json`, else YAML (which reads JSON too). */
function parseDocuments(
  text: string,
  path: string,
): { documents: unknown[]; errors: string[] } {
  if (path.endsWith(".json")) {
    try {
      return { documents: [JSON.parse(text)], errors: [] };
    } catch (error) {
      return { documents: [], errors: [`Invalid JSON: ${firstLine(error)}`] };
    }
  }
  // Turning a parsed text into values recurses once per level: past about a
  // thousand levels that is a stack overflow, not a clear error.
  if (yamlDepth(text, MAX_MANIFEST_DEPTH) > MAX_MANIFEST_DEPTH) {
    return {
      documents: [],
      errors: [`Invalid YAML: nests deeper than ${MAX_MANIFEST_DEPTH} levels`],
    };
  }
  const documents: unknown[] = [];
  const errors: string[] = [];
  const parsed = parseAllDocuments(text, { logLevel: "silent", prettyErrors: true });
  parsed.forEach((document, index) => {
    const where = parsed.length > 1 ? `Document ${index + 1}: invalid YAML` : "Invalid YAML";
    if (document.errors.length > 0) {
      errors.push(`${where}: ${firstLine(document.errors[0])}`);
      return;
    }
    try {
      documents.push(document.toJS({ maxAliasCount: 100 }));
    } catch (error) {
      // Aliases expanding past the limit.
      errors.push(`${where}: ${firstLine(error)}`);
    }
  });
  return { documents, errors };
}

/** The Kubernetes objects of a document, `List` kinds (`kind: List`, `*List`) unpacked. */
function* objectsOf(value: unknown, depth = 0): Generator<Obj> {
  if (depth > MAX_DEPTH) return;
  if (Array.isArray(value)) {
    for (const item of value) yield* objectsOf(item, depth + 1);
    return;
  }
  const object = asObject(value);
  if (!object) return;
  if (
    typeof object.kind === "string" && object.kind.endsWith("List") && Array.isArray(object.items)
  ) {
    for (const item of object.items) yield* objectsOf(item, depth + 1);
    return;
  }
  yield object;
}

function stringLabels(value: unknown): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, label] of Object.entries(asObject(value) ?? {})) {
    if (typeof label === "string") labels[key] = label;
  }
  return labels;
}

/**
 * The Argo kinds, read by the daemon's own extraction functions: they check
 * the object's shape and limits, so an object the daemon rejects is an error here.
 */
const ARGO_KINDS: Readonly<
  Record<string, { source: string; flag: string; read: (obj: unknown) => Set<string> }>
> = {
  WorkflowTemplate: {
    source: "workflowtemplate",
    flag: "--watch-argo-workflow-templates",
    read: imagesFromWorkflowTemplate,
  },
  ClusterWorkflowTemplate: {
    source: "clusterworkflowtemplate",
    flag: "--watch-argo-cluster-workflow-templates",
    read: imagesFromClusterWorkflowTemplate,
  },
  CronWorkflow: {
    source: "cronworkflow",
    flag: "--watch-argo-cron-workflows",
    read: imagesFromCronWorkflow,
  },
};

/** Reads manifests into the dedupe map, the way the daemon's sources would. */
class Collector {
  readonly desired: DesiredImages;
  readonly errors: { origin: string; error: string }[] = [];
  readonly notes: { origin: string; note: string }[] = [];
  readonly #options: Options;
  readonly #io: ImagesCommandIo;
  #stdin: Promise<string> | undefined;

  constructor(options: Options, io: ImagesCommandIo) {
    this.desired = new DesiredImages(options.desired);
    this.#options = options;
    this.#io = io;
  }

  async readInput(path: string): Promise<void> {
    if (path === STDIN) {
      // Standard input can be read once; naming it twice reads it once.
      this.#stdin ??= this.#io.stdin();
      let text;
      try {
        text = await this.#stdin;
      } catch (error) {
        this.errors.push({ origin: STDIN_ORIGIN, error: `Cannot read: ${firstLine(error)}` });
        return;
      }
      this.#readText(text, STDIN_ORIGIN);
      return;
    }
    let directory;
    try {
      directory = await this.#io.isDirectory(path);
    } catch (error) {
      this.errors.push({ origin: path, error: `Cannot read: ${firstLine(error)}` });
      return;
    }
    if (directory) await this.#readDirectory(path, 0);
    else await this.#readFile(path);
  }

  async #readDirectory(path: string, depth: number): Promise<void> {
    let entries;
    try {
      entries = await this.#io.readDir(path);
    } catch (error) {
      this.errors.push({ origin: path, error: `Cannot read: ${firstLine(error)}` });
      return;
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const entry of entries) {
      const child = path.endsWith("/") ? path + entry.name : `${path}/${entry.name}`;
      if (entry.isDirectory && depth < MAX_DEPTH) {
        await this.#readDirectory(child, depth + 1);
      } else if (
        (entry.isFile || entry.isSymlink) &&
        MANIFEST_EXTENSIONS.some((extension) => entry.name.endsWith(extension))
      ) {
        // A symbolic link is followed when it names a file; linked
        // directories are not entered, so a link loop cannot recurse.
        if (entry.isSymlink && await this.#io.isDirectory(child).catch(() => true)) continue;
        await this.#readFile(child);
      }
    }
  }

  async #readFile(path: string): Promise<void> {
    let text;
    try {
      text = await this.#io.readFile(path);
    } catch (error) {
      this.errors.push({ origin: path, error: `Cannot read: ${firstLine(error)}` });
      return;
    }
    this.#readText(text, path);
  }

  #readText(text: string, origin: string): void {
    const { documents, errors } = parseDocuments(text, origin);
    for (const error of errors) this.errors.push({ origin, error });
    let objects = 0;
    for (const [index, document] of documents.entries()) {
      let found = 0;
      for (const object of objectsOf(document)) {
        found++;
        this.#readObject(object, origin);
      }
      objects += found;
      // An empty document (`---` twice, comments only) is normal; a scalar is not a manifest.
      if (found === 0 && document !== null && document !== undefined) {
        const where = documents.length > 1 ? `document ${index + 1}` : "the document";
        this.#note(origin, `${where} is not a Kubernetes object`);
      }
    }
    // Say so, rather than print nothing: a wrong path or an empty render
    // would otherwise look like "no images".
    if (objects === 0 && errors.length === 0) this.#note(origin, "no manifests");
  }

  #note(origin: string, note: string): void {
    this.notes.push({ origin, note });
  }

  #readObject(object: Obj, file: string): void {
    const kind = typeof object.kind === "string" ? object.kind : "";
    const apiVersion = typeof object.apiVersion === "string" ? object.apiVersion : undefined;
    const group = apiVersion?.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
    const metadata = asObject(object.metadata);
    const name = typeof metadata?.name === "string" ? metadata.name : "(unnamed)";
    const namespace = typeof metadata?.namespace === "string" && metadata.namespace !== ""
      ? metadata.namespace
      : undefined;
    const label = `${kind === "" ? "an object with no kind" : kind} ${
      JSON.stringify(namespace === undefined ? name : `${namespace}/${name}`)
    }`;
    const notRead = (why: string) => this.#note(file, `${label} not read: ${why}`);

    const argo = ARGO_KINDS[kind];
    if (kind !== "ConfigMap" && argo === undefined) {
      notRead(`the daemon reads only ${READ_KINDS}`);
      return;
    }
    if (
      kind === "ConfigMap" ? apiVersion !== undefined && group !== "" : (
        apiVersion !== undefined && group !== "argoproj.io"
      )
    ) {
      notRead(`apiVersion ${JSON.stringify(apiVersion)} is not the one the daemon watches`);
      return;
    }
    if (!this.#options.kinds.has(kind)) {
      notRead(`${argo?.flag ?? "--watch-configmaps"} is false`);
      return;
    }

    if (kind === "ConfigMap") {
      if (!this.#options.selects(stringLabels(metadata?.labels))) {
        notRead("its labels do not match --configmap-selector");
        return;
      }
      const namespaces = this.#options.namespaces;
      // kubectl puts an object without a namespace into "default".
      if (namespaces.length > 0 && !namespaces.includes(namespace ?? "default")) {
        notRead("its namespace is not one of --configmap-namespaces");
        return;
      }
      const origin = originOf("configmap", { namespace, name });
      try {
        this.desired.set(origin, imagesFromConfigMap(object).images);
      } catch (error) {
        this.errors.push({ origin, error: firstLine(error) });
      }
      return;
    }
    // ClusterWorkflowTemplates are cluster-scoped: a namespace written on one is ignored.
    const scoped = kind === "ClusterWorkflowTemplate" ? undefined : namespace;
    const origin = originOf(argo.source, { namespace: scoped, name });
    try {
      this.desired.set(origin, argo.read(object));
    } catch (error) {
      // The daemon rejects the object whole (its shape, or a limit): so does this.
      this.errors.push({ origin, error: firstLine(error) });
    }
  }

  report(): Report {
    const over = this.desired.overCap(Number.MAX_SAFE_INTEGER);
    const notes = [
      ...this.notes,
      // Samples are kept per object; say how many more there were.
      ...this.desired.rejectionSummaries().filter((r) => r.count > r.samples.length).map((r) => ({
        origin: r.origin,
        note: `${r.count - r.samples.length} more rejected references not listed`,
      })),
      ...over.samples.map((image) => ({
        origin: this.desired.originsOf(image).join(", "),
        note: `${image}: over --max-desired-images, not pulled`,
      })),
    ];
    return {
      images: this.desired.refs().map((image) => ({
        image,
        origins: this.desired.originsOf(image),
      })),
      rejected: this.desired.rejections()
        .map((r) => ({ origin: r.origin, image: r.input, reason: r.reason }))
        .sort((a, b) => compare(a.origin, b.origin) || compare(a.image, b.image)),
      errors: this.errors,
      notes,
    };
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * `image-cache-daemon images [-f FILE|DIR|-]... [--output text|json] [source flags]`:
 * prints the normalised references the daemon would cache from the given
 * manifests, sorted, one per line (or as JSON with origins, rejected
 * references and errors).
 *
 * @param args the arguments after `images`
 * On standard error (text output), each line starts with what it is: `note:`
 * (a file with no manifests, an object the daemon would not read), `rejected:`
 * (a reference that cannot be pulled as written) or `error:` (what makes the
 * exit status 1).
 *
 * @returns the exit code: 0 on success (notes and rejected references
 * included), 1 when a file cannot be read or parsed or an object is rejected
 * whole as the daemon rejects it (an unusable ConfigMap list, an Argo object
 * of the wrong shape or past a limit), 2 on bad flags.
 */
export async function runImagesCommand(
  args: readonly string[],
  io: ImagesCommandIo,
): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(args);
  } catch (error) {
    io.printError(`image-cache-daemon images: ${(error as Error).message}`);
    return 2;
  }
  if (options.help) {
    io.print(imagesHelpText());
    return 0;
  }
  const collector = new Collector(options, io);
  if (options.images.length > 0) collector.desired.set(STATIC_ORIGIN, options.images);
  for (const path of options.files) await collector.readInput(path);
  const report = collector.report();

  if (options.output === "json") {
    io.print(JSON.stringify(report, null, 2) + "\n");
  } else {
    if (report.images.length > 0) {
      io.print(report.images.map((entry) => entry.image).join("\n") + "\n");
    }
    // Each line says what it is, so that a reader can tell what caused exit 1 (errors only).
    for (const n of report.notes) {
      io.printError(`image-cache-daemon images: note: ${n.origin}: ${n.note}`);
    }
    for (const r of report.rejected) {
      io.printError(`image-cache-daemon images: rejected: ${r.origin}: ${r.reason}`);
    }
    for (const e of report.errors) {
      io.printError(`image-cache-daemon images: error: ${e.origin}: ${e.error}`);
    }
  }
  return report.errors.length > 0 ? 1 : 0;
}

const encoder = new TextEncoder();

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : text + "\n");
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

/** The command's I/O on the real file system, standard input and output. */
export function denoImagesIo(): ImagesCommandIo {
  // The daemon's permission set (and so the compiled binary) may not read
  // files: say how to read them instead of only "Requires read access".
  const readable = async <T>(read: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw new Error(
          `${
            firstLine(error)
          }: the daemon's permissions read no files; use \`deno task images -f …\`, or pipe manifests to \`images -f -\``,
          { cause: error },
        );
      }
      throw error;
    }
  };
  return {
    readFile: (path) => readable(() => Deno.readTextFile(path)),
    readDir: (path) => readable(() => Array.fromAsync(Deno.readDir(path))),
    isDirectory: (path) => readable(async () => (await Deno.stat(path)).isDirectory),
    stdin: () => new Response(Deno.stdin.readable).text(),
    print: (text) => writeAll(Deno.stdout, text),
    printError: (text) => writeAll(Deno.stderr, text),
  };
}
