import fc from "fast-check";
import { parse } from "yaml";
import { assert, assertEquals, assertMatch, assertThrows } from "../testing/assert.ts";
import {
  DEFAULT_KEY,
  imagesFromConfigMap,
  KEY_ANNOTATION,
  MAX_VALUE_LENGTH,
  MAX_YAML_DEPTH,
  MAX_YAML_TOKENS,
} from "./configmap_images.ts";
import { ObjectLimitError } from "./object_limit_error.ts";
import { normalizeReference, tryNormalizeReference } from "../images/reference.ts";

function configMap(
  data: Record<string, unknown> | undefined,
  annotations?: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "base", namespace: "platform", annotations },
    data,
  };
}

Deno.test("imagesFromConfigMap() reads JSON arrays and YAML lists", async (t) => {
  const cases: { name: string; value: string; images: string[] }[] = [
    {
      name: "JSON array",
      value: '["alpine:3.20", "busybox:1.36"]',
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "JSON array over several lines",
      value: '[\n  "alpine:3.20",\n  "quay.io/prometheus/node-exporter:v1.8.1"\n]\n',
      images: ["alpine:3.20", "quay.io/prometheus/node-exporter:v1.8.1"],
    },
    {
      name: "YAML block list",
      value: "- alpine:3.20\n- busybox:1.36\n",
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "YAML block list with comments, blank lines and CRLF",
      value: "# base\r\n- alpine:3.20\r\n\r\n- busybox:1.36 # pinned later\r\n",
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "YAML flow list",
      value: "[alpine:3.20, busybox:1.36]",
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "YAML flow list with a trailing comma",
      value: "[alpine:3.20,]",
      images: ["alpine:3.20"],
    },
    {
      name: "indented YAML block list",
      value: "  - alpine:3.20\n  - busybox:1.36\n",
      images: ["alpine:3.20", "busybox:1.36"],
    },
    {
      name: "quoted YAML items",
      value: `- "alpine:3.20"\n- 'ubuntu:24.04'\n`,
      images: ["alpine:3.20", "ubuntu:24.04"],
    },
    {
      name: "digests and registry ports",
      value:
        "- localhost:5000/app@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097\n- registry.example.com:8443/team/app:v1+build.7\n",
      images: [
        "localhost:5000/app@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097",
        "registry.example.com:8443/team/app:v1+build.7",
      ],
    },
    {
      name: "strings that are not references are returned for the dedupe map to reject",
      value: '["", "Alpine", "{{ .Values.image }}"]',
      images: ["", "Alpine", "{{ .Values.image }}"],
    },
    { name: "empty JSON array", value: "[]", images: [] },
    { name: "empty YAML flow list", value: "[ ]", images: [] },
    { name: "empty value", value: "", images: [] },
    { name: "only white space and comments", value: "\n  # nothing yet\n", images: [] },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(imagesFromConfigMap(configMap({ images: c.value })), {
        key: DEFAULT_KEY,
        images: c.images,
      });
    });
  }
});

Deno.test("imagesFromConfigMap() reads the key the annotation names", async (t) => {
  await t.step("annotated key", () => {
    const cm = configMap({ images: "- not-me:1", "list.json": '["alpine:3.20"]' }, {
      [KEY_ANNOTATION]: "list.json",
    });
    assertEquals(imagesFromConfigMap(cm), { key: "list.json", images: ["alpine:3.20"] });
  });
  await t.step("blank annotation falls back to the default key", () => {
    const cm = configMap({ images: "- alpine:3.20" }, { [KEY_ANNOTATION]: " " });
    assertEquals(imagesFromConfigMap(cm), { key: "images", images: ["alpine:3.20"] });
  });
  await t.step("annotated key missing", () => {
    const cm = configMap({ images: "- alpine:3.20" }, { [KEY_ANNOTATION]: "other" });
    assertThrows(
      () => imagesFromConfigMap(cm),
      TypeError,
      'ConfigMap "platform/base" key "other" is missing',
    );
  });
});

