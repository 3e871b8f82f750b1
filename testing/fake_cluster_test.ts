import { freePort } from "./daemon_process.ts";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { waitFor } from "./wait.ts";

/** Runs `fake_cluster.ts` until `fn` returns, then stops it with SIGTERM. */
async function withFakeCluster(
  fn: (printed: string, kubeconfig: string) => Promise<void>,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fake-cluster-" });
  const kubeconfig = `${dir}/kubeconfig`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fake_cluster.ts", import.meta.url).pathname,
      "--kubeconfig",
      kubeconfig,
      "--nodes",
      "2",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream());
  let printed = "";
  const reading = (async () => {
    for await (const chunk of output) printed += chunk;
  })();
  try {
    await waitFor(() => printed.includes("Press Ctrl-C"), {
      timeoutMs: 20_000,
      what: "startup banner",
    });
    await fn(printed, kubeconfig);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
    assertEquals(status.code, 0);
  }
  return printed;
}

Deno.test("fake-cluster writes a kubeconfig that answers the daemon's client, and stops on SIGTERM", async () => {
  const printed = await withFakeCluster(async (_, kubeconfig) => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const nodes = await core.listNode();
    assertEquals(nodes.items.map((n) => n.metadata!.name), ["node-1", "node-2"]);
    const pods = await core.listNamespacedPod({ namespace: "image-cache-daemon" });
    assertEquals(pods.items.map((p) => p.metadata!.name), [
      "image-cache-daemon-node-1",
      "image-cache-daemon-node-2",
    ]);
  });
  assertMatch(printed, /Fake cluster stopped/);
});

async function listening(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line contains `needle` (from /proc). */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(needle)) found.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

Deno.test("fake-cluster's daemon command runs as printed through npx, and stopping npx stops the daemon and frees its port", async () => {
  await withFakeCluster(async (printed, kubeconfig) => {
    // The printed command, joined across its `\` line breaks, exactly; only
    // the metrics port is moved off the shared default 8080 for the test.
    const lines = printed.split("\n");
    const start = lines.findIndex((l) => l.trimStart().startsWith("npx -y deno@"));
    assert(start !== -1, `no npx command in:\n${printed}`);
    let command = "";
    for (let i = start; i < lines.length; i++) {
      command += lines[i].trim().replace(/\\$/, "") + " ";
      if (!lines[i].trimEnd().endsWith("\\")) break;
    }
    assertMatch(command, new RegExp(`^npx -y deno@${Deno.version.deno} run -P=daemon `));
    const port = freePort();
    const daemon = new Deno.Command("bash", {
      // `exec`: the child is npx itself, as when a user runs the line.
      args: ["-c", `exec ${command} --metrics-bind-address=127.0.0.1:${port}`],
      cwd: "/",
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    // The daemon writes to this pipe too: it ends only when every process
    // holding it, the daemon included, has exited.
    const reading = (async () => {
      for await (const chunk of daemon.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    try {
      await waitFor(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        await response?.body?.cancel();
        return response?.ok;
      }, { timeoutMs: 60_000, intervalMs: 200, what: "the daemon ready" });
      const daemonPids = processesWith(`main.ts --kubeconfig ${kubeconfig}`);
      assert(daemonPids.length > 0, "the daemon process is visible");
      daemon.kill("SIGTERM"); // the npx process
      await daemon.status;
      await waitFor(() => processesWith(`main.ts --kubeconfig ${kubeconfig}`).length === 0, {
        timeoutMs: 20_000,
        what: "the daemon to exit once npx has",
      });
      await reading;
      assertMatch(stderr, /Parent process exited/);
      assertMatch(stderr, /Shutting down/);
      assertEquals(await listening(port), false, "the port is free");
    } finally {
      for (const pid of processesWith(`main.ts --kubeconfig ${kubeconfig}`)) {
        Deno.kill(pid, "SIGKILL");
      }
    }
  });
});
