/**
 * The daemon as a process, under the production permission set (-P=daemon):
 * help, version and configuration errors.
 */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { runDaemonProcess } from "../testing/daemon_process.ts";
import { FLAGS } from "../config/config.ts";

Deno.test("main.ts --help lists every flag and exits 0 under the daemon permissions", async () => {
  const { code, stdout } = await runDaemonProcess(["--help"]);
  assertEquals(code, 0);
  for (const spec of FLAGS) {
    const name = spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
    assert(stdout.includes(name), `help lacks ${name}`);
  }
});

Deno.test("main.ts --version prints the version", async () => {
  const { code, stdout } = await runDaemonProcess(["--version"]);
  assertEquals(code, 0);
  assertMatch(stdout, /^image-cache-daemon \d+\.\d+\.\d+/);
});

Deno.test("main.ts exits 2 with a named-flag error and no stack trace on invalid values", async (t) => {
  const cases: [string[], string][] = [
    [
      ["--resync-period", "15 minutes"],
      '--resync-period "15 minutes": expected a Go duration such as 15m or 1h30m',
    ],
    [["--watch-configmaps=maybe"], '--watch-configmaps "maybe": expected true or false'],
    // Once `unknown command "maybe"`: the flag is named now.
    [["--watch-configmaps", "maybe"], '--watch-configmaps "maybe": is not true or false'],
    // Once accepted, and every pull timed out at once (the timer overflowed).
    [["--pull-timeout=1000h"], '--pull-timeout "1000h": must be at most 596h31m23.647s'],
    [["--resync-period=1ns"], '--resync-period "1ns": must be at least 1s or 0'],
    [["--bogus"], "Unknown flag --bogus"],
    [["--node-name=n"], "--pod-namespace is required"],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stderr } = await runDaemonProcess(args);
      assertEquals(code, 2);
      assert(stderr.includes(message), stderr);
      assert(!/\n\s+at /.test(stderr), `stack trace in: ${stderr}`);
    });
  }
});

Deno.test("images under the daemon's permissions names the way to read files", async () => {
  const { code, stderr } = await runDaemonProcess(["images", "-f", "integration/fixtures/argo"]);
  assertEquals(code, 1);
  assertMatch(stderr, /the daemon's permissions read no files; use `deno task images -f …`/);
});
