/**
 * The object store behind the fake API server: a global monotonic
 * resourceVersion, per-resource tables, a bounded per-resource event history
 * (the watch cache), optimistic concurrency, validation, defaulting, paging
 * with consistent snapshots, and ownerReference garbage collection.
 *
 * Stored objects are never mutated after they are committed; every change
 * commits a new object. That makes the serialised form cacheable and lets
 * lists and history share objects safely.
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import { nullLogger } from "../../log/logger.ts";
import { type ResourceInfo, resourceInfo, RESOURCES } from "./resources.ts";
import { matchesFilter, type ObjectFilter } from "./selectors.ts";
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  expired,
  type FieldError,
  invalid,
  notFound,
  tooLargeResourceVersion,
} from "./status.ts";
import type { KubeObject, WatchEventType } from "./types.ts";

/** A committed change. */
export interface StoreEvent {
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly info: ResourceInfo;
  /** `namespace/name` or `name`. */
  readonly key: string;
  readonly rv: number;
  /** The new state; for DELETED the last state, carrying the deletion's resourceVersion. */
  readonly object: KubeObject;
  /** The state before, for MODIFIED and DELETED. */
  readonly previous?: KubeObject;
}

/** Receives one serialised watch line (JSON plus newline). */
export type WatchSink = (line: string) => void;

/** Options of {@linkcode Store}. */
export interface StoreOptions {
  /** Events kept per resource for watches from an older resourceVersion. @default {1000} */
  retainedEvents?: number;
  /** Clock for timestamps. @default {() => new Date()} */
  now?: () => Date;
  /** Logs listener failures. @default {nullLogger} */
  logger?: Logger;
}

/** Options of {@linkcode Store.delete}. */
export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
  preconditions?: { uid?: string; resourceVersion?: string };
}

/** Result of a list. */
export interface ListResult {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
  readonly continue?: string;
  readonly remainingItemCount?: number;
}

interface Table {
  readonly info: ResourceInfo;
  readonly items: Map<string, KubeObject>;
  sortedKeys: string[] | undefined;
  history: StoreEvent[];
  historyStart: number;
  /** Watches from a resourceVersion below this get 410 Expired. */
  floorRv: number;
  readonly watchers: Set<Watcher>;
}

interface Watcher {
  readonly filter: ObjectFilter;
  readonly sink: WatchSink;
}

/**
 * The API server's watch cache, when it trails the store: the state after all
 * but the last `lag` commits. Lists that accept any state (resourceVersion
 * "0") are served from it, as kube-apiserver serves them from its cache, which
 * may be behind etcd.
 */
interface WatchCache {
  lag: number;
  /** The resourceVersion the cache has reached. */
  rv: number;
  /** Per resource (plural): key → object, as of `rv`. */
  readonly items: Map<string, Map<string, KubeObject>>;
  /** Commits the cache has not applied yet, oldest first. */
  readonly pending: StoreEvent[];
}

