/**
 * YAML read from objects, within limits: the ConfigMap lists and Argo
 * `podSpecPatch` texts that are neither JSON nor a plain list go through the
 * YAML parser, and what the parser costs must stay bounded per object.
 *
 * @module
 */
import { Composer, type CST, Lexer, LineCounter, Parser, YAMLParseError } from "yaml";
import { ObjectLimitError } from "./object_limit_error.ts";

/**
 * The most tokens (scalars, indicators, line breaks, comments) the YAML
 * parser may read per object. Its cost follows the tokens, about 4 µs each:
 * a 1 MiB block list of maps (600,000 tokens) took over 2.5 s, on every
 * change of the object, on the single-threaded daemon; 16,384 tokens are
 * about 70 ms, a few thousand references in any YAML form. Long scalars are
 * one token, so a long reference is still read and rejected on its own.
 * Longer lists are read by the fast paths (JSON, a flow list or one
 * `- image` per line), which have no such cost.
 */
export const MAX_YAML_TOKENS = 16 * 1024;
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

/** Options for {@linkcode parseBoundedYaml}. */
export interface ParseBoundedYamlOptions {
  /** What the one document should be, for messages: `list`. @default {"document"} */
  readonly expected?: string;
  /**
   * Tokens read so far for the same object, added to and checked with this
   * text's: the limit is per object, not per text.
   */
  readonly budget?: { tokens: number };
}

/**
 * The one YAML document of `text`, as plain values; `null` when the text
 * holds no document.
 *
 * @param where names the value in messages: `ConfigMap "ns/name" key "images"`.
 * @throws {ObjectLimitError} when the text (with what `options.budget`
 * counted before) passes {@linkcode MAX_YAML_TOKENS}, nests deeper than {@linkcode MAX_YAML_DEPTH}
 * or its aliases pass {@linkcode MAX_ALIASES}.
 * @throws {TypeError} `<where>: invalid YAML: …` when it is not YAML or holds
 * more than one document.
 */
export function parseBoundedYaml(
  text: string,
  where: string,
  options: ParseBoundedYamlOptions = {},
): unknown {
  const expected = options.expected ?? "document";
  const budget = options.budget ?? { tokens: 0 };
  // Counted by the lexer, which stops at the limit: a tenth of the
  // parser's cost per token, so the count itself stays cheap.
  for (const _ of new Lexer().lex(text)) {
    if (++budget.tokens > MAX_YAML_TOKENS) {
      throw new ObjectLimitError(
        `YAML of more than ${MAX_YAML_TOKENS} tokens (write a long list as JSON or one "- image" per line)`,
        { limit: "MAX_YAML_TOKENS", max: MAX_YAML_TOKENS, where },
      );
    }
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