Deno.test("imagesFromConfigMap() rejects bad data with a specific message", async (t) => {
  const where = 'ConfigMap "platform/base" key "images"';
  const cases: { name: string; cm: unknown; message: string }[] = [
    {
      name: "invalid YAML",
      cm: configMap({ images: "- alpine\n- [busybox" }),
      message: `${where}: invalid YAML: `,
    },
    {
      name: "invalid JSON that is not YAML either",
      cm: configMap({ images: '["alpine", "busybox"' }),
      message: `${where}: invalid YAML: Flow sequence`,
    },
    {
      name: "a mapping instead of a list",
      cm: configMap({ images: "alpine: 3.20\nbusybox: 1.36\n" }),
      message: `${where}: expected a list of strings, got an object`,
    },
    {
      name: "a single string",
      cm: configMap({ images: "alpine:3.20" }),
      message: `${where}: expected a list of strings, got a string`,
    },
    {
      name: "a JSON object",
      cm: configMap({ images: '{"images": ["alpine"]}' }),
      message: `${where}: expected a list of strings, got an object`,
    },
    {
      name: "a number item",
      cm: configMap({ images: "- alpine:3.20\n- busybox:1.36\n- 3.19\n" }),
      message: `${where}: item 3 is a number, expected a string`,
    },
    {
      name: "a boolean item",
      cm: configMap({ images: "[alpine, true]" }),
      message: `${where}: item 2 is a boolean, expected a string`,
    },
    {
      name: "an empty item",
      cm: configMap({ images: "- alpine\n-\n" }),
      message: `${where}: item 2 is null, expected a string`,
    },
    {
      name: "a mapping item",
      cm: configMap({ images: "- name: alpine\n  tag: 3.20\n" }),
      message: `${where}: item 1 is an object, expected a string`,
    },
    {
      name: "a nested list item",
      cm: configMap({ images: '[["alpine"]]' }),
      message: `${where}: item 1 is a list, expected a string`,
    },
    {
      name: "several YAML documents",
      cm: configMap({ images: "- alpine\n---\n- busybox\n" }),
      message: `${where}: invalid YAML: 2 documents, expected one list`,
    },
    {
      name: "binary-looking data",
      cm: configMap({ images: "\u0000\u0001\u0002\uFFFD\uFFFDPK\u0003\u0004" }),
      message: `${where}: `,
    },
    {
      name: "a non-string value",
      cm: configMap({ images: ["alpine"] }),
      message: `${where}: expected a string value, got a list`,
    },
    { name: "the key missing", cm: configMap({ other: "[]" }), message: `${where} is missing` },
    { name: "no data at all", cm: configMap(undefined), message: `${where} is missing` },
    {
      name: "the list in binaryData",
      cm: { ...configMap(undefined), binaryData: { images: "WyJhbHBpbmUiXQ==" } },
      message: `${where} is missing from data (binaryData is not read)`,
    },
    {
      name: "not an object",
      cm: "ConfigMap",
      message: 'ConfigMap "" key "images" is missing',
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertThrows(() => imagesFromConfigMap(c.cm), TypeError, c.message);
    });
  }
});

Deno.test("imagesFromConfigMap() rejects values past a limit whole, naming the limit", async (t) => {
  const where = 'ConfigMap "platform/base" key "images"';
  const cases: { name: string; cm: unknown; limit: string; message: RegExp }[] = [
    {
      name: "aliases expanding without bound",
      cm: configMap({
        images:
          "- &a [x, x, x, x, x, x, x, x, x, x]\n- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
          "- &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n- [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
      }),
      limit: "MAX_ALIASES",
      message: /: YAML aliases expand too far: .* \(limit MAX_ALIASES = 100\)$/,
    },
    // Each of these took seconds in the YAML parser before it was bounded
    // (a 1 MiB block list of maps over 5 s), or ended in a stack overflow.
    {
      name: "YAML longer than the parser may read",
      cm: configMap({ images: "- name: x\n  image: alpine:3\n".repeat(30_000) }),
      limit: "MAX_YAML_TOKENS",
      message: /: YAML of more than 16384 tokens .* \(limit MAX_YAML_TOKENS = 16384\)$/,
    },
    {
      name: "100,000 YAML documents",
      cm: configMap({ images: "---\n".repeat(100_000) }),
      limit: "MAX_YAML_TOKENS",
      message: /\(limit MAX_YAML_TOKENS = 16384\)$/,
    },
    {
      name: "16,000 unclosed flow lists",
      cm: configMap({ images: "[".repeat(16_000) }),
      limit: "MAX_YAML_DEPTH",
      message: /: YAML nests deeper than 64 levels \(limit MAX_YAML_DEPTH = 64\)$/,
    },
    {
      name: "flow lists nested 7,000 deep around an item",
      cm: configMap({ images: "[".repeat(7_000) + "x" + "]".repeat(7_000) + " #" }),
      limit: "MAX_YAML_DEPTH",
      message: /\(limit MAX_YAML_DEPTH = 64\)$/,
    },
    {
      name: "flow maps nested 3,000 deep",
      cm: configMap({ images: "- " + "{a: ".repeat(3_000) }),
      limit: "MAX_YAML_DEPTH",
      message: /\(limit MAX_YAML_DEPTH = 64\)$/,
    },
    {
      name: "block lists nested 6,000 deep on one line",
      cm: configMap({ images: "- ".repeat(6_000) + "x" }),
      limit: "MAX_YAML_DEPTH",
      message: /\(limit MAX_YAML_DEPTH = 64\)$/,
    },
    {
      name: "block maps nested 180 deep",
      cm: configMap({
        images: Array.from({ length: 180 }, (_, i) => " ".repeat(i) + "a:").join("\n"),
      }),
      limit: "MAX_YAML_DEPTH",
      message: /\(limit MAX_YAML_DEPTH = 64\)$/,
    },
    {
      name: "a value over the size limit",
      cm: configMap({ images: "- alpine\n".repeat(Math.ceil(MAX_VALUE_LENGTH / 9) + 1) }),
      limit: "MAX_VALUE_LENGTH",
      message: /: value is \d+ characters, more than can be read \(limit MAX_VALUE_LENGTH = \d+\)$/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const error = assertThrows(() => imagesFromConfigMap(c.cm), ObjectLimitError);
      assertEquals(error.limit, c.limit);
      assertEquals(error.where, where);
      assert(error.message.startsWith(`${where}: `), error.message);
      assertMatch(error.message, c.message);
    });
  }
});