/** How a list names the state it wants (the `resourceVersion` and `resourceVersionMatch` parameters). */
export interface ListFrom {
  /** `""` or absent: the latest state; `"0"`: any state (the watch cache); a number: see the match. */
  resourceVersion?: string;
  /** `NotOlderThan` (the default for a number) or `Exact`. */
  resourceVersionMatch?: string;
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_MESSAGE =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

const jsonCache = new WeakMap<object, string>();

/** The JSON text of a stored (immutable) object, computed once. */
export function jsonOf(obj: KubeObject): string {
  let json = jsonCache.get(obj);
  if (json === undefined) {
    json = JSON.stringify(obj);
    jsonCache.set(obj, json);
  }
  return json;
}

/** Deep equality of JSON values, insensitive to key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
}

/** RFC 3339 with second precision, as Kubernetes writes timestamps. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function keyOf(info: ResourceInfo, namespace: string | undefined, name: string): string {
  return info.namespaced ? `${namespace ?? ""}/${name}` : name;
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return [...bytes].map((b) => NAME_SUFFIX_ALPHABET[b % NAME_SUFFIX_ALPHABET.length]).join("");
}

function specOf(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

function withoutResourceVersion(obj: KubeObject): KubeObject {
  const { resourceVersion: _rv, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

function podImagePullPolicy(image: string): string {
  if (image.includes("@")) return "IfNotPresent";
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  const colon = lastSegment.indexOf(":");
  const tag = colon < 0 ? "" : lastSegment.slice(colon + 1);
  return tag === "" || tag === "latest" ? "Always" : "IfNotPresent";
}

function defaultContainer(c: Record<string, unknown>): Record<string, unknown> {
  return {
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
    resources: {},
    ...c,
    imagePullPolicy: c.imagePullPolicy ??
      (typeof c.image === "string" ? podImagePullPolicy(c.image) : "IfNotPresent"),
  };
}

function qosClass(spec: Record<string, unknown>): string {
  const containers = [
    ...((spec.containers as Record<string, unknown>[] | undefined) ?? []),
    ...((spec.initContainers as Record<string, unknown>[] | undefined) ?? []),
  ];
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const r = (c.resources ?? {}) as {
      requests?: Record<string, string>;
      limits?: Record<string, string>;
    };
    const requests = r.requests ?? {};
    const limits = r.limits ?? {};
    if (Object.keys(requests).length || Object.keys(limits).length) any = true;
    for (const res of ["cpu", "memory"]) {
      if (limits[res] === undefined || (requests[res] ?? limits[res]) !== limits[res]) {
        guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

/** Pod spec fields an update may change (everything else is immutable, as in kube-apiserver). */
function mutablePodSpecView(spec: unknown): unknown {
  const s = structuredClone((spec ?? {}) as Record<string, unknown>);
  delete s.activeDeadlineSeconds;
  delete s.tolerations;
  for (const list of ["containers", "initContainers"]) {
    for (const c of (s[list] as Record<string, unknown>[] | undefined) ?? []) delete c.image;
  }
  return s;
}

/** `metav1.MicroTime` on the wire: RFC 3339 with exactly six fractional digits. */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/**
 * What kube-apiserver checks of a Lease: its MicroTimes decode (else the
 * body cannot be read at all: 400), and ValidateLeaseSpec's rules (422).
 */
function validateLease(info: ResourceInfo, obj: KubeObject): FieldError[] {
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  for (const field of ["acquireTime", "renewTime"]) {
    const value = spec[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string" || !MICRO_TIME.test(value)) {
      throw badRequest(
        `${info.kind} in version "v1" cannot be handled as a ${info.kind}: parsing time ${
          JSON.stringify(String(value))
        } as "2006-01-02T15:04:05.000000Z07:00": cannot parse`,
      );
    }
  }
  const errors: FieldError[] = [];
  const duration = spec.leaseDurationSeconds;
  if (duration !== undefined && duration !== null && !(Number(duration) > 0)) {
    errors.push({
      field: "spec.leaseDurationSeconds",
      type: "FieldValueInvalid",
      value: duration as number,
      detail: "must be greater than 0",
    });
  }
  const transitions = spec.leaseTransitions;
  if (transitions !== undefined && transitions !== null && !(Number(transitions) >= 0)) {
    errors.push({
      field: "spec.leaseTransitions",
      type: "FieldValueInvalid",
      value: transitions as number,
      detail: "must be greater than or equal to 0",
    });
  }
  return errors;
}

/** The fake's object store. */
export class Store {
  /** The current (last assigned) resourceVersion. */
  #rv = 0;
  readonly #tables = new Map<string, Table>();
  readonly #retained: number;
  readonly #now: () => Date;
  readonly #logger: Logger;
  readonly #listeners = new Set<(event: StoreEvent) => void>();
  readonly #queue: StoreEvent[] = [];
  #dispatching = false;
  /** uid → where the object lives. */
  readonly #byUid = new Map<string, { info: ResourceInfo; key: string }>();
  /** owner uid → dependants (`plural\0key`). */
  readonly #dependants = new Map<string, Set<string>>();
  /** Set while the watch cache trails the store; absent, the cache is current. */
  #cache?: WatchCache;
  /**
   * Decides whether deleting this pod is graceful (it gets a deletionTimestamp and a
   * kubelet removes it later) rather than immediate. Set by the server to "its node
   * has a simulated kubelet".
   */
  gracefulPodDeletion: (pod: KubeObject) => boolean = () => false;

