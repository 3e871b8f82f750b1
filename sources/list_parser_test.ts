import { recordingLogger } from "../log/logger.ts";
import type { ItemBatch } from "../kube/reflector.ts";
import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { waitFor } from "../testing/wait.ts";
import { MAX_LOOP_ITEMS } from "./argo_images.ts";
import { parseEntries } from "./extractors.ts";
import { ListParser } from "./list_parser.ts";
import type { EntrySpec } from "./object_entry.ts";

const WT: EntrySpec = {
  name: "workflowtemplate",
  kind: "WorkflowTemplate",
  apiVersion: "argoproj.io/v1alpha1",
};
const CM: EntrySpec = { name: "configmap", kind: "ConfigMap", apiVersion: "v1" };

function batchOf(...objects: (object | string)[]): ItemBatch {
  const encoder = new TextEncoder();
  const parts = objects.map((o) => encoder.encode(typeof o === "string" ? o : JSON.stringify(o)));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const ends: number[] = [];
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
    ends.push(at);
  }
  return { bytes, ends };
}

const templates = batchOf(
  {
    metadata: { namespace: "ci", name: "build", uid: "u1", resourceVersion: "7" },
    spec: {
      arguments: { parameters: [{ name: "tag", value: "1.23" }] },
      templates: [
        { name: "main", container: { image: "golang:{{workflow.parameters.tag}}" } },
        { name: "lint", script: { image: "python:3.12", source: "print('é')" } },
      ],
    },
  },
  {
    // Past a limit: rejected whole, naming it.
    metadata: { namespace: "ci", name: "wide" },
    spec: {
      templates: [{
        name: "main",
        dag: {
          tasks: [{
            name: "t",
            withSequence: { count: String(MAX_LOOP_ITEMS + 1) },
            inline: { container: { image: "alpine:{{item}}" } },
          }],
        },
      }],
    },
  },
  { metadata: { name: "cluster-scoped-like" }, spec: { templates: "not a list" } },
);

const configMaps = batchOf(
  { metadata: { namespace: "apps", name: "yaml" }, data: { images: "- nginx:1.27\n- redis:7\n" } },
  { metadata: { namespace: "apps", name: "broken" }, data: { images: "{not a list" } },
);

/** Waits until the parser logged that its worker is ready. */
async function workerReady(log: ReturnType<typeof recordingLogger>): Promise<void> {
  await waitFor(() => log.lines.some((l) => l.msg === "Parsing listed objects on a worker thread"));
}

function parser() {
  const log = recordingLogger();
  return { log, parser: new ListParser({ log }) };
}

Deno.test("ListParser's worker reads each listed object exactly as the main thread does, errors and limits included", async () => {
  const { log, parser: p } = parser();
  try {
    for (const [spec, batch] of [[WT, templates], [CM, configMaps]] as const) {
      const here = parseEntries(spec, batch);
      assertEquals(await p.parse(spec, batch), here);
    }
    await workerReady(log);
    assert(p.offThread);
    const [build, wide, bad] = await p.parse(WT, templates);
    assertEquals(build[0], "ci/build");
    assertEquals(build[1].origin, "workflowtemplate/ci/build");
    assertEquals(build[1].ref, {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "WorkflowTemplate",
      name: "build",
      namespace: "ci",
      uid: "u1",
      resourceVersion: "7",
    });
    assertEquals([...build[1].images!].sort(), ["golang:1.23", "python:3.12"]);
    assertEquals(wide[1].limit, "MAX_LOOP_ITEMS");
    assertEquals(bad[0], "cluster-scoped-like");
    assert(bad[1].error);
    const [yaml, broken] = await p.parse(CM, configMaps);
    assertEquals(yaml[1].images, ["nginx:1.27", "redis:7"]);
    assert(broken[1].error);
    assertEquals(log.lines.filter((l) => l.level === "warn"), []);
  } finally {
    p.close();
  }
});

Deno.test("ListParser rejects a batch holding malformed JSON with a SyntaxError, and parses the next one", async () => {
  const { parser: p } = parser();
  try {
    await assertRejects(
      () => p.parse(CM, batchOf('{"metadata":{"name":"a"}}', '{"metadata":{"name":b}}')),
      SyntaxError,
    );
    assertEquals((await p.parse(CM, configMaps)).map(([key]) => key), ["apps/yaml", "apps/broken"]);
  } finally {
    p.close();
  }
});

