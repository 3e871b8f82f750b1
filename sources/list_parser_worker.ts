/**
 * The list parser worker's entry: takes the counter it shares with the main
 * thread (the first {@linkcode ParseRequest}), then answers each batch with
 * the entries of its objects ({@linkcode parseEntries}) or the error that
 * stopped them, storing the batch's id in the counter first. Loaded only by {@linkcode ListParser} (sources/list_parser.ts).
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

/** Where the id of each finished batch goes, read by the main thread at once. */
let finished: Int32Array | undefined;

scope.onmessage = ({ data }) => {
  if ("finished" in data) {
    finished = data.finished;
    scope.postMessage({ id: 0, ready: true });
    return;
  }
  // Thrown, so the main thread falls back and says so: without the counter
  // it would take this worker for ever further behind.
  if (!finished) throw new Error("a batch came before the shared counter");
  const { id, spec, batch } = data;
  let reply: ParseReply;
  try {
    reply = { id, entries: parseEntries(spec, batch) };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    reply = { id, error: { name, message } };
  }
  Atomics.store(finished, 0, id);
  scope.postMessage(reply);
};
