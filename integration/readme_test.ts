/** Keeps the README in step with the code, deno.json and .ci/run. */
import { assert, assertEquals } from "../testing/assert.ts";
import { FLAGS } from "../config/config.ts";
import type { FlagSpec } from "../config/flags.ts";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const ciRun = await Deno.readTextFile(new URL(".ci/run", root));
const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));

Deno.test("README's flag list names exactly the flags the daemon accepts, with their defaults", () => {
  const block = readme.split("<!-- flags:begin -->")[1].split("<!-- flags:end -->")[0];
  // One item per flag: "- `--name` (repeatable, default `x`, environment `Y`): help", wrapped
  // onto indented lines to fit 100 columns.
  const items = block.trim().split(/^- /m).filter((item) => item.trim() !== "").map((item) =>
    item.replace(/\n {2}/g, " ").trim()
  );
  const parsed = items.map((item) => {
    const m = item.match(/^(?:`-(\w)`, )?`--([a-z-]+)`(?: \(([^)]*)\))?: (.*)$/s);
    assert(m, `not a flag item: ${item}`);
    const notes = m[3]?.split(", ") ?? [];
    const value = (label: string) =>
      notes.find((n) => n.startsWith(`${label} `))?.slice(label.length + 1) ?? "";
    return {
      short: m[1],
      name: m[2],
      repeatable: notes.includes("repeatable"),
      default: value("default"),
      env: value("environment"),
      help: m[4],
    };
  });
  const hint = `the list should read:\n${FLAGS.map(flagItem).join("\n")}`;
  assertEquals(parsed.map((f) => f.name), FLAGS.map((f) => f.name), hint);
  for (const spec of FLAGS) {
    const flag = parsed.find((f) => f.name === spec.name)!;
    assertEquals(flag.short, spec.short, `short name of --${spec.name}; ${hint}`);
    assertEquals(flag.repeatable, spec.type === "strings", `--${spec.name} repeatable; ${hint}`);
    const expectedDefault = spec.default ? `\`${spec.default}\`` : "";
    assertEquals(flag.default, expectedDefault, `default of --${spec.name}; ${hint}`);
    assertEquals(flag.env, spec.env ? `\`${spec.env}\`` : "", `environment of --${spec.name}`);
    assertEquals(flag.help, spec.help, `meaning of --${spec.name}; ${hint}`);
  }
});

/** One flag as the README lists it, wrapped at 100 columns. */
function flagItem(spec: FlagSpec): string {
  const name = spec.short ? `\`-${spec.short}\`, \`--${spec.name}\`` : `\`--${spec.name}\``;
  const notes = [
    ...spec.type === "strings" ? ["repeatable"] : [],
    ...spec.default ? [`default \`${spec.default}\``] : [],
    ...spec.env ? [`environment \`${spec.env}\``] : [],
  ];
  const words = `- ${name}${notes.length ? ` (${notes.join(", ")})` : ""}: ${spec.help}`.split(" ");
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    const indent = lines.length > 0 ? "  " : "";
    if (line !== "" && `${indent}${line} ${word}`.length > 100) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push((lines.length > 0 ? "  " : "") + line);
  return lines.join("\n");
}

Deno.test("README's tables fit 100 columns", () => {
  const wide = readme.split("\n").filter((line) => line.startsWith("|") && line.length > 100);
  assertEquals(wide, []);
});

Deno.test("README's quickstart commands use the Deno version .ci/run pins and tasks that exist", () => {
  const pinned = ciRun.match(/DENO_VERSION=(\S+)/)![1];
  const commands = [...readme.matchAll(/npx -y deno@([\d.]+) task ([\w:-]+)/g)];
  assert(commands.length >= 2);
  for (const [, version, task] of commands) {
    assertEquals(version, pinned);
    assert(task in denoJson.tasks, `deno.json has no task ${task}`);
  }
  // The two commands are on the first screen (what, install, try it, where to go next), in one
  // block, before the reference starts.
  const next = readme.indexOf("\n## ", readme.indexOf("\n## Where to go next") + 1);
  assert(next > 0, "the README has a section after 'Where to go next'");
  const firstScreen = readme.slice(0, next);
  const quickstart = firstScreen.split("```sh").slice(1).map((block) => block.split("```")[0])
    .find((block) => block.includes("task demo"));
  assert(quickstart, "the first screen has no block with the demo command");
  assert(quickstart.includes(`npx -y deno@${pinned} task demo`));
  assert(quickstart.includes(`npx -y deno@${pinned} task test`));
  assert(firstScreen.split("\n").length <= 70, "the first screen is short");
});

Deno.test(".ci/run runs the README's test command", () => {
  assert(ciRun.includes("deno task test"));
  assert(readme.includes("npx -y deno@2.9.6 task test"));
  assert(ciRun.includes('echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"'));
});
