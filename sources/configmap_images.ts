/**
 * The images listed by a ConfigMap: a pure function of the object, shared by
 * the ConfigMap watcher and the offline `images` command.
 *
 * The list lives under the data key `images`, or under the key named by the
 * annotation `image-cache-daemon/key`. Its value is a JSON array or a YAML
 * list of strings (YAML being a superset of JSON, both block and flow lists
 * work). `binaryData` is not read.
 *
 * @module
 */
import { MAX_ALIASES, MAX_YAML_DEPTH, MAX_YAML_TOKENS, parseBoundedYaml } from "./bounded_yaml.ts";
import { ObjectLimitError } from "./object_limit_error.ts";

/** The annotation that names the data key holding the list. */
export const KEY_ANNOTATION = "image-cache-daemon/key";
/** The data key read when the annotation is absent. */
export const DEFAULT_KEY = "images";

/**
 * The longest value read, in characters. The API server stores at most
 * 1 MiB of data per ConfigMap; anything longer did not come from it.
 */
export const MAX_VALUE_LENGTH = 1024 * 1024 + 64 * 1024;

export { MAX_ALIASES, MAX_YAML_DEPTH, MAX_YAML_TOKENS };

/** What {@linkcode imagesFromConfigMap} returns. */
export interface ConfigMapImages {
  /** The data key the list was read from. */
  readonly key: string;
  /** The strings listed, as written; normalising them is the dedupe map's job. */
  readonly images: string[];
}

type Obj = Readonly<Record<string, unknown>>;

function asObject(value: unknown): Obj | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Obj
    : undefined;
}

