/**
 * The tag ledger, kept by the aggregator's leader: per tag reference (a tag
 * and no digest), the digest the tag pointed to when last checked, and the
 * canary node that checks it each period. Pure state, no I/O: the
 * aggregator feeds it the ready nodes and what pull pods reveal, and
 * publishes {@linkcode TagLedger.annotate}d images.
 *
 * Only the canary and the digest are published, never the check time: a
 * check that finds the tag unchanged changes nothing in the published set,
 * so it costs no new generation.
 *
 * @module
 */
import { isDigestPinned, isSha256Digest } from "../images/reference.ts";
import type { PublishedImage } from "../publication/published_set.ts";
import { chooseCanary } from "./canary.ts";

/** What the ledger knows about one tag. */
export interface LedgerEntry {
  /** The tag reference. */
  readonly ref: string;
  /** The node that checks it each period; none while in fallback or without ready nodes. */
  readonly canary?: string;
  /** The manifest digest (`sha256:…`) the tag pointed to at the last check. */
  readonly digest?: string;
  /** When (clock ms) a pull last revealed the digest. */
  readonly checkedAt?: number;
  /** The node whose pull revealed it. */
  readonly checkedBy?: string;
  /** Failed pulls by canaries since the last success. */
  readonly failures: number;
  /** True while canaries keep failing: every node pulls the tag itself, with its own backoff. */
  readonly fallback: boolean;
}

/** Options for {@linkcode TagLedger}. */
export interface TagLedgerOptions {
  /** Clock time, for {@linkcode LedgerEntry.checkedAt}. */
  now(): number;
  /**
   * Failed canary pulls in a row (each canary then replaced) after which the
   * tag falls back to per-node pulls until a pull of it succeeds. @default {2}
   */
  failuresBeforeFallback?: number;
}

interface State {
  digest?: string;
  checkedAt?: number;
  checkedBy?: string;
  failures: number;
  /** Nodes whose pull of this tag failed and that have not pulled it since. */
  readonly failed: Set<string>;
  /** The canary chosen, and the version of the candidates it was chosen from. */
  canary?: { readonly node: string | undefined; readonly version: number };
}

/**
 * The digest in a pull pod's `containerStatuses[].imageID`, when it names a
 * manifest (`repo@sha256:…`, also with a `docker-pullable://` prefix). A bare
 * `sha256:…` is an image (config) ID that no node lists under the
 * repository: undefined. Pure.
 */
export function digestOfImageId(imageId: string | undefined): string | undefined {
  const at = imageId?.lastIndexOf("@") ?? -1;
  if (at < 0) return undefined;
  const digest = imageId!.slice(at + 1);
  return isSha256Digest(digest) ? digest : undefined;
}

/** Whether `ref` is a tag the ledger keeps: a tag and no digest. */
export function isLedgerTag(ref: string): boolean {
  return !isDigestPinned(ref);
}

/** Per tag: the canary and the digest it last saw. */
export class TagLedger {
  readonly #o: TagLedgerOptions;
  readonly #states = new Map<string, State>();
  #nodes: readonly string[] = [];
  /** Grows when the candidates of any tag change (nodes, or a tag's failed nodes). */
  #version = 0;
  readonly #listeners = new Set<() => void>();
  /** The published fields, by tag, as last announced: a change calls the listeners. */
  #published = new Map<string, string>();

  constructor(options: TagLedgerOptions) {
    this.#o = options;
  }

