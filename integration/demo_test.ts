/** `deno task demo`, the README's first command, keeps working. */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";

async function demo(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "demo/demo.ts", "--timeout=60", ...args],
    cwd: new URL("../", import.meta.url),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, text + new TextDecoder().decode(out.stderr));
  assertMatch(text, /Every node holds all 10 desired images/);
  assertMatch(text, /Pull pods left behind: 0/);
  for (const node of ["node-1", "node-2", "node-3"]) {
    assertMatch(text, new RegExp(`^${node}\\s+10/10\\s+\\d+\\s+0$`, "m"));
  }
  // The bad ConfigMap is reported once, not once per node.
  assertEquals(text.match(/^ {2}ConfigMap team-x\/typo:/gm)?.length, 1);
  assert(!text.includes("Uncaught"));
  return text;
}

Deno.test("deno task demo shows the split: one aggregator publishes, one node daemon per node pulls, all exit 0", async () => {
  const text = await demo([]);
  assertMatch(text, /Layout: split/);
  assertMatch(text, /published set: generation \d+, 10 images in 1 ConfigMap\(s\)/);
  assertMatch(text, /^aggregator exit 0$/m);
});

Deno.test("deno task demo --layout=single runs one --role=all daemon per node as before", async () => {
  const text = await demo(["--layout=single"]);
  assertMatch(text, /Layout: single/);
  assert(!text.includes("published set"));
});
