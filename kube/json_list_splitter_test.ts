import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { JsonListSplitter } from "./json_list_splitter.ts";

const encoder = new TextEncoder();

/** Feeds `bytes` cut at `cuts` and returns the parsed elements and the rest. */
function split(
  bytes: Uint8Array,
  cuts: readonly number[] = [],
  field?: string,
  asBytes = false,
): { items: unknown[]; rest: Record<string, unknown> } {
  const items: unknown[] = [];
  const decoder = new TextDecoder();
  const splitter = new JsonListSplitter((text) => items.push(JSON.parse(text)), {
    field,
    // The view is valid only during the call: decoded at once.
    onItemBytes: asBytes ? (b) => items.push(JSON.parse(decoder.decode(b))) : undefined,
  });
  let at = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (cut <= at || cut >= bytes.length) continue;
    splitter.push(bytes.subarray(at, cut));
    at = cut;
  }
  splitter.push(bytes.subarray(at));
  return { items, rest: JSON.parse(splitter.end()) };
}

/** What JSON.parse says the splitter must produce. */
function expected(text: string, field = "items") {
  const whole = JSON.parse(text);
  const items = Array.isArray(whole[field]) ? whole[field] : [];
  const rest = { ...whole };
  if (Array.isArray(whole[field])) rest[field] = [];
  return { items, rest };
}

/** Strings rich in what a splitter can get wrong: quotes, backslashes, brackets, non-ASCII. */
const hostileString = fc.string({
  unit: fc.constantFrom(
    '"',
    "\\",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " ",
    "\n",
    "\u0000",
    "\u2028",
    "é",
    "€",
    "😀",
    "\ud800",
    "a",
    "items",
    '\\"',
  ),
  maxLength: 12,
});

const leaf = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);

const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(hostileString, tie("value"), { maxKeys: 4 }),
  ),
})).value;

/** A list-shaped object: metadata and other fields around an items array, in any order. */
const listObject = fc.record({
  before: fc.dictionary(hostileString.filter((k) => k !== "items"), value, { maxKeys: 3 }),
  items: fc.array(value, { maxLength: 8 }),
  after: fc.dictionary(hostileString.filter((k) => k !== "items"), value, { maxKeys: 3 }),
  metadata: fc.record({ resourceVersion: fc.string(), continue: fc.string() }),
}).map(({ before, items, after, metadata }) => ({
  ...before,
  metadata,
  items,
  ...after,
}));

/** Serialised compact or indented, with the cut points of a chunked arrival. */
const chunkedList = listObject.chain((obj) =>
  fc.constantFrom(undefined, 1, "\t").chain((indent) => {
    const text = JSON.stringify(obj, null, indent);
    const bytes = encoder.encode(text);
    return fc.record({
      text: fc.constant(text),
      bytes: fc.constant(bytes),
      cuts: fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 20 }),
    });
  })
);

Deno.test("JsonListSplitter yields what JSON.parse yields, whatever the chunking", () => {
  fc.assert(
    fc.property(chunkedList, ({ text, bytes, cuts }) => {
      assertEquals(split(bytes, cuts), expected(text));
    }),
    { numRuns: 500 },
  );
});

Deno.test("JsonListSplitter hands over each element's bytes instead when asked, whatever the chunking", () => {
  fc.assert(
    fc.property(chunkedList, ({ text, bytes, cuts }) => {
      assertEquals(split(bytes, cuts, undefined, true), expected(text));
    }),
    { numRuns: 300 },
  );
});

Deno.test("JsonListSplitter handles a chunk boundary at every byte", () => {
  const text = JSON.stringify({
    kind: "List",
    metadata: { resourceVersion: "7", continue: 'a"]},[{' },
    items: [
      { s: 'quote \\" and \\\\ then ]} ,[{ "' },
      { u: "é€😀 \ud83d\ude00", esc: "\\u005d" },
      [1, [2, { x: "]" }]],
      "plain",
      -1.5e-7,
      null,
      true,
    ],
    "\\": { items: ["not the top-level field"] },
  });
  const bytes = encoder.encode(text);
  for (let cut = 0; cut <= bytes.length; cut++) {
    assertEquals(split(bytes, [cut]), expected(text), `cut at byte ${cut}`);
  }
  // One byte at a time.
  assertEquals(split(bytes, [...bytes.keys()]), expected(text));
  assertEquals(split(bytes, [...bytes.keys()], undefined, true), expected(text));
});

Deno.test("JsonListSplitter emits each element before the next one has arrived", () => {
  const seen: unknown[] = [];
  const splitter = new JsonListSplitter((text) => seen.push(JSON.parse(text)));
  splitter.push(encoder.encode('{"items":[{"a":1},'));
  assertEquals(seen, [{ a: 1 }]);
  splitter.push(encoder.encode('{"b":2}'));
  // Not yet: only the comma or the bracket after it shows it is complete.
  assertEquals(seen, [{ a: 1 }]);
  splitter.push(encoder.encode('],"metadata":{"resourceVersion":"5"}}'));
  assertEquals(seen, [{ a: 1 }, { b: 2 }]);
  assertEquals(JSON.parse(splitter.end()), { items: [], metadata: { resourceVersion: "5" } });
});