/** A worker (as a data: URL) running `onFinished` on the shared counter, then answering nothing or, after 50 ms, a marker. */
function scriptedWorker(onFinished: string, answer: boolean): string {
  return "data:text/javascript," + encodeURIComponent(`
    self.onmessage = ({ data }) => {
      if (data.finished) {
        ${onFinished}
        self.postMessage({ id: 0, ready: true });
        return;
      }
      if (${answer}) {
        setTimeout(() => self.postMessage({ id: data.id, entries: [["from-worker", {}]] }), 50);
      }
    };
  `);
}

Deno.test("ListParser's worker counts each batch finished before its answer arrives", async () => {
  const { parser: p } = parser();
  try {
    assertEquals(p.backlog, 0);
    for (let i = 0; i < 3; i++) {
      await p.parse(WT, templates);
      assertEquals(p.backlog, 0);
    }
    const three = [p.parse(CM, configMaps), p.parse(WT, templates), p.parse(CM, configMaps)];
    assertEquals(p.backlog, 3);
    await Promise.all(three);
    assertEquals(p.backlog, 0);
    assert(p.offThread);
  } finally {
    p.close();
  }
});

Deno.test("ListParser keeps giving batches to a worker that says it has finished them, though its answers have not arrived", async () => {
  const log = recordingLogger();
  // Counts every batch finished at once, and answers each 50 ms later: the
  // main thread, which learns of answers only between its tasks, must not
  // take this worker for behind.
  const p = new ListParser({
    log,
    workerUrl: scriptedWorker("Atomics.store(data.finished, 0, 1_000_000);", true),
  });
  try {
    await workerReady(log);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => p.parse(CM, configMaps)),
    );
    assertEquals(results.map((r) => r[0][0]), Array(20).fill("from-worker"));
  } finally {
    p.close();
  }
});

Deno.test("ListParser parses a batch on the main thread while its worker has eight unfinished", async () => {
  const log = recordingLogger();
  // Never finishes a batch and never answers.
  const p = new ListParser({ log, workerUrl: scriptedWorker("", false) });
  try {
    await workerReady(log);
    const sent = Array.from({ length: 8 }, () => p.parse(CM, configMaps));
    for (const s of sent) s.catch(() => {});
    assertEquals(p.backlog, 8);
    // The ninth and tenth are parsed here, at once: settled before a timer
    // turn (sent to this worker, they would never settle).
    const got: unknown[] = [];
    p.parse(CM, configMaps).then((r) => got.push(r));
    p.parse(WT, templates).then((r) => got.push(r));
    await new Promise((resolve) => setTimeout(resolve, 0));
    assertEquals(got, [parseEntries(CM, configMaps), parseEntries(WT, templates)]);
    assertEquals(p.backlog, 8);
    p.close();
    for (const s of sent) await assertRejects(() => s, Error, "closed");
  } finally {
    p.close();
  }
});

Deno.test("ListParser parses on the main thread, saying so once, when its worker cannot start", async () => {
  const log = recordingLogger();
  const p = new ListParser({ log, workerUrl: "data:text/javascript,throw new Error('no worker')" });
  try {
    const first = p.parse(WT, templates);
    const second = p.parse(CM, configMaps);
    assertEquals(await first, parseEntries(WT, templates));
    assertEquals(await second, parseEntries(CM, configMaps));
    assertEquals(await p.parse(CM, configMaps), parseEntries(CM, configMaps));
    assert(!p.offThread);
    const warnings = log.lines.filter((l) => l.level === "warn");
    assertEquals(warnings.map((l) => l.msg), [
      "List parser worker failed; parsing listed objects on the main thread",
    ]);
    assert(String(warnings[0].error).includes("no worker"), String(warnings[0].error));
  } finally {
    p.close();
  }
});

Deno.test("ListParser loses no batch its worker had not answered when the worker dies", async () => {
  const log = recordingLogger();
  // Loads and takes the counter, then fails on its first batch, as a worker
  // that runs out of memory would.
  const p = new ListParser({
    log,
    workerUrl: "data:text/javascript," + encodeURIComponent(
      "self.onmessage = ({ data }) => { if (!data.finished) throw new Error('died'); };",
    ),
  });
  try {
    const batches = [templates, configMaps, templates];
    const specs = [WT, CM, WT];
    const results = await Promise.all(batches.map((b, i) => p.parse(specs[i], b)));
    assertEquals(results, batches.map((b, i) => parseEntries(specs[i], b)));
    assertEquals(log.lines.filter((l) => l.level === "warn").length, 1);
  } finally {
    p.close();
  }
});

Deno.test("ListParser rejects what it was still parsing when closed, and everything after", async () => {
  const { parser: p } = parser();
  const pending = p.parse(WT, templates);
  p.close();
  await assertRejects(() => pending, Error, "closed");
  await assertRejects(() => p.parse(WT, templates), Error, "closed");
});
