/** Keeps the README in step with the code, deno.json and .ci/run. */
import { assert, assertEquals } from "../testing/assert.ts";
import { FLAGS } from "../config/config.ts";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const ciRun = await Deno.readTextFile(new URL(".ci/run", root));
const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));

Deno.test("README's flag table lists exactly the flags the daemon accepts, with their defaults", () => {
  const table = readme.split("<!-- flags:begin -->")[1].split("<!-- flags:end -->")[0];
  const rows = table.trim().split("\n").slice(2);
  const documented = rows.map((row) => row.match(/`--([a-z-]+)`/)![1]);
  assertEquals(documented, FLAGS.map((f) => f.name));
  for (const spec of FLAGS) {
    const row = rows.find((r) => r.includes(`\`--${spec.name}\``))!;
    const cells = row.split("|").map((c) => c.trim());
    const expectedDefault = spec.default ? `\`${spec.default}\`` : "";
    assertEquals(cells[2], expectedDefault, `default of --${spec.name}`);
    assertEquals(cells[3], spec.env ? `\`${spec.env}\`` : "", `environment of --${spec.name}`);
    assertEquals(cells[4], spec.help, `meaning of --${spec.name}`);
  }
});

Deno.test("README's quickstart commands use the Deno version .ci/run pins and tasks that exist", () => {
  const pinned = ciRun.match(/DENO_VERSION=(\S+)/)![1];
  const commands = [...readme.matchAll(/npx -y deno@([\d.]+) task ([\w:-]+)/g)];
  assert(commands.length >= 2);
  for (const [, version, task] of commands) {
    assertEquals(version, pinned);
    assert(task in denoJson.tasks, `deno.json has no task ${task}`);
  }
  const quickstart = readme.split("```sh")[1].split("```")[0];
  assert(quickstart.includes(`npx -y deno@${pinned} task demo`));
  assert(quickstart.includes(`npx -y deno@${pinned} task test`));
});

Deno.test(".ci/run runs the README's test command", () => {
  assert(ciRun.includes("deno task test"));
  assert(readme.includes("npx -y deno@2.9.6 task test"));
  assert(ciRun.includes('echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"'));
});
