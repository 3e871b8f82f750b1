import { assertEquals, assertMatch } from "../testing/assert.ts";
import { createLogger, recordingLogger } from "./logger.ts";

const fixed = () => new Date("2026-01-02T03:04:05.000Z");

Deno.test("createLogger() writes JSON lines with ts, level, msg and fields", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l), now: fixed });
  log.info("Pull pod created", { image: "alpine", node: "n1", skipped: undefined });
  assertEquals(JSON.parse(lines[0]), {
    ts: "2026-01-02T03:04:05.000Z",
    level: "info",
    msg: "Pull pod created",
    image: "alpine",
    node: "n1",
  });
});

Deno.test("createLogger() drops lines below the level", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "warn", write: (l) => lines.push(l) });
  log.debug("a");
  log.info("b");
  log.warn("c");
  log.error("d");
  assertEquals(lines.map((l) => JSON.parse(l).msg), ["c", "d"]);
});

Deno.test("createLogger() text format is readable and keeps fields", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "text", write: (l) => lines.push(l), now: fixed });
  log.warn("Pull failed", { image: "alpine", attempts: 3 });
  assertEquals(lines[0], '2026-01-02T03:04:05.000Z WARN  Pull failed image="alpine" attempts=3');
});

Deno.test("Logger.with() adds fields to every line and errors keep their cause", () => {
  const log = recordingLogger();
  const child = log.with({ node: "n1" });
  child.error("Watch failed", { error: new Error("outer", { cause: new Error("inner") }) });
  assertEquals(log.lines[0].node, "n1");
  assertMatch(String(log.lines[0].error), /outer: inner/);
});
