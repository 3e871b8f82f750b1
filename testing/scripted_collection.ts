/**
 * A collection (lister + watcher) that a test drives by hand, for the
 * reflector's fake-time tests: nothing happens between two steps of the test,
 * so `FakeClock.flush()` settles every reaction and "nothing happened" can be
 * asserted without sleeping. Tests of behaviour against the API itself use the
 * fake API server instead.
 *
 * @module
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Collection } from "../kube/listers.ts";
import type { Lister, ListPage, Watcher, WatchObject } from "../kube/reflector.ts";

/** One watch the reflector opened. */
export interface ScriptedWatch {
  readonly options: Parameters<Watcher>[0];
  /** Whether the reflector ended it. */
  readonly aborted: boolean;
  /** Why the reflector ended it, if it said. */
  readonly abortReason: unknown;
  /** Delivers an event to the reflector. */
  send(type: string, obj: WatchObject): void;
  /** Ends the stream, as the server or the connection would. */
  end(error?: unknown): void;
}

/** A hand-driven collection of objects keyed by name. */
export class ScriptedCollection implements Collection {
  #rv = 1;
  readonly #objects = new Map<string, KubernetesObject>();
  readonly #listFailures: unknown[] = [];
  /** Every list call, in order. */
  readonly lists: Parameters<Lister>[0][] = [];
  /** Every watch opened, in order. */
  readonly watches: ScriptedWatch[] = [];

  /** The latest resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Adds or replaces an object (not announced to open watches). */
  put(name: string, data: Record<string, string> = {}): KubernetesObject {
    const obj = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "ns", name, resourceVersion: String(++this.#rv) },
      data,
    } as KubernetesObject;
    this.#objects.set(name, obj);
    return obj;
  }

  /** Removes an object (not announced to open watches). */
  remove(name: string): void {
    this.#objects.delete(name);
    this.#rv++;
  }

  /** The next list calls fail with these errors, one each. */
  failLists(...errors: unknown[]): void {
    this.#listFailures.push(...errors);
  }

  /** The watch opened last. */
  get lastWatch(): ScriptedWatch | undefined {
    return this.watches.at(-1);
  }

  /** Watches not ended yet. */
  openWatches(): ScriptedWatch[] {
    return this.watches.filter((w) => !w.aborted);
  }

  readonly list: Lister = (options, onItem) => {
    this.lists.push(options);
    if (this.#listFailures.length > 0) return Promise.reject(this.#listFailures.shift());
    for (const obj of this.#objects.values()) onItem(obj);
    const page: ListPage = { resourceVersion: String(this.#rv) };
    return Promise.resolve(page);
  };

  readonly watch: Watcher = (options, onEvent, done) => {
    let aborted = false;
    let abortReason: unknown;
    let ended = false;
    const watch: ScriptedWatch = {
      options,
      get aborted() {
        return aborted || ended;
      },
      get abortReason() {
        return abortReason;
      },
      send: (type, obj) => {
        if (!aborted && !ended) onEvent(type, obj);
      },
      end: (error) => {
        if (aborted || ended) return;
        ended = true;
        done(error);
      },
    };
    this.watches.push(watch);
    return Promise.resolve({
      abort: (reason?: unknown) => {
        aborted = true;
        abortReason = reason;
      },
    });
  };

  /** A BOOKMARK at the latest resourceVersion. */
  bookmark(): WatchObject {
    return { kind: "ConfigMap", apiVersion: "v1", metadata: { resourceVersion: String(this.#rv) } };
  }
}
