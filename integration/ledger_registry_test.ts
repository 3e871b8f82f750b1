/**
 * The tag ledger (#16) against a real registry: containerd and the open
 * registry started by `sudo bash .ci/containerd.sh up` (which writes
 * .ci/containerd.env), the split layout (one aggregator, three node
 * daemons, pod strategy) on the fake API server.
 *
 * The three nodes are simulated kubelets that all pull through the one real
 * containerd (`criPullHook`): each keeps its own `status.images` from its own
 * pulls, while every pull is a real one, so the registry's access log counts
 * the manifest requests the whole "cluster" makes.
 *
 * Under CI (`CI=true`) a missing runtime fails the run, as in cri_test.ts.
 */
import { assert, assertEquals } from "../testing/assert.ts";
import { type FakeApiServer, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { configMap } from "./faults/harness.ts";
import { loadConfig } from "../config/config.ts";
import { recordingLogger } from "../log/logger.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";
import type { AggregatorParts } from "../aggregator.ts";
import { createCriClient } from "../puller/cri/client.ts";
import { criPullHook } from "../puller/cri/pull_hook.ts";
import { buildRandomImage, pushImage } from "../bench/oci_image.ts";

const ENV_FILE = Deno.env.get("ICD_CRI_ENV_FILE") ??
  new URL("../.ci/containerd.env", import.meta.url).pathname;
const NS = "image-cache-daemon";
const NODES = ["node-1", "node-2", "node-3"];
const PERIODS = 3;

function readEnv(): { socket: string; registry: string; log: string; image: string } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(ENV_FILE);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const vars = new Map(
    text.split("\n").flatMap((l) => {
      const m = l.match(/^([A-Z_]+)=(.*)$/);
      return m ? [[m[1], m[2]] as const] : [];
    }),
  );
  const get = (name: string) => {
    const value = vars.get(name);
    if (!value) {
      throw new Error(`${ENV_FILE} lacks ${name}: run \`sudo bash .ci/containerd.sh up\``);
    }
    return value;
  };
  return {
    socket: get("ICD_CRI_SOCKET"),
    registry: get("ICD_REGISTRY"),
    log: get("ICD_REGISTRY_LOG"),
    image: get("ICD_TEST_IMAGE"),
  };
}

const env = readEnv();
if (env === undefined && Deno.env.get("CI") === "true") {
  Deno.test("tag ledger registry tests need a real containerd under CI", () => {
    throw new Error(
      `No containerd: ${ENV_FILE} is missing; run \`sudo bash .ci/containerd.sh up\``,
    );
  });
}

/** Lines of the access log containing `needle`, once two reads 100 ms apart agree. */
async function requestCount(log: string, needle: string): Promise<number> {
  const count = () =>
    Deno.readTextFileSync(log).split("\n").filter((l) => l.includes(needle)).length;
  let last = count();
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = count();
    if (now === last) return now;
    last = now;
  }
  return last;
}

