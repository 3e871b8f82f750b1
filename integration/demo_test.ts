/** `deno task demo`, the README's first command, keeps working. */
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";

Deno.test("deno task demo brings every fake node to every desired image and exits 0", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "demo/demo.ts", "--timeout=60"],
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
});
