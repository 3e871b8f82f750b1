/**
 * Parses the sources' listed objects on a second thread: a worker that turns
 * each object's JSON into the entry its source keeps (images or error),
 * so the main thread only reads the network, splits pages into items and
 * applies the results.
 *
 * Why: a large cluster's sources are tens of megabytes of JSON (79 MB at
 * 10,000 WorkflowTemplates), and parsing it and reading the images took
 * most of the aggregator's start, on one core, while the other waited
 * (bench/RESULTS.md, scenario 8). Watch events, one object at a time, stay on
 * the main thread.
 *
 * When the worker has eight batches it has not finished (2 MiB), the main
 * thread parses the next one itself: the worker is behind, and two threads
 * parse while the network allows. (What the main thread holds until the
 * answers arrive is bounded by the reflector: 16 MiB per list.) The worker
 * counts what it has finished in memory shared with the main thread,
 * because its answers reach the main thread only between the main thread's
 * own tasks: counted by answers, a main thread busy reading pages took the
 * worker for behind and parsed most batches itself while the worker idled.
 *
 * The worker runs the same code as the main thread ({@linkcode parseEntries});
 * if it cannot start or fails, the parser says so once and parses on the main
 * thread from then on, losing nothing.
 *
 * @module
 */
import type { ItemBatch } from "../kube/reflector.ts";
import type { Logger } from "../log/logger.ts";
import { parseEntries } from "./extractors.ts";
import type { Entry, EntrySpec } from "./object_entry.ts";

/**
 * A message to the worker: first, the shared counter where it stores the id
 * of each batch it has finished (ids ascend; batches are parsed in order);
 * then one batch of listed objects per message.
 */
export type ParseRequest =
  | { readonly finished: Int32Array }
  | { readonly id: number; readonly spec: EntrySpec; readonly batch: ItemBatch };

/**
 * The worker's answer to one batch (a {@linkcode ParseRequest} after the
 * first); first, once it has the shared counter, `{ id: 0, ready: true }`.
 */
export type ParseReply =
  | { readonly id: 0; readonly ready: true }
  | { readonly id: number; readonly entries: Array<[string, Entry]> }
  | { readonly id: number; readonly error: { readonly name: string; readonly message: string } };

/**
 * The worker's code as one self-contained module, which build/bundle.ts sets
 * in the shipped bundle: a worker started from it (a blob URL) needs no read
 * permission and no file beside the binary. Undefined when running from
 * source, which starts the worker from its file.
 */
declare const LIST_PARSER_WORKER_SOURCE: string | undefined;

function workerUrl(): string {
  if (typeof LIST_PARSER_WORKER_SOURCE === "string") {
    return URL.createObjectURL(
      new Blob([LIST_PARSER_WORKER_SOURCE], { type: "text/javascript" }),
    );
  }
  return new URL("./list_parser_worker.ts", import.meta.url).href;
}

/**
 * Batches the worker has not finished at which the main thread parses one
 * itself. Not fewer: the main thread has the network, the splitting and the
 * applying to do, and parsing a batch it could have left to the worker
 * delays them (at two, the main thread parsed most batches while the worker
 * idled more than half the list; bench/RESULTS.md).
 */
const SHARE_WHEN_QUEUED = 8;

interface Pending {
  readonly spec: EntrySpec;
  readonly batch: ItemBatch;
  resolve(entries: Array<[string, Entry]>): void;
  reject(error: Error): void;
}

/** Options for {@linkcode ListParser}. */
export interface ListParserOptions {
  log: Logger;
  /** The worker's module; by default the shipped one (tests may give another). */
  workerUrl?: string;
}

/** Turns listed objects' JSON into entries on a worker thread. */
export class ListParser {
  readonly #log: Logger;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  /**
   * The id of the last batch the worker finished, stored by the worker
   * (shared with it once the constructor has made it so).
   */
  #finished: Int32Array<ArrayBufferLike> = new Int32Array(1);
  #nextId = 1;
  #closed = false;

  constructor(options: ListParserOptions) {
    this.#log = options.log;
    try {
      const worker = new Worker(options.workerUrl ?? workerUrl(), { type: "module" });
      worker.onmessage = (event: MessageEvent<ParseReply>) => this.#answer(event.data);
      worker.onerror = (event) => {
        // Handled: the worker's failure must not end the process.
        event.preventDefault();
        this.#fallBack(event.message);
      };
      worker.onmessageerror = () => this.#fallBack("a message could not be read");
      // Set first: a failure below must terminate this worker.
      this.#worker = worker;
      this.#finished = new Int32Array(new SharedArrayBuffer(4));
      worker.postMessage({ finished: this.#finished } satisfies ParseRequest);
    } catch (error) {
      this.#fallBack((error as Error).message);
    }
  }

  /** Whether parsing happens on the worker (false after it failed, or once closed). */
  get offThread(): boolean {
    return this.#worker !== undefined;
  }

  /**
   * Batches sent to the worker that it has not finished yet, as the worker
   * counts them (its answers may still be on their way): what decides when
   * the main thread parses a batch itself.
   */
  get backlog(): number {
    return this.#nextId - 1 - Atomics.load(this.#finished, 0);
  }

  /**
   * The entries of the batch's items, keyed as a reflector keys them, in
   * order. The batch is copied to the worker (kept here until answered, in
   * case the worker fails).
   *
   * @throws {SyntaxError} when an item is not JSON.
   */
  parse(spec: EntrySpec, batch: ItemBatch): Promise<Array<[string, Entry]>> {
    if (this.#closed) return Promise.reject(new Error("The list parser is closed"));
    const worker = this.#worker;
    // The worker is behind: this thread takes a batch too.
    if (!worker || this.backlog >= SHARE_WHEN_QUEUED) return this.#here(spec, batch);
    const { promise, resolve, reject } = Promise.withResolvers<Array<[string, Entry]>>();
    const id = this.#nextId++;
    this.#pending.set(id, { spec, batch, resolve, reject });
    const request: ParseRequest = {
      id,
      spec: { name: spec.name, kind: spec.kind, apiVersion: spec.apiVersion },
      batch: { bytes: batch.bytes, ends: batch.ends },
    };
    worker.postMessage(request);
    return promise;
  }

  /** Stops the worker; what is still being parsed is rejected. */
  close(): void {
    this.#closed = true;
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.reject(new Error("The list parser is closed"));
    this.#pending.clear();
  }

  #answer(reply: ParseReply): void {
    if ("ready" in reply) {
      this.#log.info("Parsing listed objects on a worker thread");
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    if ("entries" in reply) return pending.resolve(reply.entries);
    const { name, message } = reply.error;
    pending.reject(name === "SyntaxError" ? new SyntaxError(message) : new Error(message));
  }

  #here(spec: EntrySpec, batch: ItemBatch): Promise<Array<[string, Entry]>> {
    try {
      return Promise.resolve(parseEntries(spec, batch));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #fallBack(reason: string): void {
    if (this.#closed) return;
    this.#log.warn("List parser worker failed; parsing listed objects on the main thread", {
      error: reason,
    });
    this.#worker?.terminate();
    this.#worker = undefined;
    // What the worker had not answered is parsed here: nothing is lost.
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) this.#here(p.spec, p.batch).then(p.resolve, p.reject);
  }
}
