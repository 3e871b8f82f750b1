/**
 * YAML read from objects, within limits: the ConfigMap lists and Argo
 * `podSpecPatch` texts that are neither JSON nor a plain list go through the
 * YAML parser, and what the parser costs must stay bounded per object.
 *
 * @module
 */
import { Composer, type CST, LineCounter, Parser, YAMLParseError } from "yaml";
import { ObjectLimitError } from "./object_limit_error.ts";

/**
 * The longest text given to the YAML parser, in characters. The parser reads
 * a few hundred kilobytes a second (a 1 MiB block list took over 5 s, a flow
 * list of 100,000 names about as long), so a value of the 1 MiB the API
 * server allows would stall the single-threaded daemon for seconds on every
 * change. 32 KiB is a few hundred image references written in any YAML form,
 * read in tens of milliseconds; longer lists are read by the fast paths (JSON,
 * or one `- image` per line), which have no such cost.
 */
export const MAX_YAML_LENGTH = 32 * 1024;
/**
 * The deepest nesting of collections the YAML parser may build. A list of
 * images is one level deep and a pod spec patch a handful; turning a parsed
 * text into values recurses once per level, so a value nested thousands deep
 * would otherwise end in "Maximum call stack size exceeded".
 */
export const MAX_YAML_DEPTH = 64;
/** YAML aliases allowed in one text; bounds "billion laughs" expansion. */
export const MAX_ALIASES = 100;

function firstLine(error: unknown, lines?: LineCounter): string {
  const message = error instanceof Error ? error.message : String(error);
  const first = message.split("\n")[0].replace(/:$/, "");
  if (!(error instanceof YAMLParseError) || lines === undefined) return first;
  const { line, col } = lines.linePos(error.pos[0]);
  return `${first} at line ${line}, column ${col}`;
}

/**
 * How deep collections nest in a parsed (not yet composed) document, counting
 * up to `limit + 1` at most. Iterative, so that the count itself cannot
 * exhaust the stack.
 */
function nesting(token: CST.Token, limit: number): number {
  const stack: [CST.Token, number][] = [[token, 0]];
  let deepest = 0;
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) break;
    if (current.type === "document") {
      if (current.value) stack.push([current.value, depth]);
    } else if (
      current.type === "block-map" || current.type === "block-seq" ||
      current.type === "flow-collection"
    ) {
      for (const item of current.items) {
        const { key, value } = item as { key?: CST.Token | null; value?: CST.Token };
        if (key) stack.push([key, depth + 1]);
        if (value) stack.push([value, depth + 1]);
      }
    }
  }
  return deepest;
}

/**
 * How deep collections nest in any document of `text`, counting up to
 * `limit + 1` at most. Reads the text with the YAML parser's own (iterative)
 * parser, so that a text too deep to be turned into values can be refused
 * before it is.
 */
export function yamlDepth(text: string, limit: number): number {
  let deepest = 0;
  for (const token of new Parser().parse(text)) {
    deepest = Math.max(deepest, nesting(token, limit));
    if (deepest > limit) break;
  }
  return deepest;
}

/**
 * The one YAML document of `text`, as plain values; `null` when the text
 * holds no document.
 *
 * @param where names the value in messages: `ConfigMap "ns/name" key "images"`.
 * @param expected what the one document should be, for messages: `list`.
 * @throws {ObjectLimitError} when the text is longer than
 * {@linkcode MAX_YAML_LENGTH}, nests deeper than {@linkcode MAX_YAML_DEPTH}
 * or its aliases pass {@linkcode MAX_ALIASES}.
 * @throws {TypeError} `<where>: invalid YAML: …` when it is not YAML or holds
 * more than one document.
 */
export function parseBoundedYaml(text: string, where: string, expected = "document"): unknown {
  if (text.length > MAX_YAML_LENGTH) {
    throw new ObjectLimitError(
      `${text.length} characters of YAML, more than are read (write a long list as JSON or one "- image" per line)`,
      { limit: "MAX_YAML_LENGTH", max: MAX_YAML_LENGTH, where },
    );
  }
  const lines = new LineCounter();
  let tokens: CST.Token[];
  try {
    // The parser keeps its own stack; only composing the values recurses.
    tokens = [...new Parser(lines.addNewLine).parse(text)];
  } catch (error) {
    throw new TypeError(`${where}: invalid YAML: ${firstLine(error)}`);
  }
  for (const token of tokens) {
    if (nesting(token, MAX_YAML_DEPTH) > MAX_YAML_DEPTH) {
      throw new ObjectLimitError(`YAML nests deeper than ${MAX_YAML_DEPTH} levels`, {
        limit: "MAX_YAML_DEPTH",
        max: MAX_YAML_DEPTH,
        where,
      });
    }
  }
  let documents;
  try {
    documents = [
      ...new Composer({
        logLevel: "silent",
        // Keys of objects in a list do not matter; they are an error anyway.
        uniqueKeys: false,
      }).compose(tokens, true, text.length),
    ];
  } catch (error) {
    throw new TypeError(`${where}: invalid YAML: ${firstLine(error)}`);
  }
  if (documents.length > 1) {
    throw new TypeError(
      `${where}: invalid YAML: ${documents.length} documents, expected one ${expected}`,
    );
  }
  const [document] = documents;
  if (document === undefined) return null;
  if (document.errors.length > 0) {
    throw new TypeError(`${where}: invalid YAML: ${firstLine(document.errors[0], lines)}`);
  }
  try {
    return document.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    // Thrown when aliases expand past the limit: the value is rejected whole.
    throw new ObjectLimitError(`YAML aliases expand too far: ${firstLine(error)}`, {
      limit: "MAX_ALIASES",
      max: MAX_ALIASES,
      where,
    });
  }
}