  /** Calls `listener` whenever a published field (canary, digest) of any tag may have changed. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The ready nodes, the only canary candidates. */
  setNodes(nodes: Iterable<string>): void {
    const next = [...new Set(nodes)].sort();
    if (next.length === this.#nodes.length && next.every((n, i) => n === this.#nodes[i])) return;
    this.#nodes = next;
    this.#version++;
    this.#changed();
  }

  /** Keeps only the tags among `refs` (the desired references); adds the new ones. */
  retain(refs: Iterable<string>): void {
    const wanted = new Set([...refs].filter(isLedgerTag));
    for (const ref of this.#states.keys()) if (!wanted.has(ref)) this.#states.delete(ref);
    for (const ref of wanted) this.#state(ref);
    this.#changed();
  }

  /**
   * Follows one change of the desired references (`DesiredImages`' change):
   * adds the new tags, drops the removed ones. The same result as
   * {@linkcode retain} of the whole new set, at the cost of the change: a
   * relist of thousands of objects adds its images a few at a time, and
   * recomputing every tag on each of those changes was quadratic.
   */
  track(change: { readonly added: readonly string[]; readonly removed: readonly string[] }): void {
    let changed = false;
    for (const ref of change.removed) {
      if (!this.#states.delete(ref)) continue;
      this.#published.delete(ref);
      changed = true;
    }
    for (const ref of change.added) {
      if (!isLedgerTag(ref) || this.#states.has(ref)) continue;
      this.#state(ref);
      this.#published.set(ref, this.#publishedText(ref));
      changed = true;
    }
    if (changed) { for (const listener of this.#listeners) listener(); }
  }

  /** A pull of tag `ref` by `node` succeeded and revealed `digest` (undefined: no usable digest). */
  report(ref: string, node: string, digest: string | undefined): void {
    // Only desired tags: a pull of a tag no longer desired (one in flight
    // when it left the set) must not bring it back.
    const state = this.#states.get(ref);
    if (state === undefined) return;
    state.failures = 0;
    if (state.failed.delete(node)) state.canary = undefined;
    if (digest !== undefined) {
      state.digest = digest;
      state.checkedAt = this.#o.now();
      state.checkedBy = node;
    }
    this.#changed();
  }

  /** A pull of tag `ref` by `node` failed. A failing canary is replaced; repeated failures fall back. */
  failure(ref: string, node: string): void {
    const state = this.#states.get(ref);
    if (state === undefined) return;
    const wasCanary = this.#canaryOf(ref, state) === node;
    state.failed.add(node);
    state.canary = undefined;
    if (wasCanary) state.failures++;
    this.#changed();
  }

  /** The entry of tag `ref`, if the ledger keeps it. */
  entry(ref: string): LedgerEntry | undefined {
    const state = this.#states.get(ref);
    if (state === undefined) return undefined;
    const fallback = this.#fallback(state);
    return {
      ref,
      canary: fallback ? undefined : this.#canaryOf(ref, state),
      digest: state.digest,
      checkedAt: state.checkedAt,
      checkedBy: state.checkedBy,
      failures: state.failures,
      fallback,
    };
  }

  /** Every entry, sorted by reference. */
  entries(): LedgerEntry[] {
    return [...this.#states.keys()].sort().map((ref) => this.entry(ref)!);
  }

  /**
   * The published form of `image` with the ledger's fields: for a tag, its
   * canary (`canary`) and last seen digest (`ledgerDigest`). Other images are
   * returned as they are.
   */
  annotate(image: PublishedImage): PublishedImage {
    // A tag not seen yet gets its entry here: the published set is the level.
    if (isLedgerTag(image.ref)) this.#state(image.ref);
    const entry = this.entry(image.ref);
    if (entry === undefined) return image;
    return {
      ...image,
      ...(entry.canary !== undefined ? { canary: entry.canary } : {}),
      ...(entry.digest !== undefined ? { ledgerDigest: entry.digest } : {}),
    };
  }

  #state(ref: string): State {
    let state = this.#states.get(ref);
    if (state === undefined) {
      state = { failures: 0, failed: new Set() };
      this.#states.set(ref, state);
    }
    return state;
  }

  #fallback(state: State): boolean {
    return state.failures >= (this.#o.failuresBeforeFallback ?? 2);
  }

  #canaryOf(ref: string, state: State): string | undefined {
    // Cached: hashing every tag over every node on each report would cost
    // tags × nodes hashes per pull.
    if (state.canary?.version === this.#version) return state.canary.node;
    const candidates = state.failed.size === 0
      ? this.#nodes
      : this.#nodes.filter((n) => !state.failed.has(n));
    const node = chooseCanary(ref, candidates);
    state.canary = { node, version: this.#version };
    return node;
  }

  /** What is published of a kept tag, as compared between announcements. */
  #publishedText(ref: string): string {
    const { canary, digest } = this.entry(ref)!;
    return `${canary ?? ""} ${digest ?? ""}`;
  }

  #changed(): void {
    const published = new Map<string, string>();
    for (const ref of this.#states.keys()) published.set(ref, this.#publishedText(ref));
    const same = published.size === this.#published.size &&
      [...published].every(([ref, text]) => this.#published.get(ref) === text);
    this.#published = published;
    if (same) return;
    for (const listener of this.#listeners) listener();
  }
}
