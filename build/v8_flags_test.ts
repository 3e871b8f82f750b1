import { assertEquals } from "../testing/assert.ts";
import { SHIPPED_V8_FLAGS } from "./v8_flags.ts";

Deno.test("deno task start and deno task compile pass the shipped V8 flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const flags = `--v8-flags=${SHIPPED_V8_FLAGS.join(",")}`;
  for (const task of ["start", "compile"]) {
    const command: string = config.tasks[task].command;
    assertEquals(command.split(" ").filter((w) => w.startsWith("--v8-flags=")), [flags], task);
    assertEquals(config.tasks[task].dependencies, ["build"], task);
  }
});