Deno.test("JsonListSplitter finds the field however its name is escaped, and only at the top level", () => {
  assertEquals(
    split(encoder.encode('{"\\u0069tems":[1,2],"x":{"items":[3]}}')),
    { items: [1, 2], rest: { items: [], x: { items: [3] } } },
  );
  // A value "items" is not the key.
  assertEquals(split(encoder.encode('{"a":"items","b":[1]}')), {
    items: [],
    rest: { a: "items", b: [1] },
  });
  assertEquals(split(encoder.encode('{"items":null}')), { items: [], rest: { items: null } });
  assertEquals(split(encoder.encode('{"rows":[{"a":1}]}'), [], "rows"), {
    items: [{ a: 1 }],
    rest: { rows: [] },
  });
});

Deno.test("JsonListSplitter rejects input JSON.parse rejects", () => {
  const valid = fc.sample(chunkedList, { numRuns: 200, seed: 42 });
  fc.assert(
    fc.property(
      fc.constantFrom(...valid),
      fc.nat(),
      fc.constantFrom("", "{", "}", "[", "]", ",", ":", '"', "\\", "x", "1"),
      ({ text }, position, insert) => {
        const at = position % (text.length + 1);
        // Replace one UTF-16 unit (or drop it) at `at`. What travels is UTF-8,
        // where half a surrogate pair becomes U+FFFD: compare with that text.
        const broken = new TextDecoder().decode(
          encoder.encode(text.slice(0, at) + insert + text.slice(at + 1)),
        );
        let parsed: unknown;
        try {
          parsed = JSON.parse(broken);
        } catch {
          assertThrows(() => split(encoder.encode(broken)), SyntaxError);
          return;
        }
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
          assertThrows(() => split(encoder.encode(broken)), SyntaxError);
        } else if (broken.split('"items":').length > 2) {
          // A second "items" key (an edit can make one): JSON.parse keeps the
          // last, a streaming reader has handed out the first; the splitter
          // refuses such a list rather than guess, when the duplicate is at
          // the top level.
          try {
            assertEquals(split(encoder.encode(broken)), expected(broken));
          } catch (error) {
            if (!(error instanceof SyntaxError) || !/Duplicate "items"/.test(error.message)) {
              throw error;
            }
          }
        } else {
          assertEquals(split(encoder.encode(broken)), expected(broken));
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("JsonListSplitter rejects truncated input, trailing data and missing elements", () => {
  for (
    const bad of [
      "",
      "[1,2]",
      '{"items":[1,2]',
      '{"items":[1,,2]}',
      '{"items":[1,]}',
      '{"items":[,1]}',
      '{"items":[1}',
      '{"items":[1]} {}',
      '{"items":[1],"items":[2]}',
      '{"items":["unterminated]}',
    ]
  ) {
    let threw: unknown;
    try {
      split(encoder.encode(bad));
    } catch (error) {
      threw = error;
    }
    assert(threw instanceof SyntaxError, `accepted ${JSON.stringify(bad)}`);
  }
});

Deno.test("JsonListSplitter keeps at most one element: a longer one is an error", () => {
  const splitter = new JsonListSplitter(() => {}, { maxItemBytes: 64 });
  splitter.push(encoder.encode('{"items":[' + JSON.stringify("x".repeat(40)) + ","));
  const error = assertThrows(
    () => splitter.push(encoder.encode(JSON.stringify("y".repeat(70)))),
    SyntaxError,
  );
  assert(error.message.includes("longer than 64 bytes"), error.message);
  const rest = new JsonListSplitter(() => {}, { maxRestBytes: 32 });
  assertThrows(
    () => rest.push(encoder.encode(`{"metadata":"${"m".repeat(40)}","items":[]}`)),
    SyntaxError,
  );
});

Deno.test("JsonListSplitter tells what comes before the array as the array opens, before any element, however the bytes are cut", () => {
  const text =
    '{"kind":"L","metadata":{"resourceVersion":"9","continue":"t\\"1"},"items":[{"a":1},{"b":"é"}]}';
  const bytes = new TextEncoder().encode(text);
  for (let cut = 1; cut < bytes.length; cut++) {
    const seen: string[] = [];
    const splitter = new JsonListSplitter((item) => seen.push(`item ${item}`), {
      onArrayStart: (before) => seen.push(`before ${before}`),
    });
    splitter.push(bytes.subarray(0, cut));
    splitter.push(bytes.subarray(cut));
    splitter.end();
    assertEquals(seen, [
      'before {"kind":"L","metadata":{"resourceVersion":"9","continue":"t\\"1"},"items":[]}',
      'item {"a":1}',
      'item {"b":"é"}',
    ], `cut at ${cut}`);
  }
});
