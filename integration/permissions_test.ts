/**
 * The Deno permission set is the daemon's security boundary. These tests run
 * the entry point, and a probe that loads what the daemon loads, as separate
 * processes under exactly `deno run -P=daemon` (deno.json), both from source
 * and bundled as the shipped artifact is (`deno task build`), and check what the set grants and what
 * it refuses. Refused network attempts never leave the machine: the probe
 * only tries a connection Deno has already said it would refuse.
 */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { BUNDLE_ENTRY, runDaemonProcess } from "../testing/daemon_process.ts";
import { build } from "../build/bundle.ts";

const ROOT = new URL("../", import.meta.url);
const PROBE = "integration/fixtures/permission_probe.ts";
// A bundle outside the repository must still find the permission set.
const CONFIG = `--config=${new URL("deno.json", ROOT).pathname}`;

/** Why a run of the entry point most likely failed under the set. */
const SHIM_HINT = "\nHint: main.ts must import ./permissions/install_process_env.ts first, " +
  "before any npm module reads process.env (docs/PERMISSIONS.md)";

/** Bundles `entry` into `dir` exactly as the shipped artifact is built. */
async function bundle(entry: string, dir: string, name: string): Promise<void> {
  await build({ entry: [entry, name], outdir: dir });
}

/** Copies the shipped artifact (entry, chunks) into `dir`. */
async function copyDist(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(new URL("dist/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".js")) {
      await Deno.copyFile(new URL(`dist/${entry.name}`, ROOT), `${dir}/${entry.name}`);
    }
  }
}

interface Refusal {
  name: string;
  message: string;
}

// deno-lint-ignore no-explicit-any -- the probe's JSON report, checked field by field
type ProbeReport = Record<string, any>;

async function probe(entry: string, denoFlags: string[] = [], args: string[] = []) {
  const out = await runDaemonProcess(args, {
    entry,
    denoFlags,
    env: { NODE_NAME: "node-1", KUBECONFIG: "/nonexistent/kubeconfig" },
  });
  assertEquals(out.code, 0, out.stderr);
  return JSON.parse(out.stdout) as ProbeReport;
}

function assertRefused(report: ProbeReport, what: string, kind: string, target: string) {
  const refusal: Refusal = report.refused[what];
  assert(refusal !== "granted" as unknown, `${what} was granted`);
  assertEquals(refusal.name, "NotCapable", `${what}: ${JSON.stringify(refusal)}`);
  assertEquals(
    refusal.message,
    target === ""
      ? `Requires ${kind} access, run again with the --allow-${kind} flag`
      : `Requires ${kind} access to "${target}", run again with the --allow-${kind} flag`,
  );
}

function assertBoundary(report: ProbeReport) {
  assertEquals(report.loaded, true);
  assertEquals(report.allowed, {
    apiServer: "granted",
    loopback: "granted",
    metricsListener: "granted",
    serviceAccount: "granted",
    nodeName: "granted",
    extraRead: "none",
  });
  assertRefused(report, "otherHost", "net", "example.invalid:443");
  assertRefused(report, "otherIp", "net", "10.255.255.1:443");
  assertRefused(report, "otherPortOfApiServer", "net", "kubernetes.default.svc:6443");
  // Through client-node, node:net's lookup reports Deno's refusal as EPERM
  // before any DNS query.
  assertEquals(report.refused.apiCallToOtherHost, {
    name: "Error",
    message: "getaddrinfo EPERM example.invalid",
  });
  assertRefused(report, "readPasswd", "read", "/etc/passwd");
  assertRefused(report, "readKubeconfigInHome", "read", "/root/.kube/config");
  assertRefused(report, "write", "write", "/tmp/image-cache-daemon-probe");
  assertRefused(report, "run", "run", "true");
  assertRefused(report, "ffi", "ffi", "libc.so.6");
  assertRefused(report, "sys", "sys", "hostname");
  assertRefused(report, "envHome", "env", "HOME");
  assertRefused(report, "envAll", "env", "");
  // npm code sees only the allowed variables that are set.
  assertEquals(report.processEnv, { HOME: null, keys: ["NODE_NAME", "KUBECONFIG"] });
}

Deno.test("the daemon permission set", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "permissions_test_" });
  try {
    const mainBundle = `${dir}/image-cache-daemon.js`;
    const probeBundle = `${dir}/probe/permission_probe.js`;
    await bundle(PROBE, `${dir}/probe`, "permission_probe");

    await t.step("runs main.ts --help", async () => {
      const out = await runDaemonProcess(["--help"], { entry: "main.ts" });
      assertEquals(out.code, 0, out.stderr + SHIM_HINT);
      assertMatch(out.stdout, /^Usage:$/m);
    });

    await t.step("runs the shipped bundle's --help, so what ships is what was tested", async () => {
      const out = await runDaemonProcess(["--help"], { entry: BUNDLE_ENTRY });
      assertEquals(out.code, 0, out.stderr + SHIM_HINT);
      assertMatch(out.stdout, /^Usage:$/m);
    });

    await t.step(
      "runs the shipped bundle copied outside the repository, given --config",
      async () => {
        await copyDist(dir);
        const out = await runDaemonProcess(["--help"], { entry: mainBundle, denoFlags: [CONFIG] });
        assertEquals(out.code, 0, out.stderr + SHIM_HINT);
        assertMatch(out.stdout, /^Usage:$/m);
      },
    );

    await t.step(
      "loads the Kubernetes client and refuses every other host, file, process, library and variable",
      async () => assertBoundary(await probe(PROBE)),
    );

    await t.step("refuses the same from the bundle", async () => {
      assertBoundary(await probe(probeBundle, [CONFIG]));
    });

    await t.step(
      "takes an extra --allow-read in place of the set's read list, keeping the rest",
      async () => {
        const kubeconfig = `${dir}/kubeconfig`;
        const report = await probe(PROBE, [`--allow-read=${kubeconfig}`], [kubeconfig]);
        assertEquals(report.allowed.extraRead, "granted");
        assertEquals(report.allowed.serviceAccount, "prompt");
        assertEquals(report.allowed.apiServer, "granted");
        assertRefused(report, "readPasswd", "read", "/etc/passwd");
        assertRefused(report, "run", "run", "true");
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
