/**
 * The CRI pull strategy against a real containerd and real registries, as
 * started by `sudo bash .ci/containerd.sh up` (which writes .ci/containerd.env).
 *
 * Under CI (`CI=true`) a missing runtime fails the run: CI machines can start
 * one, so a skip there would hide a broken setup.
 */
import { PullError } from "../puller/errors.ts";
import { recordingLogger } from "../log/logger.ts";
import { createCriClient, type CriClient, criPermissionFlags } from "../puller/cri/client.ts";
import { CriPullStrategy, type CriPullStrategyOptions } from "../puller/cri/cri_strategy.ts";
import { criPullHook } from "../puller/cri/pull_hook.ts";
import { authForImage, parseDockerConfigJson } from "../puller/cri/registry_auth.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../testing/assert.ts";
import { type KubeObject, startFakeApiServer } from "../testing/fake_apiserver/mod.ts";
import { waitFor } from "../testing/wait.ts";
import { loadConfig } from "../config/config.ts";
import { type DaemonParts, runDaemon } from "../daemon.ts";

const ENV_FILE = Deno.env.get("ICD_CRI_ENV_FILE") ??
  new URL("../.ci/containerd.env", import.meta.url).pathname;
const SETUP_HINT = "run `sudo bash .ci/containerd.sh up`";

/** The endpoints .ci/containerd.sh wrote. */
interface CriEnv {
  socket: string;
  registry: string;
  registryLog: string;
  authRegistry: string;
  authRegistryLog: string;
  user: string;
  pass: string;
  image: string;
  digest: string;
  pinnedImage: string;
}

function readEnv(): CriEnv | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(ENV_FILE);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = line.match(/^([A-Z_]+)=(.*)$/);
    if (match) vars.set(match[1], match[2]);
  }
  const get = (name: string): string => {
    const value = vars.get(name);
    if (!value) throw new Error(`${ENV_FILE} lacks ${name}: ${SETUP_HINT} again`);
    return value;
  };
  return {
    socket: get("ICD_CRI_SOCKET"),
    registry: get("ICD_REGISTRY"),
    registryLog: get("ICD_REGISTRY_LOG"),
    authRegistry: get("ICD_AUTH_REGISTRY"),
    authRegistryLog: get("ICD_AUTH_REGISTRY_LOG"),
    user: get("ICD_REGISTRY_USER"),
    pass: get("ICD_REGISTRY_PASS"),
    image: get("ICD_TEST_IMAGE"),
    digest: get("ICD_TEST_DIGEST"),
    pinnedImage: get("ICD_PINNED_IMAGE"),
  };
}

const env = readEnv();

if (env === undefined && Deno.env.get("CI") === "true") {
  Deno.test("CRI tests need a real containerd under CI", () => {
    throw new Error(`No containerd: ${ENV_FILE} is missing; ${SETUP_HINT} before the tests`);
  });
}
defineRealRuntimeTests(env);

const decoder = new TextDecoder();

