/**
 * Watch streams over HTTP: a chunked body of JSON lines fed by the store, with
 * BOOKMARK events, `timeoutSeconds`, 410 Expired as an ERROR event, and the
 * hooks fault injection needs (drop every open watch, cleanly or abruptly).
 *
 * @module
 */
import type { ResourceInfo } from "./resources.ts";
import type { ObjectFilter } from "./selectors.ts";
import { ApiError } from "./status.ts";
import type { Store } from "./store.ts";

/** Options of one watch. */
export interface WatchRequest {
  readonly info: ResourceInfo;
  readonly filter: ObjectFilter;
  /** `"initial"` for resourceVersion "" or "0", else the resourceVersion to resume after. */
  readonly from: "initial" | number;
  readonly allowBookmarks: boolean;
  readonly timeoutSeconds?: number;
}

interface ActiveWatch {
  readonly info: ResourceInfo;
  readonly allowBookmarks: boolean;
  send(line: string): void;
  /**
   * `"end"` finishes the stream cleanly; `"cut"` aborts it (no terminating chunk);
   * `"silence"` stops feeding it but leaves it open.
   */
  close(how: "end" | "cut" | "silence"): void;
}

const encoder = new TextEncoder();

/** Tracks every open watch stream of one server. */
export class WatchRegistry {
  readonly #store: Store;
  readonly #bookmarkIntervalMs: number;
  readonly #active = new Set<ActiveWatch>();
  /** Silenced streams: still open (the client has not noticed), ended on close. */
  readonly #silenced = new Set<ActiveWatch>();
  #bookmarkTimer: ReturnType<typeof setInterval> | undefined;
  #opened = 0;

  constructor(store: Store, options: { bookmarkIntervalMs: number }) {
    this.#store = store;
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs;
  }

  /** Number of open watches. */
  get size(): number {
    return this.#active.size;
  }

  /** Number of watches ever opened, ended ones included. */
  get opened(): number {
    return this.#opened;
  }

  /** Opens a watch; the returned stream is the response body. */
  open(request: WatchRequest): ReadableStream<Uint8Array> {
    let watch: ActiveWatch | undefined;
    let unsubscribe: (() => void) | undefined;
    let timeout: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const detach = () => {
      unsubscribe?.();
      unsubscribe = undefined;
      if (timeout !== undefined) clearTimeout(timeout);
      if (watch) this.#active.delete(watch);
      this.#updateBookmarkTimer();
    };
    const finish = () => {
      if (closed) return false;
      closed = true;
      detach();
      if (watch) this.#silenced.delete(watch);
      return true;
    };
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const send = (line: string) => {
          if (!closed) controller.enqueue(encoder.encode(line));
        };
        watch = {
          info: request.info,
          allowBookmarks: request.allowBookmarks,
          send,
          close: (how) => {
            if (closed) return;
            if (how === "silence") {
              detach();
              this.#silenced.add(watch!);
              return;
            }
            finish();
            if (how === "cut") {
              controller.error(new Error("Watch connection cut by fault injection"));
            } else controller.close();
          },
        };
        try {
          unsubscribe = this.#store.watch(request.info, request.filter, request.from, send);
        } catch (error) {
          if (error instanceof ApiError) {
            // kube-apiserver answers 200 and then a single ERROR event carrying the Status.
            send(`{"type":"ERROR","object":${JSON.stringify(error.body)}}\n`);
            closed = true;
            controller.close();
            return;
          }
          throw error;
        }
        this.#active.add(watch);
        this.#opened++;
        this.#updateBookmarkTimer();
        if (request.timeoutSeconds !== undefined && request.timeoutSeconds > 0) {
          timeout = setTimeout(() => watch!.close("end"), request.timeoutSeconds * 1000);
        }
      },
      cancel: () => {
        finish();
      },
    });
  }

  /**
   * Ends every open watch cleanly, or with `cut` aborts the streams mid-body, or with
   * `silence` stops feeding them while leaving the connections open (a silent network
   * partition). `resource` limits it to one resource. Returns how many were hit.
   */
  closeAll(
    options: { silence?: boolean; cut?: boolean; resource?: ResourceInfo } = {},
  ): number {
    let count = 0;
    for (const watch of [...this.#active]) {
      if (options.resource && watch.info !== options.resource) continue;
      watch.close(options.silence ? "silence" : options.cut ? "cut" : "end");
      count++;
    }
    if (!options.silence) {
      for (const watch of [...this.#silenced]) {
        if (options.resource && watch.info !== options.resource) continue;
        watch.close("end");
      }
    }
    return count;
  }

  /** Sends one BOOKMARK to every watch that asked for them. */
  sendBookmarks(): void {
    const rv = String(this.#store.resourceVersion);
    for (const watch of this.#active) {
      if (!watch.allowBookmarks) continue;
      watch.send(
        `{"type":"BOOKMARK","object":{"kind":"${watch.info.kind}","apiVersion":"${watch.info.apiVersion}","metadata":{"resourceVersion":"${rv}"}}}\n`,
      );
    }
  }

  #updateBookmarkTimer(): void {
    const wanted = [...this.#active].some((w) => w.allowBookmarks);
    if (wanted && this.#bookmarkTimer === undefined) {
      this.#bookmarkTimer = setInterval(() => this.sendBookmarks(), this.#bookmarkIntervalMs);
    } else if (!wanted && this.#bookmarkTimer !== undefined) {
      clearInterval(this.#bookmarkTimer);
      this.#bookmarkTimer = undefined;
    }
  }
}