  constructor(options: StoreOptions = {}) {
    this.#retained = Math.max(1, options.retainedEvents ?? 1000);
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger ?? nullLogger;
    for (const info of RESOURCES) {
      this.#tables.set(info.plural, {
        info,
        items: new Map(),
        sortedKeys: undefined,
        history: [],
        historyStart: 0,
        floorRv: 0,
        watchers: new Set(),
      });
    }
  }

  /** The current resourceVersion as a number. */
  get resourceVersion(): number {
    return this.#rv;
  }

  #table(info: ResourceInfo): Table {
    return this.#tables.get(info.plural)!;
  }

  /** Subscribes to every committed change, after watches have seen it. Returns the unsubscribe. */
  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The stored object, or undefined. The result is shared: never mutate it. */
  get(info: ResourceInfo, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#table(info).items.get(keyOf(info, namespace, name));
  }

  /** Whether a namespace exists. */
  namespaceExists(name: string): boolean {
    return this.#table(resourceInfo("namespaces")).items.has(name);
  }

  /** Whether an object with this uid exists. */
  uidExists(uid: string): boolean {
    return this.#byUid.has(uid);
  }

  /** Number of objects of a resource. */
  count(info: ResourceInfo): number {
    return this.#table(info).items.size;
  }

  /** Forgets all watch history: any older resourceVersion now gets 410 Expired. */
  compact(): void {
    for (const table of this.#tables.values()) {
      table.history = [];
      table.historyStart = 0;
      table.floorRv = this.#rv;
    }
  }

  /**
   * Makes the watch cache trail the store by `commits` commits (`Infinity`
   * holds it where it is; 0 lets it catch up). Lists with resourceVersion "0"
   * then see the cache's older state and resourceVersion, as a real API
   * server's may; consistent lists (resourceVersion "") never do.
   *
   * @throws {RangeError} when `commits` is negative or not a whole number.
   */
  setWatchCacheLag(commits: number): void {
    if (!(commits >= 0) || (commits !== Infinity && !Number.isInteger(commits))) {
      throw new RangeError(`Cannot lag the watch cache by ${commits} commits: must be >= 0`);
    }
    if (!this.#cache) {
      if (commits === 0) return;
      const items = new Map<string, Map<string, KubeObject>>();
      for (const [plural, table] of this.#tables) items.set(plural, new Map(table.items));
      this.#cache = { lag: commits, rv: this.#rv, items, pending: [] };
      return;
    }
    this.#cache.lag = commits;
    this.#advanceCache();
    if (commits === 0) this.#cache = undefined;
  }

  /** The watch cache's resourceVersion: where a resourceVersion "0" list is served from. */
  get watchCacheResourceVersion(): number {
    return this.#cache?.rv ?? this.#rv;
  }

  #advanceCache(): void {
    const cache = this.#cache;
    if (!cache) return;
    while (cache.pending.length > cache.lag) {
      const event = cache.pending.shift()!;
      const items = cache.items.get(event.info.plural)!;
      if (event.type === "DELETED") items.delete(event.key);
      else items.set(event.key, event.object);
      cache.rv = event.rv;
    }
  }

  // ---- reads ------------------------------------------------------------------------------

  #sortedKeys(table: Table): string[] {
    if (!table.sortedKeys) {
      table.sortedKeys = [...table.items.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    return table.sortedKeys;
  }

  /** The state of a table at `rv`, rebuilt from the retained history. */
  #snapshot(table: Table, rv: number): { keys: string[]; items: Map<string, KubeObject> } {
    if (rv >= this.#rv) return { keys: this.#sortedKeys(table), items: table.items };
    const items = new Map(table.items);
    for (let i = table.history.length - 1; i >= table.historyStart; i--) {
      const event = table.history[i];
      if (event.rv <= rv) break;
      if (event.type === "ADDED") items.delete(event.key);
      else items.set(event.key, event.previous!);
    }
    const keys = [...items.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { keys, items };
  }

  /**
   * Lists objects, optionally a page at a time. Continuation pages are served from a
   * consistent snapshot at the first page's resourceVersion, as etcd does.
   *
   * Which state the first page shows follows kube-apiserver: resourceVersion ""
   * (or none) is the latest state; "0" is any state, served from the watch
   * cache, which may trail (see {@linkcode setWatchCacheLag}); a number `N` is a
   * state not older than `N` (from the cache when it has reached `N`), or,
   * with resourceVersionMatch `Exact`, the state at exactly `N`.
   *
   * @throws {ApiError} 410 when the continue token's snapshot (or an `Exact`
   * resourceVersion) is no longer retained, 400 when the options are malformed
   * or conflict, 504 when a resourceVersion is newer than any the store has.
   */
  list(
    info: ResourceInfo,
    filter: ObjectFilter,
    options: { limit?: number; continue?: string } & ListFrom = {},
  ): ListResult {
    const table = this.#table(info);
    let snapshotRv = this.#rv;
    let startAfter: string | undefined;
    let fromCache: Map<string, KubeObject> | undefined;
    const rv = options.resourceVersion ?? "";
    const match = options.resourceVersionMatch ?? "";
    if (match !== "") {
      if (match !== "NotOlderThan" && match !== "Exact") {
        throw badRequest(
          `resourceVersionMatch: Unsupported value: ${
            JSON.stringify(match)
          }: supported values: "Exact", "NotOlderThan"`,
        );
      }
      if (options.continue) {
        throw badRequest("resourceVersionMatch is forbidden when continue is provided");
      }
      if (rv === "") {
        throw badRequest("resourceVersionMatch is forbidden unless resourceVersion is provided");
      }
      if (match === "Exact" && rv === "0") {
        throw badRequest(`resourceVersionMatch "Exact" is forbidden for resourceVersion "0"`);
      }
    }
    if (rv !== "" && !/^\d+$/.test(rv)) {
      throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rv)}`);
    }
    if (options.continue && rv !== "" && rv !== "0") {
      throw badRequest("specifying resource version is not allowed when using continue");
    }
    if (!options.continue && rv !== "") {
      const wanted = Number(rv);
      if (wanted > this.#rv) throw tooLargeResourceVersion(wanted, this.#rv);
      if (match === "Exact") {
        if (wanted < table.floorRv) {
          throw expired(`too old resource version: ${wanted} (${table.floorRv})`);
        }
        snapshotRv = wanted;
      } else if (this.#cache && this.#cache.rv >= wanted) {
        // "0" always, "not older than N" once the cache has reached N. (A real
        // API server waits up to 3 s for a trailing cache, then reads etcd;
        // the fake reads the latest state at once.)
        snapshotRv = this.#cache.rv;
        fromCache = this.#cache.items.get(info.plural)!;
      }
    }
    if (options.continue) {
      let token: { rv: number; start: string };
      try {
        token = JSON.parse(atob(options.continue.replaceAll("-", "+").replaceAll("_", "/")));
        if (typeof token.rv !== "number" || typeof token.start !== "string") throw new Error();
      } catch {
        throw badRequest(`continue key is not valid: ${JSON.stringify(options.continue)}`);
      }
      if (token.rv < table.floorRv) {
        throw expired(
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the 410 response.",
        );
      }
      snapshotRv = token.rv;
      startAfter = token.start;
    }
    const { keys, items } = fromCache
      ? {
        keys: [...fromCache.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        items: fromCache,
      }
      : this.#snapshot(table, snapshotRv);
    let index = 0;
    if (startAfter !== undefined) {
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (keys[mid] <= startAfter) lo = mid + 1;
        else hi = mid;
      }
      index = lo;
    }
    // Narrow to one namespace cheaply: keys are sorted and prefixed by the namespace.
    const prefix = info.namespaced && filter.namespace !== undefined
      ? `${filter.namespace}/`
      : undefined;
    if (prefix && (startAfter === undefined || startAfter < prefix)) {
      let lo = index;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (keys[mid] < prefix) lo = mid + 1;
        else hi = mid;
      }
      index = lo;
    }
    const limit = options.limit && options.limit > 0 ? options.limit : Infinity;
    const out: KubeObject[] = [];
    let lastKey: string | undefined;
    let more = false;
    for (; index < keys.length; index++) {
      const key = keys[index];
      if (prefix && !key.startsWith(prefix)) break;
      const obj = items.get(key)!;
      if (!matchesFilter(filter, obj)) continue;
      if (out.length >= limit) {
        more = true;
        break;
      }
      out.push(obj);
      lastKey = key;
    }
    const result: {
      items: KubeObject[];
      resourceVersion: string;
      continue?: string;
      remainingItemCount?: number;
    } = { items: out, resourceVersion: String(snapshotRv) };
    if (more && lastKey !== undefined) {
      result.continue = btoa(JSON.stringify({ rv: snapshotRv, start: lastKey }))
        .replaceAll("+", "-").replaceAll("/", "_");
      if (filter.labels.length === 0 && filter.fields.length === 0) {
        let remaining = keys.length - index;
        if (prefix) {
          remaining = 0;
          for (let i = index; i < keys.length && keys[i].startsWith(prefix); i++) remaining++;
        }
        result.remainingItemCount = remaining;
      }
    }
    return result;
  }

  // ---- watch ------------------------------------------------------------------------------

  /**
   * Registers a watch. `from` is `"initial"` (synthetic ADDED events for the current state,
   * as for resourceVersion "" or "0") or a resourceVersion to replay history after.
   * Everything up to now is delivered synchronously before this returns.
   *
   * @returns the unsubscribe function.
   * @throws {ApiError} 410 Expired when `from` is older than the retained history.
   */
  watch(
    info: ResourceInfo,
    filter: ObjectFilter,
    from: "initial" | number,
    sink: WatchSink,
  ): () => void {
    const table = this.#table(info);
    if (from === "initial") {
      for (const key of this.#sortedKeys(table)) {
        const obj = table.items.get(key)!;
        if (matchesFilter(filter, obj)) sink(watchLine("ADDED", obj));
      }
    } else {
      if (from < table.floorRv) {
        throw expired(`too old resource version: ${from} (${table.floorRv})`);
      }
      for (let i = table.historyStart; i < table.history.length; i++) {
        const event = table.history[i];
        if (event.rv > from) deliver(event, filter, sink);
      }
    }
    const watcher: Watcher = { filter, sink };
    table.watchers.add(watcher);
    return () => table.watchers.delete(watcher);
  }

  // ---- commits ----------------------------------------------------------------------------

  #commit(
    table: Table,
    type: StoreEvent["type"],
    key: string,
    object: KubeObject,
    previous?: KubeObject,
  ): StoreEvent {
    const info = table.info;
    const event: StoreEvent = { type, info, key, rv: this.#rv, object, previous };
    if (type === "DELETED") {
      table.items.delete(key);
      table.sortedKeys = undefined;
    } else {
      if (!table.items.has(key)) table.sortedKeys = undefined;
      table.items.set(key, object);
    }
    // Indexes: uid and owner → dependants.
    const ref = `${info.plural}\0${key}`;
    for (const owner of previous?.metadata.ownerReferences ?? []) {
      this.#dependants.get(owner.uid)?.delete(ref);
    }
    if (type === "DELETED") {
      if (object.metadata.uid) this.#byUid.delete(object.metadata.uid);
    } else {
      if (object.metadata.uid) this.#byUid.set(object.metadata.uid, { info, key });
      for (const owner of object.metadata.ownerReferences ?? []) {
        let set = this.#dependants.get(owner.uid);
        if (!set) this.#dependants.set(owner.uid, set = new Set());
        set.add(ref);
      }
    }
    if (this.#cache) {
      this.#cache.pending.push(event);
      this.#advanceCache();
    }
    table.history.push(event);
    if (table.history.length - table.historyStart > this.#retained) {
      table.floorRv = table.history[table.historyStart].rv;
      table.historyStart++;
      if (table.historyStart > 1024 && table.historyStart * 2 > table.history.length) {
        table.history = table.history.slice(table.historyStart);
        table.historyStart = 0;
      }
    }
    this.#emit(event);
    return event;
  }

  #emit(event: StoreEvent): void {
    this.#queue.push(event);
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      while (this.#queue.length > 0) {
        const next = this.#queue.shift()!;
        for (const watcher of this.#table(next.info).watchers) {
          deliver(next, watcher.filter, watcher.sink);
        }
        for (const listener of this.#listeners) {
          try {
            listener(next);
          } catch (error) {
            // Why absorb: a failing test hook must not corrupt the store's dispatch loop.
            this.#logger.error("Store listener failed", { error });
          }
        }
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #nextRv(): string {
    return String(++this.#rv);
  }

  #validateName(info: ResourceInfo, name: string, field = "metadata.name"): FieldError[] {
    const errors: FieldError[] = [];
    if (info.nameRule === "label") {
      if (name.length > 63) {
        errors.push({
          field,
          type: "FieldValueInvalid",
          value: name,
          detail: "must be no more than 63 characters",
        });
      }
      if (!LABEL.test(name)) {
        errors.push({ field, type: "FieldValueInvalid", value: name, detail: LABEL_MESSAGE });
      }
    } else {
      if (name.length > 253) {
        errors.push({
          field,
          type: "FieldValueInvalid",
          value: name,
          detail: "must be no more than 253 characters",
        });
      }
      if (!SUBDOMAIN.test(name)) {
        errors.push({ field, type: "FieldValueInvalid", value: name, detail: SUBDOMAIN_MESSAGE });
      }
    }
    return errors;
  }

  #validatePod(obj: KubeObject): FieldError[] {
    const errors: FieldError[] = [];
    const spec = obj.spec as Record<string, unknown> | undefined;
    const containers = spec?.containers;
    if (!Array.isArray(containers) || containers.length === 0) {
      errors.push({ field: "spec.containers", type: "FieldValueRequired", detail: "" });
    }
    for (const list of ["initContainers", "containers"]) {
      const cs = spec?.[list];
      if (!Array.isArray(cs)) continue;
      cs.forEach((c: Record<string, unknown>, i) => {
        if (typeof c?.name !== "string" || c.name === "") {
          errors.push({ field: `spec.${list}[${i}].name`, type: "FieldValueRequired", detail: "" });
        }
        if (typeof c?.image !== "string" || c.image.trim() === "") {
          errors.push({
            field: `spec.${list}[${i}].image`,
            type: "FieldValueRequired",
            detail: "",
          });
        }
      });
    }
    return errors;
  }

  /**
   * Creates an object. `namespace` is the request's namespace (URL); the body's must
   * match it when both are given.
   *
   * @throws {ApiError} 400, 404 (missing namespace), 409 AlreadyExists, 422 Invalid.
   */
  create(
    info: ResourceInfo,
    input: KubeObject,
    options: { namespace?: string; createNamespace?: boolean } = {},
  ): KubeObject {
    const table = this.#table(info);
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      throw badRequest("the request body must be a JSON object");
    }
    const obj = structuredClone(input) as KubeObject;
    const meta = obj.metadata = { ...(obj.metadata ?? {}) };
    obj.apiVersion = info.apiVersion;
    obj.kind = info.kind;
    if (info.namespaced) {
      if (
        options.namespace !== undefined && meta.namespace !== undefined &&
        meta.namespace !== "" && meta.namespace !== options.namespace
      ) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = options.namespace ?? (meta.namespace || "default");
    } else {
      delete meta.namespace;
    }
    if (!meta.name && meta.generateName) {
      const base = meta.generateName.slice(0, 58);
      do meta.name = base + randomSuffix(); while (
        table.items.has(keyOf(info, meta.namespace, meta.name))
      );
    }
    if (!meta.name) {
      throw invalid(info, "", [{
        field: "metadata.name",
        type: "FieldValueRequired",
        detail: "name or generateName is required",
      }]);
    }
    const errors = this.#validateName(info, meta.name);
    if (info.plural === "pods") errors.push(...this.#validatePod(obj));
    if (info.plural === "leases") errors.push(...validateLease(info, obj));
    if (errors.length > 0) throw invalid(info, meta.name, errors);
    if (info.namespaced && !this.namespaceExists(meta.namespace!)) {
      if (options.createNamespace) {
        this.create(resourceInfo("namespaces"), { metadata: { name: meta.namespace } });
      } else {
        throw new ApiError(
          notFound(resourceInfo("namespaces"), meta.namespace!).body,
        );
      }
    }
    const key = keyOf(info, meta.namespace, meta.name);
    if (table.items.has(key)) throw alreadyExists(info, meta.name);

    meta.uid = crypto.randomUUID();
    meta.creationTimestamp = kubeTime(this.#now());
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    if (info.generation) meta.generation = 1;
    else delete meta.generation;
    this.#applyCreateDefaults(info, obj);
    meta.resourceVersion = this.#nextRv();
    this.#commit(table, "ADDED", key, obj);
    return obj;
  }

  #applyCreateDefaults(info: ResourceInfo, obj: KubeObject): void {
    if (info.plural === "pods") {
      const spec = obj.spec = { ...(obj.spec as Record<string, unknown>) };
      spec.restartPolicy ??= "Always";
      spec.dnsPolicy ??= "ClusterFirst";
      spec.schedulerName ??= "default-scheduler";
      spec.terminationGracePeriodSeconds ??= 30;
      spec.securityContext ??= {};
      spec.serviceAccountName ??= "default";
      spec.enableServiceLinks ??= true;
      spec.containers = (spec.containers as Record<string, unknown>[]).map(defaultContainer);
      if (Array.isArray(spec.initContainers)) {
        spec.initContainers = (spec.initContainers as Record<string, unknown>[]).map(
          defaultContainer,
        );
      }
      obj.status = { phase: "Pending", qosClass: qosClass(spec) };
    } else if (info.plural === "namespaces") {
      obj.metadata.labels = {
        ...obj.metadata.labels,
        "kubernetes.io/metadata.name": obj.metadata.name!,
      };
      obj.spec = { finalizers: ["kubernetes"] };
      obj.status = { phase: "Active" };
    } else if (info.plural === "secrets") {
      obj.type ??= "Opaque";
    }
  }

  /**
   * Replaces an object (PUT), or its status when `subresource` is `"status"`. A missing
   * `metadata.resourceVersion` is an unconditional update, except for custom resources
   * unless `unconditional` is set.
   *
   * @throws {ApiError} 400, 404 NotFound, 409 Conflict, 422 Invalid.
   */
  update(
    info: ResourceInfo,
    input: KubeObject,
    options: {
      namespace?: string;
      name?: string;
      subresource?: "status";
      unconditional?: boolean;
    } = {},
  ): KubeObject {
    if (input === null || typeof input !== "object" || Array.isArray(input)) {
      throw badRequest("the request body must be a JSON object");
    }
    const meta = input.metadata ?? {};
    const name = options.name ?? meta.name;
    if (!name) throw badRequest("name is required for an update");
    if (options.name !== undefined && meta.name !== undefined && meta.name !== options.name) {
      throw badRequest(
        `the name of the object (${meta.name}) does not match the name on the URL (${options.name})`,
      );
    }
    const namespace = info.namespaced
      ? (options.namespace ?? meta.namespace ?? "default")
      : undefined;
    if (
      info.namespaced && options.namespace !== undefined && meta.namespace &&
      meta.namespace !== options.namespace
    ) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const existing = this.get(info, namespace, name);
    if (!existing) throw notFound(info, name);
    if (meta.resourceVersion === undefined || meta.resourceVersion === "") {
      if (info.requireResourceVersionOnUpdate && !options.unconditional) {
        throw invalid(info, name, [{
          field: "metadata.resourceVersion",
          type: "FieldValueInvalid",
          value: 0,
          detail: "must be specified for an update",
        }]);
      }
    } else if (meta.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(info, name);
    }
    return this.#replace(info, existing, structuredClone(input), options.subresource);
  }

  #replace(
    info: ResourceInfo,
    existing: KubeObject,
    next: KubeObject,
    subresource: "status" | undefined,
  ): KubeObject {
    const table = this.#table(info);
    const name = existing.metadata.name!;
    if (subresource === "status") {
      next = { ...existing, status: next.status };
    } else {
      next.apiVersion = info.apiVersion;
      next.kind = info.kind;
      const meta = next.metadata = { ...(next.metadata ?? {}) };
      for (
        const field of [
          "name",
          "namespace",
          "uid",
          "creationTimestamp",
          "generation",
          "deletionTimestamp",
          "deletionGracePeriodSeconds",
        ]
      ) {
        if (existing.metadata[field] === undefined) delete meta[field];
        else meta[field] = existing.metadata[field];
      }
      if (info.statusSubresource) {
        if (existing.status === undefined) delete next.status;
        else next.status = existing.status;
      }
      if (info.plural === "pods") {
        const spec = next.spec as Record<string, unknown> | undefined;
        if (spec && Array.isArray(spec.containers)) {
          spec.containers = spec.containers.map(defaultContainer);
        }
        if (spec && Array.isArray(spec.initContainers)) {
          spec.initContainers = spec.initContainers.map(defaultContainer);
        }
        if (!jsonEqual(mutablePodSpecView(existing.spec), mutablePodSpecView(next.spec))) {
          throw invalid(info, name, [{
            field: "spec",
            type: "FieldValueForbidden",
            detail:
              "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
          }]);
        }
      }
      if (info.plural === "leases") {
        const errors = validateLease(info, next);
        if (errors.length > 0) throw invalid(info, name, errors);
      }
      if (info.generation && !jsonEqual(specOf(existing), specOf(next))) {
        meta.generation = (existing.metadata.generation ?? 0) + 1;
      }
    }
    if (jsonEqual(withoutResourceVersion(existing), withoutResourceVersion(next))) {
      // A no-op update writes nothing and keeps the resourceVersion, as etcd3 storage does.
      return existing;
    }
    next.metadata = { ...next.metadata, resourceVersion: this.#nextRv() };
    this.#commit(table, "MODIFIED", keyOf(info, existing.metadata.namespace, name), next, existing);
    return next;
  }

  /**
   * Applies `mutate` to a copy of the stored object and commits it (as the kubelet's
   * status updates do, without optimistic concurrency). Returns undefined when the
   * object is gone.
   */
  modify(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    mutate: (obj: KubeObject) => void,
    options: { subresource?: "status" } = {},
  ): KubeObject | undefined {
    const existing = this.get(info, namespace, name);
    if (!existing) return undefined;
    const copy = structuredClone(existing);
    mutate(copy);
    return this.#replace(info, existing, copy, options.subresource);
  }

  /**
   * Applies a patch computed by `apply` from the current object. A resourceVersion in the
   * patched result that differs from the stored one is a conflict.
   *
   * @throws {ApiError} 404, 409, 422.
   */
  patch(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    apply: (current: KubeObject) => KubeObject,
    options: { subresource?: "status" } = {},
  ): KubeObject {
    const existing = this.get(info, namespace, name);
    if (!existing) throw notFound(info, name);
    let next: KubeObject;
    try {
      next = apply(structuredClone(existing));
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw invalid(info, name, [{
        field: "patch",
        type: "FieldValueInvalid",
        value: "",
        detail: (error as Error).message,
      }]);
    }
    if (next === null || typeof next !== "object" || typeof next.metadata !== "object") {
      throw badRequest("the patch result must be an object with metadata");
    }
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== existing.metadata.resourceVersion) throw conflict(info, name);
    return this.#replace(info, existing, next, options.subresource);
  }

  /**
   * Deletes an object. Pods whose deletion is graceful (see `gracefulPodDeletion`) only get
   * a deletionTimestamp; `finished` then is false. Dependants (by ownerReference uid) are
   * garbage collected unless the propagation policy is Orphan.
   *
   * @throws {ApiError} 404 NotFound, 409 Conflict on a failed precondition.
   */
  delete(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): { object: KubeObject; finished: boolean } {
    const table = this.#table(info);
    const key = keyOf(info, namespace, name);
    const existing = table.items.get(key);
    if (!existing) throw notFound(info, name);
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== existing.metadata.uid) {
      throw conflict(
        info,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`,
      );
    }
    if (
      pre.resourceVersion !== undefined &&
      pre.resourceVersion !== existing.metadata.resourceVersion
    ) {
      throw conflict(
        info,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`,
      );
    }
    if (info.plural === "pods") {
      const phase = (existing.status as { phase?: string } | undefined)?.phase;
      const spec = existing.spec as { terminationGracePeriodSeconds?: number } | undefined;
      const grace = options.gracePeriodSeconds ?? spec?.terminationGracePeriodSeconds ?? 30;
      if (
        grace > 0 && phase !== "Succeeded" && phase !== "Failed" &&
        this.gracefulPodDeletion(existing)
      ) {
        if (existing.metadata.deletionTimestamp) return { object: existing, finished: false };
        const next = structuredClone(existing);
        next.metadata.deletionTimestamp = kubeTime(new Date(this.#now().getTime() + grace * 1000));
        next.metadata.deletionGracePeriodSeconds = grace;
        next.metadata.resourceVersion = this.#nextRv();
        this.#commit(table, "MODIFIED", key, next, existing);
        return { object: next, finished: false };
      }
    }
    const uid = existing.metadata.uid;
    if (options.propagationPolicy === "Foreground" && uid) this.#collect(uid, options);
    if (info.plural === "namespaces") {
      for (const other of this.#tables.values()) {
        if (!other.info.namespaced) continue;
        for (const [k, obj] of [...other.items]) {
          if (obj.metadata.namespace === name && other.items.has(k)) {
            this.delete(other.info, name, obj.metadata.name!, { gracePeriodSeconds: 0 });
          }
        }
      }
    }
    const final: KubeObject = {
      ...existing,
      metadata: { ...existing.metadata, resourceVersion: this.#nextRv() },
    };
    this.#commit(table, "DELETED", key, final, existing);
    if (options.propagationPolicy !== "Orphan" && uid) this.#collect(uid, {});
    return { object: final, finished: true };
  }

  /** Garbage collection of the dependants of a deleted owner. */
  #collect(ownerUid: string, options: DeleteOptions): void {
    const refs = this.#dependants.get(ownerUid);
    if (!refs) return;
    for (const ref of [...refs]) {
      const [plural, key] = ref.split("\0");
      const info = resourceInfo(plural);
      const obj = this.#table(info).items.get(key);
      if (!obj) continue;
      const owners = obj.metadata.ownerReferences ?? [];
      const alive = owners.filter((o) => o.uid !== ownerUid && this.#byUid.has(o.uid));
      if (alive.length > 0) {
        // Like the real garbage collector: keep an object that still has an owner, but drop
        // the dangling reference.
        this.modify(info, obj.metadata.namespace, obj.metadata.name!, (o) => {
          o.metadata.ownerReferences = alive;
        });
      } else if (!obj.metadata.deletionTimestamp) {
        this.delete(info, obj.metadata.namespace, obj.metadata.name!, {
          propagationPolicy: options.propagationPolicy,
        });
      }
    }
  }

  /** Removes a pod whose graceful deletion the kubelet has finished. */
  finalizePodDeletion(namespace: string, name: string): void {
    const info = resourceInfo("pods");
    if (this.get(info, namespace, name)) {
      this.delete(info, namespace, name, { gracePeriodSeconds: 0 });
    }
  }
}

/** Serialises a watch event line. */
export function watchLine(type: WatchEventType, obj: KubeObject): string {
  return `{"type":"${type}","object":${jsonOf(obj)}}\n`;
}

const lineCache = new WeakMap<StoreEvent, Map<string, string>>();

function cachedLine(event: StoreEvent, variant: string, make: () => string): string {
  let lines = lineCache.get(event);
  if (!lines) lineCache.set(event, lines = new Map());
  let line = lines.get(variant);
  if (line === undefined) lines.set(variant, line = make());
  return line;
}

/**
 * Sends `event` to a watcher as kube-apiserver's watch cache does with selectors: an object
 * that starts matching is ADDED, one that stops matching is DELETED (its previous state at
 * the new resourceVersion).
 */
function deliver(event: StoreEvent, filter: ObjectFilter, sink: WatchSink): void {
  const now = matchesFilter(filter, event.object);
  switch (event.type) {
    case "ADDED":
      if (now) sink(cachedLine(event, "ADDED", () => watchLine("ADDED", event.object)));
      return;
    case "DELETED":
      if (now) sink(cachedLine(event, "DELETED", () => watchLine("DELETED", event.object)));
      return;
    case "MODIFIED": {
      const was = matchesFilter(filter, event.previous!);
      if (now && was) {
        sink(cachedLine(event, "MODIFIED", () => watchLine("MODIFIED", event.object)));
      } else if (now) {
        sink(cachedLine(event, "ADDED", () => watchLine("ADDED", event.object)));
      } else if (was) {
        sink(cachedLine(event, "DELETED-previous", () =>
          watchLine("DELETED", {
            ...event.previous!,
            metadata: { ...event.previous!.metadata, resourceVersion: String(event.rv) },
          })));
      }
    }
  }
}