async function ctr(socket: string, ...args: string[]): Promise<{ code: number; out: string }> {
  const result = await new Deno.Command("ctr", {
    args: ["-n", "k8s.io", "--address", socket, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: result.code,
    out: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/**
 * Removes an image from containerd under every name the CRI plugin gave it
 * (tag, repository digest, image ID), and with it its unreferenced content.
 */
async function removeImage(socket: string, ref: string): Promise<void> {
  const client = createCriClient(socket);
  try {
    const image = await client.imageStatus(ref);
    if (image === undefined) return;
    const names = [...image.repoTags, ...image.repoDigests, image.id];
    const removed = await ctr(socket, "images", "rm", "--sync", ...names);
    assertEquals(removed.code, 0, `ctr images rm: ${removed.out}`);
  } finally {
    client.close();
  }
}

/** Requests in a registry's access log whose line contains `needle`, once the log is quiet. */
async function requestCount(log: string, needle: string): Promise<number> {
  const count = () =>
    Deno.readTextFileSync(log).split("\n").filter((line) => line.includes(needle)).length;
  // The registry writes a line after it has sent the response; wait until
  // two reads 100 ms apart agree.
  let last = count();
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = count();
    if (now === last) return now;
    last = now;
  }
  return last;
}

/**
 * Declares the tests against the real runtime. Without one (`env`
 * undefined) each is declared ignored, so the report counts them as not run
 * rather than passed; under CI the test above fails instead.
 */
function defineRealRuntimeTests(found: CriEnv | undefined): void {
  // Never read while `found` is undefined: every test is then ignored.
  const env = found ?? ({} as CriEnv);
  const criTest = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name, ignore: found === undefined, fn });
  const reg = env.registry;
  const open = (options: Partial<CriPullStrategyOptions> = {}) => {
    const log = recordingLogger();
    const strategy = new CriPullStrategy({ socket: env.socket, log, ...options });
    return { strategy, log };
  };
  const pullOptions = (refresh = false) => ({
    signal: new AbortController().signal,
    refresh,
    trusted: true,
  });
  // grpc-js keeps its channel's timers and socket until close(); each test
  // closes what it opened, so the sanitizers stay on.
  const withClient = async (fn: (client: CriClient) => Promise<void>) => {
    const client = createCriClient(env.socket);
    try {
      await fn(client);
    } finally {
      client.close();
    }
  };

  criTest("CriPullStrategy.start() connects to containerd and logs its version", async () => {
    const { strategy, log } = open();
    try {
      await strategy.start(new AbortController().signal);
      const line = log.lines.find((l) => l.msg === "CRI runtime connected");
      assertEquals(line?.runtime, "containerd");
      assertEquals(line?.apiVersion, "v1");
    } finally {
      await strategy.close();
    }
  });

  criTest(
    "CriPullStrategy.start() names the socket and the flag when nothing listens",
    async () => {
      const socket = `${env.socket}.missing`;
      const { strategy } = open({ socket });
      try {
        const error = await assertRejects(() => strategy.start(new AbortController().signal));
        assertMatch(
          error.message,
          /^Cannot reach CRI socket ".*containerd\.sock\.missing": .*is --cri-socket right\?$/,
        );
      } finally {
        await strategy.close();
      }
    },
  );

  criTest("pull() makes a tagged image present in containerd and reports its digest", async () => {
    await removeImage(env.socket, env.image);
    const { strategy } = open();
    try {
      const result = await strategy.pull(env.image, pullOptions());
      assertEquals(result, { digest: env.digest });
    } finally {
      await strategy.close();
    }
    await withClient(async (client) => {
      const status = await client.imageStatus(env.image);
      assert(status !== undefined, "ImageStatus does not find the pulled image");
      assert(status.repoTags.includes(env.image), `repo tags: ${status.repoTags}`);
    });
    const listed = await ctr(env.socket, "images", "ls", "-q");
    assertEquals(listed.code, 0, listed.out);
    assert(listed.out.split("\n").includes(env.image), `ctr images ls:\n${listed.out}`);
  });

  criTest("pull() skips a present tag, and pulls it again when a refresh asks", async () => {
    const ref = `${reg}/icd/refresh:1`;
    // containerd resolves a tag with HEAD, then GETs only what it lacks.
    const manifests = " /v2/icd/refresh/manifests/1 ";
    const { strategy } = open();
    try {
      await strategy.pull(ref, pullOptions());
      const before = await requestCount(env.registryLog, manifests);

      const again = await strategy.pull(ref, pullOptions(false));
      assertEquals(again, { skipped: true, digest: env.digest });
      assertEquals(await requestCount(env.registryLog, manifests), before);

      const refreshed = await strategy.pull(ref, pullOptions(true));
      assertEquals(refreshed, { digest: env.digest });
      assert(
        await requestCount(env.registryLog, manifests) > before,
        "a refresh did not fetch the tag's manifest again",
      );
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() never fetches a present digest-pinned image again", async () => {
    const ref = env.pinnedImage;
    const digest = ref.slice(ref.indexOf("@") + 1);
    const repoRequests = " /v2/icd/pinned/";
    const blobFetches = "GET /v2/icd/pinned/blobs/";
    // Removed with its content, so the first pull below fetches every blob.
    await removeImage(env.socket, ref);
    const { strategy } = open();
    try {
      const blobsBefore = await requestCount(env.registryLog, blobFetches);
      const first = await strategy.pull(ref, pullOptions());
      assertEquals(first, { digest });
      assert(
        await requestCount(env.registryLog, blobFetches) > blobsBefore,
        "the first pull fetched no blob",
      );
      const afterFirst = await requestCount(env.registryLog, repoRequests);

      // A refresh too: a digest names fixed content.
      const second = await strategy.pull(ref, pullOptions(true));
      assertEquals(second, { skipped: true, digest });
      assertEquals(await requestCount(env.registryLog, repoRequests), afterFirst);
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() fails a missing tag with a retryable ErrImagePull", async () => {
    const ref = `${reg}/icd/busybox:no-such-tag`;
    const { strategy } = open();
    try {
      const error = await assertRejects(() => strategy.pull(ref, pullOptions()), PullError);
      assertEquals([error.reason, error.permanent, error.ref], ["ErrImagePull", false, ref]);
      assertMatch(error.message, /^Cannot pull ".*icd\/busybox:no-such-tag" .*not found/);
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() fails permanently when no variant matches the node's platform", async () => {
    const ref = `${reg}/icd/otherarch:1`;
    const { strategy } = open();
    try {
      const error = await assertRejects(() => strategy.pull(ref, pullOptions()), PullError);
      assertEquals([error.reason, error.permanent], ["NoMatchingPlatform", true]);
      assertMatch(error.message, /no match for platform/);
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() turns the gRPC deadline into a Timeout", async () => {
    const { strategy } = open({ timeoutMs: 1 });
    try {
      const error = await assertRejects(
        () => strategy.pull(`${reg}/icd/busybox:deadline`, pullOptions()),
        PullError,
      );
      assertEquals([error.reason, error.permanent], ["Timeout", false]);
      assertMatch(error.message, /did not finish within 1 ms/);
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() is Unauthorized at a registry that requires credentials it lacks", async () => {
    const ref = `${env.authRegistry}/icd/busybox:1`;
    await removeImage(env.socket, ref);
    const { strategy } = open();
    try {
      const error = await assertRejects(() => strategy.pull(ref, pullOptions()), PullError);
      assertEquals([error.reason, error.permanent], ["Unauthorized", false]);
      assertMatch(error.message, /401 Unauthorized/);
    } finally {
      await strategy.close();
    }
  });

  criTest("pull() passes dockerconfigjson credentials on to the registry", async () => {
    const ref = `${env.authRegistry}/icd/busybox:1`;
    // This registry answers 200 only to a request with valid credentials.
    const authorized = '/v2/icd/busybox/manifests/1 HTTP/1.1" 200 ';
    await removeImage(env.socket, ref);
    const secretData = btoa(JSON.stringify({
      auths: { [`http://${env.authRegistry}`]: { auth: btoa(`${env.user}:${env.pass}`) } },
    }));
    const secrets = [parseDockerConfigJson(secretData)];
    const { strategy, log } = open({ auth: (image) => authForImage(image, secrets) });
    try {
      const before = await requestCount(env.authRegistryLog, authorized);
      const result = await strategy.pull(ref, pullOptions());
      assertEquals(result, { digest: env.digest });
      assertEquals(log.lines.find((l) => l.msg === "Image pulled")?.withCredentials, true);
      assert(
        await requestCount(env.authRegistryLog, authorized) > before,
        "no authorized manifest request reached the registry",
      );
    } finally {
      await strategy.close();
    }
  });

  criTest("criPullHook() pulls for a simulated kubelet and reports the imageID", async () => {
    const ref = `${reg}/icd/kubelet:1`;
    await removeImage(env.socket, ref);
    await withClient(async (client) => {
      const hook = criPullHook(client);
      await assertRejects(() => hook(ref, "Never"), Error, "ErrImageNeverPull");
      assertEquals(await hook(ref, "IfNotPresent"), {
        imageID: `${reg}/icd/kubelet@${env.digest}`,
      });
      assert((await client.imageStatus(ref)) !== undefined);
      await assertRejects(() => hook(`${reg}/icd/kubelet:gone`, "Always"), Error, "ErrImagePull");
    });
  });

  criTest("a pod on a fake node gets its image through real containerd", async () => {
    const ref = `${reg}/icd/kubelet:1`;
    await removeImage(env.socket, ref);
    const server = await startFakeApiServer({ nodes: ["node-1"] });
    const client = createCriClient(env.socket);
    try {
      server.kubelet("node-1").setPullHook(criPullHook(client));
      const pod = (name: string, image: string) => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: "default" },
        spec: {
          nodeName: "node-1",
          restartPolicy: "Never",
          containers: [{ name: "main", image, imagePullPolicy: "IfNotPresent" }],
        },
      });
      type Status = {
        phase?: string;
        containerStatuses?: {
          imageID?: string;
          state?: { waiting?: { reason?: string; message?: string } };
        }[];
      };
      const status = (p: KubeObject) => ((p as { status?: unknown }).status ?? {}) as Status;

      server.create("pods", pod("pulled", ref));
      const done = await server.waitFor("pods", (p) => status(p).phase === "Succeeded", {
        namespace: "default",
        name: "pulled",
        timeoutMs: 10_000,
      });
      assertEquals(
        status(done).containerStatuses?.[0]?.imageID,
        `${reg}/icd/kubelet@${env.digest}`,
      );
      assert((await client.imageStatus(ref)) !== undefined, "containerd lacks the image");

      server.create("pods", pod("missing", `${reg}/icd/kubelet:gone`));
      const failed = await server.waitFor(
        "pods",
        (p) => status(p).containerStatuses?.[0]?.state?.waiting?.reason === "ErrImagePull",
        { namespace: "default", name: "missing", timeoutMs: 10_000 },
      );
      assertMatch(
        status(failed).containerStatuses?.[0]?.state?.waiting?.message ?? "",
        /not found/,
      );
    } finally {
      client.close();
      await server.close();
    }
  });

  criTest("the CRI client runs with only the socket and grpc-js's variables allowed", async () => {
    const dir = await Deno.makeTempDir({ prefix: "cri_permissions_" });
    try {
      const script = `${dir}/version.ts`;
      const client = new URL("../puller/cri/client.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { createCriClient } from ${JSON.stringify(client)};\n` +
          `const c = createCriClient(Deno.args[0]);\n` +
          `try { console.log((await c.version()).runtimeName); } finally { c.close(); }\n`,
      );
      const run = (flags: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-prompt",
            `--config=${new URL("../deno.json", import.meta.url).pathname}`,
            ...flags,
            script,
            env.socket,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
      const allowed = await run(criPermissionFlags(env.socket));
      assertEquals(
        [allowed.code, decoder.decode(allowed.stdout).trim()],
        [0, "containerd"],
        decoder.decode(allowed.stderr),
      );
      // Without the net grant for the socket the call is refused.
      const denied = await run(criPermissionFlags(env.socket).slice(1));
      assert(denied.code !== 0, "the client connected without --allow-net=unix:<socket>");
      assertMatch(decoder.decode(denied.stderr), /Requires net access to "unix:/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  criTest(
    "the daemon with --pull-strategy=cri pulls through containerd, creates no pods, and backs off a missing tag",
    async () => {
      const server = await startFakeApiServer({ nodes: ["node-1"] });
      const controller = new AbortController();
      let parts: DaemonParts | undefined;
      const missing = `${reg}/icd/busybox:no-such-tag`;
      const { config } = loadConfig([
        "--node-name=node-1",
        "--pod-namespace=image-cache-daemon",
        "--pull-strategy=cri",
        `--cri-socket=${env.socket}`,
        `--image=${env.image}`,
        `--image=${missing}`,
        "--pull-backoff-max=1s",
        "--metrics-bind-address=0",
        "--watch-argo-workflow-templates=false",
        "--watch-argo-cluster-workflow-templates=false",
        "--watch-argo-cron-workflows=false",
      ], () => undefined);
      const running = runDaemon(config, {
        kubeConfig: server.kubeConfig(),
        log: recordingLogger(),
        onStarted: (p) => parts = p,
      }, controller.signal);
      try {
        const state = (ref: string) => parts?.puller.status().find((s) => s.ref === ref);
        await waitFor(() => state(env.image)?.state === "present", { what: "image present" });
        assertMatch(state(env.image)!.digest ?? "", /^sha256:[0-9a-f]{64}$/);
        await waitFor(() => (state(missing)?.attempts ?? 0) >= 2, {
          what: "missing tag retried",
          timeoutMs: 15_000,
        });
        assertEquals(state(missing)!.lastErrorReason, "ErrImagePull");
        assertEquals(state(missing)!.permanent ?? false, false);
        await withClient(async (client) => {
          const image = await client.imageStatus(env.image);
          assert(image !== undefined, "containerd holds the image");
        });
        assertEquals(server.list("pods").length, 0, "CRI mode creates no pods");
      } finally {
        controller.abort();
        await running;
        await server.close();
      }
    },
  );

  criTest(
    "the daemon reads --image-pull-secret Secrets and its CRI pulls reach a registry that requires them",
    async () => {
      const ref = `${env.authRegistry}/icd/busybox:1`;
      const authorized = '/v2/icd/busybox/manifests/1 HTTP/1.1" 200 ';
      await removeImage(env.socket, ref);
      const server = await startFakeApiServer({ nodes: ["node-1"] });
      server.create("secrets", {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { namespace: "image-cache-daemon", name: "regcred" },
        type: "kubernetes.io/dockerconfigjson",
        data: {
          ".dockerconfigjson": btoa(JSON.stringify({
            auths: { [env.authRegistry]: { auth: btoa(`${env.user}:${env.pass}`) } },
          })),
        },
      });
      const controller = new AbortController();
      let parts: DaemonParts | undefined;
      const { config } = loadConfig([
        "--node-name=node-1",
        "--pod-namespace=image-cache-daemon",
        "--pull-strategy=cri",
        `--cri-socket=${env.socket}`,
        "--image-pull-secret=regcred",
        `--image=${ref}`,
        "--metrics-bind-address=0",
        "--watch-argo-workflow-templates=false",
        "--watch-argo-cluster-workflow-templates=false",
        "--watch-argo-cron-workflows=false",
      ], () => undefined);
      const before = await requestCount(env.authRegistryLog, authorized);
      const running = runDaemon(config, {
        kubeConfig: server.kubeConfig(),
        log: recordingLogger(),
        onStarted: (p) => parts = p,
      }, controller.signal);
      try {
        await waitFor(() => parts?.puller.status()[0]?.state === "present", {
          what: "pulled with the Secret's credentials",
          timeoutMs: 20_000,
        });
        assert(await requestCount(env.authRegistryLog, authorized) > before);
        assertEquals(server.requests.counts()["get secrets"], 1);
      } finally {
        controller.abort();
        await running;
        await server.close();
      }
    },
  );
}
