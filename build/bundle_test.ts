import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { build, DIST, ensureBuilt, isFresh, LOADED_ON_FIRST_USE } from "./bundle.ts";

interface Metafile {
  inputs: Record<string, unknown>;
  outputs: Record<string, {
    entryPoint?: string;
    imports: { path: string; kind: string }[];
    inputs: Record<string, unknown>;
  }>;
}

/** Everything `entry` loads at start: itself and its static imports, transitively. */
function loadedAtStart(meta: Metafile, entry: string): Set<string> {
  const loaded = new Set<string>();
  const visit = (file: string) => {
    if (loaded.has(file)) return;
    loaded.add(file);
    for (const i of meta.outputs[file].imports) {
      if (i.kind === "import-statement" && meta.outputs[i.path]) visit(i.path);
    }
  };
  visit(entry);
  return loaded;
}

Deno.test("The shipped bundle loads the CRI stack only through a dynamic import", async () => {
  await ensureBuilt();
  const meta = JSON.parse(await Deno.readTextFile(`${DIST}/meta.json`)) as Metafile;
  const [entryFile] = Object.entries(meta.outputs).find(([, o]) => o.entryPoint === "main.ts")!;
  assert(entryFile.endsWith("image-cache-daemon.js"), entryFile);
  const loaded = loadedAtStart(meta, entryFile);
  const inputsAtStart = [...loaded].flatMap((f) => Object.keys(meta.outputs[f].inputs));
  assertEquals(inputsAtStart.filter((i) => /@grpc|protobufjs|puller\/cri\//.test(i)), []);
  // The dynamic import may sit in a shared chunk the entry loads, not in the entry itself.
  const dynamic = [...loaded].flatMap((f) =>
    meta.outputs[f].imports.filter((i) => i.kind === "dynamic-import").map((i) => i.path)
  );
  const lazyInputs = dynamic.flatMap((f) => Object.keys(meta.outputs[f].inputs));
  assert(lazyInputs.some((i) => i.endsWith("puller/cri/cri_strategy.ts")), dynamic.join());
  assert(lazyInputs.some((i) => i.includes("@grpc/grpc-js")), "grpc-js is not in a lazy chunk");
});

Deno.test("A node daemon's start loads neither the cluster's sources nor a YAML parser: they are loaded only by the roles that watch the sources", async () => {
  await ensureBuilt();
  const meta = JSON.parse(await Deno.readTextFile(`${DIST}/meta.json`)) as Metafile;
  const [entryFile] = Object.entries(meta.outputs).find(([, o]) => o.entryPoint === "main.ts")!;
  const loaded = loadedAtStart(meta, entryFile);
  const inputsAtStart = [...loaded].flatMap((f) => Object.keys(meta.outputs[f].inputs));
  const sourceCode =
    /sources\/(configmap|argo|argo_images|bounded_yaml|configmap_images)\.ts$|node_modules\/.*\/yaml\//;
  assertEquals(inputsAtStart.filter((i) => sourceCode.test(i)), []);
  const lazyInputs = Object.values(meta.outputs).flatMap((o) => Object.keys(o.inputs));
  assert(
    lazyInputs.some((i) => i.endsWith("sources/argo_images.ts")),
    "the Argo code is in no chunk",
  );
});

Deno.test("An error thrown in bundled code names the original file and line under -P=daemon", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bundle_test_" });
  try {
    await build({ entry: ["integration/fixtures/bundle_throws.ts", "throws"], outdir: dir });
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P=daemon",
        `--config=${new URL("../deno.json", import.meta.url).pathname}`,
        `${dir}/throws.js`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertMatch(stderr, /TypeError: Bundled failure for x/);
    assertMatch(
      stderr,
      /at failInNamedFunction \(.*integration\/fixtures\/bundle_throws\.ts:7:\d+\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client-node takes from undici only the exports the bundle's trimmed undici entry provides, and names what it takes from the packages it loads on first use", async () => {
  await ensureBuilt();
  const meta = JSON.parse(await Deno.readTextFile(`${DIST}/meta.json`)) as Metafile;
  const root = new URL("../", import.meta.url);
  const clientNode = Object.keys(meta.outputs).flatMap((f) => Object.keys(meta.outputs[f].inputs))
    .filter((i) => /@kubernetes\/client-node\/dist\/.*\.js$/.test(i));
  assert(clientNode.length > 0, "no client-node file in the bundle");
  const names = new Set<string>();
  for (const file of new Set(clientNode)) {
    const text = await Deno.readTextFile(new URL(file, root));
    for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]undici['"]/g)) {
      for (const n of m[1].split(",")) if (n.trim()) names.add(n.trim().split(/\s+as\s+/)[0]);
    }
    // The packages loaded on first use get a stand-in of getters: named or
    // namespace imports only (a default import would get the stand-in).
    for (const name of LOADED_ON_FIRST_USE) {
      const quoted = name.replace(/[-/]/g, "\\$&");
      assert(
        !new RegExp(`import\\s+\\w+\\s*(,[^;]*)?from\\s*['"]${quoted}['"]`).test(text),
        `${file} imports ${name} by default`,
      );
    }
    assert(
      !/import\s+(\*|\w+\s*,|\w+\s+from)[^;]*['"]undici['"]/.test(text),
      `${file} imports undici whole`,
    );
  }
  assertEquals([...names].sort(), ["Agent", "ProxyAgent", "fetch"]);
  // And undici's own entry, which requires all of undici, is not what they get.
  const undiciParts = Object.keys(meta.inputs).filter((i) =>
    /undici@[^/]+\/node_modules\/undici\/lib\/mock\//.test(i)
  );
  assertEquals(undiciParts, []);
});

Deno.test("Bundled, client-node still loads the packages it loads on first use: a cluster behind a SOCKS proxy gets its agent and its requests go to the proxy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bundle_test_" });
  try {
    await build({ entry: ["integration/fixtures/bundle_socks_proxy.ts", "socks"], outdir: dir });
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P=daemon",
        `--config=${new URL("../deno.json", import.meta.url).pathname}`,
        `${dir}/socks.js`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const [agent, failure] = new TextDecoder().decode(out.stdout).split("\n");
    assertEquals(agent, "SocksProxyAgent");
    // The request went to the proxy (port 1, refused), not to the API server.
    assertMatch(failure, /ECONNREFUSED 127\.0\.0\.1:1$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A built bundle counts as fresh, so the test files that start daemons from dist/ do not rebuild it under each other: it lists only real files as its inputs", async () => {
  await ensureBuilt();
  assert(await isFresh(), "dist/ is stale right after it was built");
  const root = new URL("../", import.meta.url);
  const inputs = JSON.parse(await Deno.readTextFile(`${DIST}/inputs.json`)) as string[];
  assert(inputs.includes("main.ts"), inputs.join());
  const missing = [];
  for (const input of inputs) {
    if (!(await Deno.stat(new URL(input, root)).then((s) => s.isFile, () => false))) {
      missing.push(input);
    }
  }
  assertEquals(missing, []);
});

Deno.test("A rebuild replaces each output file by a rename, so a daemon starting from the directory meanwhile never finds a chunk missing or half written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bundle_test_" });
  try {
    const entry = ["integration/fixtures/bundle_throws.ts", "throws"] as const;
    await build({ entry, outdir: dir, minify: false });
    const names = async () => {
      const found: string[] = [];
      for await (const e of Deno.readDir(dir)) found.push(e.name);
      return found.sort();
    };
    const files = async () => (await names()).filter((n) => n.endsWith(".js"));
    const before = await files();
    assert(before.length > 1, before.join());
    const inodes = new Map<string, number | null>();
    for (const name of before) inodes.set(name, (await Deno.stat(`${dir}/${name}`)).ino);
    // A reader polls every file while the same bundle is built again.
    let rebuilding = true;
    const seen: string[] = [];
    const reader = (async () => {
      while (rebuilding) {
        for (const name of before) {
          const size = await Deno.stat(`${dir}/${name}`).then((s) => s.size, () => -1);
          if (size <= 0) seen.push(`${name}: ${size < 0 ? "missing" : "empty"}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })();
    await build({ entry, outdir: dir, minify: false }).finally(() => rebuilding = false);
    await reader;
    assertEquals(seen, []);
    assertEquals(await files(), before, "the same content gives the same file names");
    for (const name of before) {
      const now = (await Deno.stat(`${dir}/${name}`)).ino;
      assert(now !== inodes.get(name), `${name} was rewritten in place`);
    }
    assertEquals((await names()).filter((n) => n.endsWith(".tmp")), [], "temporaries left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