/** Names a parsed value's type for an error message: "a number", "an object". */
function describe(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

// One `- item` per line, the item of characters that image references use:
// a plain scalar YAML cannot read as anything but a string (no leading
// indicator, no `: `, no trailing colon), or the same characters quoted. A
// comment may follow. Lines that are blank or comments are allowed between
// items. Being fast, this also reads long lists past MAX_YAML_TOKENS.
const REFERENCE_CHARACTERS = "[A-Za-z0-9][A-Za-z0-9._/:@+-]*";
const SIMPLE_ITEM = new RegExp(
  `^- (?:(${REFERENCE_CHARACTERS})|"(${REFERENCE_CHARACTERS})"|'(${REFERENCE_CHARACTERS})')` +
    "(?:[ \\t]+(?:#.*)?)?$",
);
const SKIPPABLE_LINE = /^[ \t]*(?:#.*)?$/;
// Plain scalars the YAML 1.2 core schema reads as null, booleans or numbers.
const NOT_A_STRING =
  /^(?:null|Null|NULL|true|True|TRUE|false|False|FALSE|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$/;

/**
 * Reads the common case, a block list of plain image references, without the
 * full YAML parser: it is what large lists look like, and it is ten times
 * faster. Returns undefined for anything else, which goes to the parser.
 */
function readSimpleList(value: string): string[] | undefined {
  const out: string[] = [];
  for (const line of value.split("\n")) {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    const match = SIMPLE_ITEM.exec(text);
    if (match) {
      const [, plain, doubleQuoted, singleQuoted] = match;
      // Quoted, it is a string whatever it looks like.
      if (plain === undefined) out.push(doubleQuoted ?? singleQuoted);
      else if (plain.endsWith(":") || NOT_A_STRING.test(plain)) return undefined;
      else out.push(plain);
    } else if (!SKIPPABLE_LINE.test(text)) {
      return undefined;
    }
  }
  return out.length > 0 ? out : undefined;
}

const FLOW_ITEM = new RegExp(
  `^(?:(${REFERENCE_CHARACTERS})|"(${REFERENCE_CHARACTERS})"|'(${REFERENCE_CHARACTERS})')$`,
);

/**
 * Reads a flow list of image references, `[alpine:3.20, "busybox:1.36"]`,
 * without the full YAML parser, under the same rules as
 * {@linkcode readSimpleList}. Returns undefined for anything else.
 */
function readSimpleFlowList(value: string): string[] | undefined {
  const text = value.trim();
  if (!text.startsWith("[") || !text.endsWith("]")) return undefined;
  const parts = text.slice(1, -1).split(",").map((part) => part.trim());
  // `[a, b,]` ends with an empty part; `[]` is one empty part.
  if (parts[parts.length - 1] === "") parts.pop();
  const out: string[] = [];
  for (const part of parts) {
    const match = FLOW_ITEM.exec(part);
    if (!match) return undefined;
    const [, plain, doubleQuoted, singleQuoted] = match;
    if (plain === undefined) out.push(doubleQuoted ?? singleQuoted);
    else if (plain.endsWith(":") || NOT_A_STRING.test(plain)) return undefined;
    else out.push(plain);
  }
  return out;
}

function parseValue(value: string, where: string): unknown {
  if (value.trim() === "") return [];
  const simple = readSimpleList(value) ?? readSimpleFlowList(value);
  if (simple) return simple;
  if (value.trimStart().startsWith("[")) {
    try {
      return JSON.parse(value);
    } catch {
      // Not JSON; YAML also reads flow lists such as `[alpine, busybox]`.
    }
  }
  return parseBoundedYaml(value, where, { expected: "list" });
}

/**
 * The data key holding a ConfigMap's image list, and the strings it lists.
 * Pure. An empty value or an empty list yields no images.
 *
 * @example
 * ```ts
 * imagesFromConfigMap({
 *   metadata: { name: "base", namespace: "platform" },
 *   data: { images: "- alpine:3.20\n- busybox:1.36\n" },
 * }); // { key: "images", images: ["alpine:3.20", "busybox:1.36"] }
 * ```
 *
 * @throws {ObjectLimitError} when the value is longer than
 * {@linkcode MAX_VALUE_LENGTH}, or it is read as YAML and passes
 * {@linkcode MAX_YAML_TOKENS}, nests deeper than {@linkcode MAX_YAML_DEPTH}
 * or its aliases pass {@linkcode MAX_ALIASES}.
 * @throws {TypeError} naming the ConfigMap, the key and what is wrong, such as
 * `ConfigMap "ns/name" key "images": item 3 is a number, expected a string`,
 * `… invalid YAML: …`, `… expected a list of strings, got an object`, or
 * `ConfigMap "ns/name" key "images" is missing`.
 */
export function imagesFromConfigMap(cm: unknown): ConfigMapImages {
  const object = asObject(cm);
  const metadata = asObject(object?.metadata);
  const name = typeof metadata?.name === "string" ? metadata.name : "";
  const namespace = typeof metadata?.namespace === "string" ? metadata.namespace : "";
  const id = namespace === "" ? name : `${namespace}/${name}`;
  const annotated = asObject(metadata?.annotations)?.[KEY_ANNOTATION];
  const key = typeof annotated === "string" && annotated.trim() !== ""
    ? annotated.trim()
    : DEFAULT_KEY;
  // The key comes from an annotation (up to 256 KB): named cut short, as
  // every message about the value repeats it.
  const shownKey = key.length > 64 ? `${key.slice(0, 64)}…` : key;
  const where = `ConfigMap ${JSON.stringify(id)} key ${JSON.stringify(shownKey)}`;

  const data = asObject(object?.data);
  if (data === undefined || !Object.hasOwn(data, key)) {
    const binary = asObject(object?.binaryData);
    const hint = binary !== undefined && Object.hasOwn(binary, key)
      ? " from data (binaryData is not read)"
      : "";
    throw new TypeError(`${where} is missing${hint}`);
  }
  const value = data[key];
  if (typeof value !== "string") {
    throw new TypeError(`${where}: expected a string value, got ${describe(value)}`);
  }
  if (value.length > MAX_VALUE_LENGTH) {
    throw new ObjectLimitError(`value is ${value.length} characters, more than can be read`, {
      limit: "MAX_VALUE_LENGTH",
      max: MAX_VALUE_LENGTH,
      where,
    });
  }

  const parsed = parseValue(value, where);
  if (parsed === null || parsed === undefined) return { key, images: [] };
  if (!Array.isArray(parsed)) {
    throw new TypeError(`${where}: expected a list of strings, got ${describe(parsed)}`);
  }
  for (let i = 0; i < parsed.length; i++) {
    if (typeof parsed[i] !== "string") {
      throw new TypeError(
        `${where}: item ${i + 1} is ${describe(parsed[i])}, expected a string`,
      );
    }
  }
  return { key, images: parsed as string[] };
}
