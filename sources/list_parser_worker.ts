/**
 * The list parser worker's entry: answers each {@linkcode ParseRequest} with
 * the entries of its objects ({@linkcode parseEntries}), or the error that
 * stopped them. Loaded only by {@linkcode ListParser} (sources/list_parser.ts).
 *
 * @module
 */
import { parseEntries } from "./extractors.ts";
import type { ParseReply, ParseRequest } from "./list_parser.ts";

// Why the cast: this file is checked with the window's types (`deno check .`),
// but runs as a worker, whose global scope receives and posts messages.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ParseRequest>) => void) | null;
  postMessage(reply: ParseReply): void;
};

scope.onmessage = ({ data: { id, spec, batch } }) => {
  let reply: ParseReply;
  try {
    reply = { id, entries: parseEntries(spec, batch) };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    reply = { id, error: { name, message } };
  }
  scope.postMessage(reply);
};

scope.postMessage({ id: 0, ready: true });
