/**
 * `deno task build`: the artifact that ships. Bundles `main.ts` and every npm
 * package it uses into `dist/` with esbuild: tree-shaken, minified, one chunk
 * for what every role loads and separate chunks for what only CRI mode
 * imports (`await import(...)` stays a separate file), with a source map so
 * stack traces name the original files and lines.
 *
 * Why a bundle: Deno keeps the source text of every loaded module in memory;
 * client-node alone is 1,033 modules and ~25 MB of source. The bundle is a
 * few MB, and the daemon's idle and peak RSS drop accordingly (bench/RESULTS.md).
 *
 * esbuild resolves npm packages from a `node_modules` tree, which the project
 * does not keep: the script installs one from the lockfile (`--frozen`) into
 * `dist/.deps/` (Deno's global cache supplies the files), so the bundle holds
 * exactly the locked versions.
 *
 * @module
 */
import * as esbuild from "esbuild";

const ROOT = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(ROOT.pathname);

/** Where the artifact goes, and its entry file. */
export const DIST = `${rootPath}dist`;
export const ENTRY = "dist/image-cache-daemon.js";

/** The output that installs the permitted `process.env` view, imported first by every file. */
const ENV_SHIM = "process-env";

/** Installs the locked npm packages into `dist/.deps/node_modules`; returns that path. */
async function installDeps(): Promise<string> {
  const deps = `${DIST}/.deps`;
  await Deno.mkdir(deps, { recursive: true });
  const config = JSON.parse(await Deno.readTextFile(`${rootPath}deno.json`));
  const denoJson = JSON.stringify({ imports: config.imports, nodeModulesDir: "auto" });
  const lock = await Deno.readTextFile(`${rootPath}deno.lock`);
  // Installed already, to the end, from the same imports and lockfile: the
  // test files that build bundles of their own (in parallel) leave a tree in
  // use alone. The record is written only after an install succeeded.
  const installed = `${deps}/installed.json`;
  const record = JSON.stringify([denoJson, lock]);
  if (
    await Deno.readTextFile(installed).catch(() => null) === record &&
    await Deno.stat(`${deps}/node_modules`).then((s) => s.isDirectory, () => false)
  ) {
    return `${deps}/node_modules`;
  }
  await Deno.remove(installed).catch(() => {});
  await Deno.writeTextFile(`${deps}/deno.json`, denoJson);
  await Deno.writeTextFile(`${deps}/deno.lock`, lock);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["install", "--frozen", "--quiet"],
    cwd: deps,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno install failed in ${deps}:\n${new TextDecoder().decode(out.stderr)}`);
  }
  await Deno.writeTextFile(installed, record);
  return `${deps}/node_modules`;
}

/**
 * What @kubernetes/client-node takes from undici: `fetch`, `Agent` and
 * `ProxyAgent`, and nothing else (its `import` statements, checked by
 * build/bundle_test.ts). undici's own entry (`index.js`) requires every part
 * of undici when it loads (mock agents, caches, WebSocket, EventSource,
 * cookies, balanced pools...): tens of milliseconds at every start, before
 * the first API request. This entry requires the parts client-node uses and
 * does what undici's entry does to them: the request API methods on
 * `Dispatcher`, the global dispatcher, and a `fetch` whose errors carry the
 * caller's stack.
 */
const UNDICI_FOR_CLIENT_NODE = `"use strict";
const Dispatcher = require("./lib/dispatcher/dispatcher");
Object.assign(Dispatcher.prototype, require("./lib/api"));
require("./lib/global");
exports.Agent = require("./lib/dispatcher/agent");
exports.ProxyAgent = require("./lib/dispatcher/proxy-agent");
const fetchImpl = require("./lib/web/fetch").fetch;
exports.fetch = function fetch(init, options) {
  return fetchImpl(init, options).catch((err) => {
    if (err && typeof err === "object") Error.captureStackTrace(err, exports.fetch);
    throw err;
  });
};
`;

/**
 * Packages client-node imports at its start but uses only for what this
 * daemon may never meet: SOCKS proxies (`socks-proxy-agent`, with `debug`),
 * the JSONPath of the Azure and GCP auth providers, and OpenID Connect. Each
 * is still bundled, but loaded on the first use of one of its exports
 * instead of at every start. ES modules only: a CommonJS module's export
 * names are not known before it runs (so `socks` itself is not here).
 */
export const LOADED_ON_FIRST_USE = ["socks-proxy-agent", "jsonpath-plus", "openid-client"];

/**
 * A file of client-node other than `polyfill.js`. Those files do nothing when
 * they load but define their exports (and set static fields of their own
 * classes), so the bundle may leave out one whose exports nothing uses: its
 * index re-exports every part (`cp.js` with tar-fs, `exec.js` and
 * `attach.js` with ws...), which would otherwise all load at start.
 * `polyfill.js` sets the global `File`.
 */
const CLIENT_NODE_FILE = /[/\\]@kubernetes[/\\]client-node[/\\]dist[/\\](?!polyfill\.js$).*\.js$/;

/**
 * Trims what client-node loads at start, without changing what it does: its
 * files are free of side effects ({@linkcode CLIENT_NODE_FILE}), its
 * `undici` import gets {@linkcode UNDICI_FOR_CLIENT_NODE}, and each package
 * of {@linkcode LOADED_ON_FIRST_USE} a CommonJS stand-in whose exports are
 * getters that `require` the real module (esbuild evaluates a bundled module
 * that is `require`d when it is first required).
 */
const trimClientNode: esbuild.Plugin = {
  name: "trim-client-node",
  setup(build) {
    const lazy = new RegExp(`^(undici|${LOADED_ON_FIRST_USE.join("|")})$`);
    // esbuild's own resolution of the import, marked so these hooks pass it by.
    const resolveReal = (args: esbuild.OnResolveArgs) =>
      build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: "trim-client-node",
      });
    build.onResolve({ filter: lazy }, async (args) => {
      if (
        args.pluginData === "trim-client-node" ||
        !/[/\\]@kubernetes[/\\]client-node[/\\]/.test(args.importer)
      ) {
        return undefined;
      }
      const real = await resolveReal(args);
      if (real.errors.length > 0) return { errors: real.errors };
      // Named by the package alone: no build machine's path in the source map.
      return {
        path: args.path,
        namespace: "trim-client-node",
        pluginData: { name: args.path, real: real.path },
      };
    });
    build.onResolve({ filter: /.*/ }, async (args) => {
      if (
        args.pluginData === "trim-client-node" ||
        !(args.importer.includes("client-node") || args.path.startsWith("@kubernetes/client-node"))
      ) {
        return undefined;
      }
      const real = await resolveReal(args);
      if (real.errors.length > 0 || !CLIENT_NODE_FILE.test(real.path)) return undefined;
      return { ...real, sideEffects: false };
    });
    build.onLoad({ filter: /.*/, namespace: "trim-client-node" }, async (args) => {
      const { name, real } = args.pluginData as { name: string; real: string };
      const dir = real.replace(/[/\\][^/\\]*$/, "");
      if (name === "undici") {
        return { contents: UNDICI_FOR_CLIENT_NODE, loader: "js", resolveDir: dir };
      }
      // The real module's export names, from a build of it alone.
      const exports = await exportNames(real);
      const getters = exports.map((e) =>
        `Object.defineProperty(exports, ${
          JSON.stringify(e)
        }, { enumerable: true, get: () => load()[${JSON.stringify(e)}] });`
      );
      return {
        contents:
          `"use strict";\nlet real;\nconst load = () => real ??= require(${
            JSON.stringify(real)
          });\n` +
          getters.join("\n"),
        loader: "js",
        resolveDir: dir,
      };
    });
  },
};

/** The names an ES module exports (its metafile's `exports`); throws for CommonJS. */
async function exportNames(path: string): Promise<string[]> {
  const result = await esbuild.build({
    entryPoints: [path],
    bundle: true,
    write: false,
    format: "esm",
    platform: "node",
    packages: "external",
    metafile: true,
    logLevel: "silent",
  });
  if (Object.values(result.metafile.inputs).some((input) => input.format === "cjs")) {
    throw new Error(`${path} is CommonJS: its exports cannot be loaded on first use`);
  }
  return Object.values(result.metafile.outputs)[0].exports;
}

/** Options for {@linkcode build}. */
export interface BuildOptions {
  /** Minify (the shipped artifact is). @default {true} */
  minify?: boolean;
  /** Output directory. @default {DIST} */
  outdir?: string;
  /** Entry module, relative to the repository root, and the output's name. @default {["main.ts", "image-cache-daemon"]} */
  entry?: readonly [string, string];
}

/** The list parser worker's entry (sources/list_parser.ts). */
const LIST_PARSER_WORKER = "sources/list_parser_worker.ts";

/**
 * The list parser worker as one self-contained ES module: no imports, so
 * that it runs from a blob URL, which needs no read permission and no file
 * beside the bundle or inside a compiled binary.
 */
async function workerSource(nodeModules: string, minify: boolean): Promise<string> {
  const result = await esbuild.build({
    absWorkingDir: rootPath,
    entryPoints: [LIST_PARSER_WORKER],
    bundle: true,
    splitting: false,
    write: false,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "esnext",
    minify,
    keepNames: true,
    nodePaths: [nodeModules],
    logLevel: "warning",
    legalComments: "none",
  });
  const [file] = result.outputFiles;
  return file.text;
}

/** Writes `path` through a file beside it and a rename: a reader sees the old file or the new one, whole. */
async function writeWhole(path: string, contents: Uint8Array): Promise<void> {
  const temporary = `${path}.${Deno.pid}.tmp`;
  await Deno.writeFile(temporary, contents);
  await Deno.rename(temporary, path);
}

/** Builds the bundle; returns the output files and their sizes in bytes. */
export async function build(options: BuildOptions = {}): Promise<Record<string, number>> {
  const nodeModules = await installDeps();
  const outdir = options.outdir ?? DIST;
  const worker = await workerSource(nodeModules, options.minify ?? true);
  const result = await esbuild.build({
    absWorkingDir: rootPath,
    entryPoints: {
      [options.entry?.[1] ?? "image-cache-daemon"]: options.entry?.[0] ?? "main.ts",
      [ENV_SHIM]: "permissions/install_process_env.ts",
    },
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "esnext",
    minify: options.minify ?? true,
    // Readable errors: function and class names survive minification (they
    // appear in logs as error names), and the source map gives files and lines.
    keepNames: true,
    sourcemap: "linked",
    sourcesContent: false,
    nodePaths: [nodeModules],
    loader: { ".proto": "text" },
    define: { LIST_PARSER_WORKER_SOURCE: JSON.stringify(worker) },
    // Every file imports the permitted-environment shim first: shared
    // chunks are evaluated before the entry's own code, so main.ts's first
    // import alone would no longer run before npm code reads process.env.
    // CommonJS packages inside an ES module bundle call `require` for Node
    // built-ins; Deno provides it through node:module.
    banner: {
      js: `import"./${ENV_SHIM}.js";` +
        'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);',
    },
    plugins: [trimClientNode],
    metafile: true,
    write: false,
    logLevel: "warning",
    legalComments: "none",
  });
  await esbuild.stop();
  // Each file is written beside its place and renamed into it, so a daemon
  // started from this directory meanwhile (a test, `deno task start`) finds
  // every file whole: a chunk missing when Deno loads the entry is left out
  // of its module graph, and importing it later needs read permission.
  await Deno.mkdir(outdir, { recursive: true });
  const outputs = new Set<string>();
  for (const file of result.outputFiles) {
    await writeWhole(file.path, file.contents);
    outputs.add(file.path.slice(file.path.lastIndexOf("/") + 1));
  }
  const sizes: Record<string, number> = {};
  for (const [file, info] of Object.entries(result.metafile.outputs)) sizes[file] = info.bytes;
  // Outputs of earlier builds (chunk names carry content hashes) go.
  for await (const entry of Deno.readDir(outdir)) {
    if (entry.isFile && /\.js(\.map)?$/.test(entry.name) && !outputs.has(entry.name)) {
      await Deno.remove(`${outdir}/${entry.name}`);
    }
  }
  // What the bundle was built from, for ensureBuilt()'s freshness check.
  // Files only: a plugin's virtual modules ("trim-client-node:undici") are
  // named by namespace, and a name that is no file would make every check stale.
  const inputs = [...Object.keys(result.metafile.inputs), LIST_PARSER_WORKER]
    .filter((f) => !f.includes("node_modules") && !/^[\w-]+:/.test(f));
  const encoder = new TextEncoder();
  await writeWhole(`${outdir}/meta.json`, encoder.encode(JSON.stringify(result.metafile)));
  await writeWhole(
    `${outdir}/inputs.json`,
    encoder.encode(JSON.stringify([...inputs, "deno.json", "deno.lock", "build/bundle.ts"])),
  );
  return sizes;
}

/** Whether `dist/` exists and is newer than every file it was built from. */
export async function isFresh(outdir = DIST): Promise<boolean> {
  try {
    const built = (await Deno.stat(`${outdir}/inputs.json`)).mtime!.getTime();
    const entry = (await Deno.stat(`${rootPath}${ENTRY}`)).mtime!.getTime();
    const inputs = JSON.parse(await Deno.readTextFile(`${outdir}/inputs.json`)) as string[];
    for (const input of inputs) {
      if ((await Deno.stat(`${rootPath}${input}`)).mtime!.getTime() > Math.min(built, entry)) {
        return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds `dist/` unless it is fresh. Concurrent callers (test files run in
 * parallel) wait for one build: a lock file is created exclusively, and one
 * older than two minutes (a build that died) is broken.
 */
export async function ensureBuilt(): Promise<void> {
  const lock = `${rootPath}dist.build.lock`;
  while (true) {
    if (await isFresh()) return;
    try {
      (await Deno.open(lock, { createNew: true, write: true })).close();
    } catch {
      const age = await Deno.stat(lock).then((s) => Date.now() - s.mtime!.getTime(), () => 0);
      if (age > 120_000) await Deno.remove(lock).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    try {
      if (!(await isFresh())) await build();
      return;
    } finally {
      await Deno.remove(lock).catch(() => {});
    }
  }
}

if (import.meta.main) {
  const sizes = await build();
  const lines = Object.entries(sizes).filter(([f]) => !f.endsWith(".map"))
    .map(([f, n]) => `${f} ${(n / 1024).toFixed(0)} KiB`);
  Deno.stdout.writeSync(new TextEncoder().encode(lines.join("\n") + "\n"));
}