Deno.test("imagesFromConfigMap() reads YAML nested up to MAX_YAML_DEPTH", () => {
  const depth = (n: number) => "[".repeat(n) + "x" + "]".repeat(n) + " # not JSON";
  // One level more than the list itself is still read (and its item is not a string).
  assertThrows(
    () => imagesFromConfigMap(configMap({ images: depth(MAX_YAML_DEPTH - 1) })),
    TypeError,
    "item 1 is a list, expected a string",
  );
  const error = assertThrows(
    () => imagesFromConfigMap(configMap({ images: depth(MAX_YAML_DEPTH + 1) })),
    ObjectLimitError,
  );
  assertEquals(error.limit, "MAX_YAML_DEPTH");
});

Deno.test("imagesFromConfigMap() reads long lists of quoted or commented references past the YAML parser's limit", async (t) => {
  const refs = Array.from({ length: 15_000 }, (_, i) => `registry.example.com/team/app-${i}:v${i}`);
  const cases = [
    { name: "double-quoted block list", value: refs.map((r) => `- "${r}"`).join("\n") },
    { name: "single-quoted, commented", value: refs.map((r) => `- '${r}'  # pinned`).join("\n") },
    { name: "plain, commented", value: refs.map((r) => `- ${r} # pinned`).join("\r\n") },
    { name: "flow list with a trailing comma", value: `[\n  ${refs.join(",\n  ")},\n]` },
    { name: "flow list, quoted", value: `['${refs.join("', '")}']` },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      // Several tokens an item: far more than the YAML parser may read.
      assert(c.value.split("\n").length * 3 > MAX_YAML_TOKENS || c.value.length > 500_000);
      assertEquals(imagesFromConfigMap(configMap({ images: c.value })).images, refs);
    });
  }
});

