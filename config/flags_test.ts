import { assertEquals, assertThrows } from "../testing/assert.ts";
import { type FlagSpec, formatHelp, parseBool, parseFlags } from "./flags.ts";

const SPECS: FlagSpec[] = [
  { name: "image", type: "strings", help: "images" },
  { name: "watch", type: "bool", default: "true", help: "watch" },
  { name: "name", type: "string", help: "name" },
  { name: "help", short: "h", type: "bool", help: "help" },
];

Deno.test("parseFlags() accepts pflag's forms", async (t) => {
  const cases: [string[], Record<string, string | string[]>, string[]][] = [
    [["--name=x"], { name: "x" }, []],
    [["--name", "x"], { name: "x" }, []],
    [["--name="], { name: "" }, []],
    [["--watch"], { watch: "true" }, []],
    [["--watch=false"], { watch: "false" }, []],
    [["--watch=0"], { watch: "false" }, []],
    [["--watch=T"], { watch: "true" }, []],
    [["--watch", "images"], { watch: "true" }, ["images"]],
    [["--image", "a", "--image=b"], { image: ["a", "b"] }, []],
    [["-h"], { help: "true" }, []],
    [["cmd", "--", "--name"], {}, ["cmd", "--name"]],
  ];
  for (const [args, flags, positionals] of cases) {
    await t.step(args.join(" "), () => {
      assertEquals(parseFlags(args, SPECS), { flags, positionals });
    });
  }
});

Deno.test("parseFlags() rejects unknown flags, missing values and bad booleans naming the flag", async (t) => {
  const cases: [string[], string][] = [
    [["--nope"], "Unknown flag --nope"],
    [["-x"], "Unknown flag -x"],
    [["--name"], "--name: missing value"],
    [["--watch=maybe"], '--watch "maybe": expected true or false'],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assertThrows(() => parseFlags(args, SPECS), TypeError, message);
    });
  }
});

Deno.test("parseFlags() with strictBooleans names the boolean flag a bare word follows", async (t) => {
  const cases: [string[], string][] = [
    [
      ["--watch", "maybe"],
      '--watch "maybe": is not true or false; a boolean flag takes its value after "=", such as --watch=false',
    ],
    [["--watch", "false"], '--watch "false": a boolean flag takes its value after "="'],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), () => {
      assertThrows(() => parseFlags(args, SPECS, { strictBooleans: true }), TypeError, message);
    });
  }
  assertEquals(parseFlags(["--watch", "--name=x"], SPECS, { strictBooleans: true }).flags, {
    watch: "true",
    name: "x",
  });
});

Deno.test("parseBool() follows Go's strconv.ParseBool", () => {
  for (const v of ["1", "t", "T", "TRUE", "true", "True"]) assertEquals(parseBool(v), true);
  for (const v of ["0", "f", "F", "FALSE", "false", "False"]) assertEquals(parseBool(v), false);
  for (const v of ["yes", "", "tRuE"]) assertEquals(parseBool(v), undefined);
});

Deno.test("formatHelp() lists every flag with its default and environment variable", () => {
  const text = formatHelp("usage", [
    ...SPECS,
    { name: "node-name", type: "string", env: "NODE_NAME", default: "", help: "node" },
  ]);
  for (const name of ["--image", "--watch", "--name", "-h, --help", "--node-name"]) {
    assertEquals(text.includes(name), true, name);
  }
  assertEquals(text.includes("(default true)"), true);
  assertEquals(text.includes("[env NODE_NAME]"), true);
});