async function pushNew(registry: string, repo: string, tag: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "icd-ledger-" });
  try {
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
    const image = await buildRandomImage(dir, { layers: 1, layerBytes: 512, architecture: arch });
    await pushImage(dir, `${registry}/${repo}:${tag}`);
    return image.digest;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function start<P>(server: FakeApiServer, args: string[], hook: string) {
  const { config } = loadConfig(
    [
      ...args,
      `--pod-namespace=${NS}`,
      "--metrics-bind-address=0",
      "--resync-period=2s",
      // The pull pod's init container comes from the local registry too (no network).
      `--warden-image=${env!.image}`,
    ],
    () => undefined,
  );
  const controller = new AbortController();
  let parts: P | undefined;
  const running = runDaemon(config, {
    kubeConfig: server.kubeConfig(),
    log: recordingLogger(),
    [hook]: (p: P) => parts = p,
  }, controller.signal);
  await waitFor(() => parts, { what: `${args.join(" ")} started` });
  return {
    parts: parts!,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

/** The ledger's digest of `ref` as a node daemon has applied it. */
function ledgerDigestOn(parts: DaemonParts, ref: string): string | undefined {
  return parts.puller.status().find((s) => s.ref === ref)?.ledgerDigest;
}

/** Whether every node lists `ref` and `repo@digest` as one image. */
function allHold(server: FakeApiServer, ref: string, digest: string): boolean {
  const repo = ref.slice(0, ref.lastIndexOf(":"));
  return NODES.every((node) => {
    const images = (server.get("nodes", undefined, node)?.status as {
      images?: { names: string[] }[];
    })?.images ?? [];
    return images.some((i) => i.names.includes(ref) && i.names.includes(`${repo}@${digest}`));
  });
}

Deno.test({
  name:
    "against a real registry, the tag ledger makes one tag check per unchanged period cluster-wide and converges every node on a moved tag",
  ignore: env === undefined,
  async fn() {
    const { socket, registry, log } = env!;
    const repo = `icd/ledger-${crypto.randomUUID().slice(0, 8)}`;
    const ref = `${registry}/${repo}:v1`;
    const tagRequests = ` /v2/${repo}/manifests/v1 `;
    const v1 = await pushNew(registry, repo, "v1");
    const client = createCriClient(socket);
    const server = await startFakeApiServer({ nodes: NODES, namespaces: ["default", NS, "apps"] });
    const stops: (() => Promise<void>)[] = [];
    try {
      for (const node of NODES) server.kubelet(node).setPullHook(criPullHook(client));
      server.create("configmaps", configMap("apps", "list", { images: JSON.stringify([ref]) }));
      const aggregator = await start<AggregatorParts>(
        server,
        ["--role=aggregator", "--pod-name=aggregator-a"],
        "onAggregatorStarted",
      );
      stops.push(aggregator.stop);
      const nodes: DaemonParts[] = [];
      for (const node of NODES) {
        const n = await start<DaemonParts>(
          server,
          ["--role=node", `--node-name=${node}`],
          "onStarted",
        );
        stops.push(n.stop);
        nodes.push(n.parts);
      }
      await waitFor(() => aggregator.parts.ledger.entry(ref)?.digest === v1, {
        what: "v1 in the ledger",
        timeoutMs: 30_000,
      });
      await waitFor(() => allHold(server, ref, v1), {
        what: "v1 on every node",
        timeoutMs: 30_000,
      });
      // The digest is published on the ledger's own, slower schedule: count
      // from when every node has it.
      await waitFor(() => nodes.every((n) => ledgerDigestOn(n, ref) === v1), {
        what: "v1 published to every node",
        timeoutMs: 30_000,
      });

      // Unchanged periods: only the canary pulls, one tag resolution each.
      const canary = aggregator.parts.ledger.entry(ref)!.canary!;
      const pulls = (node: string) =>
        server.kubelet(node).pulls.filter((p) => p.ref === ref).length;
      // Settle: the next canary pull starts a clean count.
      const first = pulls(canary);
      await waitFor(() => pulls(canary) > first, { what: "a canary check", timeoutMs: 30_000 });
      const before = await requestCount(log, tagRequests);
      const pullsBefore = new Map(NODES.map((n) => [n, pulls(n)] as const));
      await waitFor(() => pulls(canary) >= pullsBefore.get(canary)! + PERIODS, {
        what: `${PERIODS} canary checks`,
        timeoutMs: 60_000,
      });
      const checks = pulls(canary) - pullsBefore.get(canary)!;
      const requests = await requestCount(log, tagRequests) - before;
      for (const node of NODES) {
        if (node !== canary) assertEquals(pulls(node), pullsBefore.get(node), `${node} pulled`);
      }
      // containerd resolves a tag with one HEAD of its manifest per pull.
      assertEquals(requests, checks, `${requests} tag manifest requests for ${checks} periods`);

      // The tag moves: new content under v1.
      const v2 = await pushNew(registry, repo, "v1");
      assert(v2 !== v1);
      await waitFor(() => aggregator.parts.ledger.entry(ref)?.digest === v2, {
        what: "v2 in the ledger",
        timeoutMs: 30_000,
      });
      await waitFor(() => allHold(server, ref, v2), {
        what: "v2 on every node",
        timeoutMs: 30_000,
      });
    } finally {
      for (const stop of stops.reverse()) await stop();
      await server.close();
      client.close();
    }
  },
});

Deno.test({
  name:
    "against a real registry with --pull-strategy=cri, the canary's TagChecked Events feed the ledger: one tag check per unchanged period cluster-wide, and a moved tag reaches every node",
  ignore: env === undefined,
  async fn() {
    const { socket, registry, log } = env!;
    const repo = `icd/ledger-cri-${crypto.randomUUID().slice(0, 8)}`;
    const ref = `${registry}/${repo}:v1`;
    const tagRequests = ` /v2/${repo}/manifests/v1 `;
    const v1 = await pushNew(registry, repo, "v1");
    const server = await startFakeApiServer({ nodes: NODES, namespaces: ["default", NS, "apps"] });
    const stops: (() => Promise<void>)[] = [];
    try {
      server.create("configmaps", configMap("apps", "list", { images: JSON.stringify([ref]) }));
      const aggregator = await start<AggregatorParts>(
        server,
        ["--role=aggregator", "--pod-name=aggregator-a"],
        "onAggregatorStarted",
      );
      stops.push(aggregator.stop);
      // Three node daemons pulling through the one containerd (so each sees
      // what the others pulled: the store is shared, the decisions are not).
      const nodes = new Map<string, DaemonParts>();
      for (const node of NODES) {
        const n = await start<DaemonParts>(
          server,
          [
            "--role=node",
            `--node-name=${node}`,
            `--pod-name=icd-${node}`,
            "--pull-strategy=cri",
            `--cri-socket=${socket}`,
          ],
          "onStarted",
        );
        stops.push(n.stop);
        nodes.set(node, n.parts);
      }
      const onNode = (node: string) => nodes.get(node)!.puller.status().find((s) => s.ref === ref);
      await waitFor(() => aggregator.parts.ledger.entry(ref)?.digest === v1, {
        what: "v1 in the ledger, from a TagChecked Event",
        timeoutMs: 30_000,
      });
      await waitFor(() => [...nodes.values()].every((n) => ledgerDigestOn(n, ref) === v1), {
        what: "v1 published to every node",
        timeoutMs: 30_000,
      });
      assert(
        server.list("events", { namespace: NS }).some((e) =>
          (e as { reason?: string }).reason === "TagChecked"
        ),
      );
      // Unchanged periods: the canary checks the registry; the others ask the runtime only.
      const canary = aggregator.parts.ledger.entry(ref)!.canary!;
      await waitFor(() => (onNode(canary)?.attempts ?? 0) > 1, { what: "a canary recheck" });
      const before = await requestCount(log, tagRequests);
      const attemptsBefore = onNode(canary)!.attempts;
      await waitFor(() => onNode(canary)!.attempts >= attemptsBefore + PERIODS, {
        what: `${PERIODS} canary checks`,
        timeoutMs: 60_000,
      });
      const checks = onNode(canary)!.attempts - attemptsBefore;
      const requests = await requestCount(log, tagRequests) - before;
      // One HEAD per canary check (a check in flight at either end may add one), none for the others.
      assert(
        requests >= checks - 1 && requests <= checks + 1,
        `${requests} tag manifest requests for ${checks} canary checks on three nodes`,
      );

      // The tag moves: new content under v1.
      const v2 = await pushNew(registry, repo, "v1");
      assert(v2 !== v1);
      await waitFor(() => aggregator.parts.ledger.entry(ref)?.digest === v2, {
        what: "v2 in the ledger",
        timeoutMs: 30_000,
      });
      await waitFor(() => NODES.every((node) => onNode(node)?.digest === v2), {
        what: "v2 on every node",
        timeoutMs: 30_000,
      });
    } finally {
      for (const stop of stops.reverse()) await stop();
      await server.close();
    }
  },
});