Deno.test("imagesFromConfigMap() reads flow lists and quoted items exactly as the YAML parser does", () => {
  const plain = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,20}$/);
  const tricky = fc.constantFrom("true", "null", "~", "12", "0x1F", "1e3", ".5", "a:", "", " ");
  const quoted = fc.tuple(fc.oneof(plain, tricky), fc.constantFrom('"', "'")).map(([item, q]) =>
    `${q}${item}${q}`
  );
  fc.assert(
    fc.property(
      fc.array(fc.oneof(plain, tricky, quoted), { maxLength: 8 }),
      fc.boolean(),
      (items, block) => {
        const value = block
          ? items.map((item) => `- ${item}  # c`).join("\n")
          : `[${items.join(", ")}]`;
        let expected: unknown;
        try {
          expected = parse(value) ?? [];
        } catch {
          expected = undefined;
        }
        let actual: unknown;
        try {
          actual = imagesFromConfigMap(configMap({ images: value })).images;
        } catch (error) {
          // Only what is not a list of strings may fail, and the parser must agree.
          assert(error instanceof TypeError);
          assert(
            !Array.isArray(expected) || expected.some((v) => typeof v !== "string"),
            `${JSON.stringify(value)} failed: ${error.message}`,
          );
          return;
        }
        assertEquals(actual, expected, JSON.stringify(value));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("imagesFromConfigMap() names a key annotation of megabytes cut short", () => {
  const key = "k".repeat(3_000_000);
  const error = assertThrows(
    () => imagesFromConfigMap(configMap({ images: "- alpine" }, { [KEY_ANNOTATION]: key })),
    TypeError,
  );
  assertEquals(error.message, `ConfigMap "platform/base" key "${"k".repeat(64)}…" is missing`);
});

Deno.test("imagesFromConfigMap() names cluster-less objects by name alone", () => {
  assertThrows(
    () => imagesFromConfigMap({ metadata: { name: "loose" }, data: {} }),
    TypeError,
    'ConfigMap "loose" key "images" is missing',
  );
});

Deno.test("imagesFromConfigMap() reads a 1 MiB list of 10,000 references in every format", async (t) => {
  // 10,000 references of 100 characters each: just under the 1 MiB a ConfigMap holds.
  const refs = Array.from({ length: 10_000 }, (_, i) => {
    const ref = `registry.example.com/team-${i % 50}/service-${i}:v1.${i}.0-build.`;
    return ref.padEnd(100, "0");
  });
  const cases = [
    { name: "YAML block list", value: refs.map((r) => `- ${r}`).join("\n") + "\n" },
    { name: "JSON array", value: JSON.stringify(refs) },
    { name: "YAML flow list", value: `[${refs.join(", ")}]` },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert(c.value.length > 1_000_000, `only ${c.value.length} characters`);
      // Speed is for benchmarks to measure (deno task bench), never for a unit test.
      const { images } = imagesFromConfigMap(configMap({ images: c.value }));
      assertEquals(images, refs);
    });
  }
});

Deno.test("imagesFromConfigMap() reads block lists exactly as the YAML parser does", () => {
  const plain = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,20}$/);
  const tricky = fc.constantFrom(
    "true",
    "False",
    "null",
    "~",
    "12",
    "0x1F",
    "1e3",
    ".5",
    "a:",
    "0o17",
  );
  fc.assert(
    fc.property(fc.array(fc.oneof(plain, tricky), { minLength: 1, maxLength: 8 }), (items) => {
      const value = items.map((item) => `- ${item}`).join("\n");
      const expected: unknown = parse(value);
      let actual: unknown;
      try {
        actual = imagesFromConfigMap(configMap({ images: value })).images;
      } catch (error) {
        // Only non-strings may fail, and the parser must agree they are not strings.
        assert(error instanceof TypeError);
        assert(Array.isArray(expected) && expected.some((v) => typeof v !== "string"));
        return;
      }
      assertEquals(actual, expected);
    }),
    { numRuns: 300 },
  );
});

Deno.test("imagesFromConfigMap() on generated ConfigMaps: only documented errors, bounded output, valid references", () => {
  const ref = fc.oneof(
    fc.constantFrom(
      "alpine:3.20",
      "{{inputs.parameters.image}}",
      "registry.example.com:5000/team/app@sha256:" + "a".repeat(64),
      "Alpine",
      "ünï/cödé:1",
      "",
      "a".repeat(300),
    ),
    fc.stringMatching(/^[a-z0-9][a-z0-9._/:@-]{0,30}$/),
  );
  // YAML written the ways people write it, anchors and aliases included.
  const yamlList = fc.array(
    fc.oneof(
      ref.map((r) => `- ${r}`),
      ref.map((r) => `- ${JSON.stringify(r)}`),
      ref.map((r) => `- &x ${JSON.stringify(r)}`),
      fc.constant("- *x"),
      fc.constant("# a comment"),
      fc.constant("- [*x, *x]"),
      fc.constant("- 42"),
    ),
    { maxLength: 30 },
  ).map((lines) => lines.join("\n"));
  const data = fc.oneof(
    yamlList,
    fc.array(ref, { maxLength: 30 }).map((refs) => JSON.stringify(refs)),
    fc.string(),
    fc.string({ unit: "binary" }),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.jsonValue(),
  );
  fc.assert(
    fc.property(data, fc.option(fc.string()), (value, key) => {
      const cm = configMap(
        { images: value, ...(key === null ? {} : { [key]: value }) },
        key === null ? undefined : { [KEY_ANNOTATION]: key },
      );
      let images: string[] = [];
      try {
        images = imagesFromConfigMap(cm).images;
      } catch (error) {
        assert(error instanceof TypeError || error instanceof ObjectLimitError, String(error));
        return;
      }
      // Never more items than the value could spell out (aliases are bounded).
      assert(typeof value === "string" && images.length <= value.length, `${images.length} items`);
      for (const image of images) {
        assert(typeof image === "string");
        const result = tryNormalizeReference(image);
        if (result.ok) assertEquals(normalizeReference(result.ref), result.ref);
        else assert(result.reason.startsWith("Cannot parse image reference "), result.reason);
      }
    }),
    { numRuns: 300 },
  );
});
