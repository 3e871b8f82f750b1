/**
 * The images this node reports in `status.images`, kept in step by a watch
 * of this one Node (`fieldSelector=metadata.name=<node>`).
 *
 * @module
 */
import type {
  KubeConfig,
  KubernetesObject,
  V1Node,
  V1NodeCondition,
  V1Taint,
} from "@kubernetes/client-node";
import type { Clock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { nodeCollection } from "../kube/listers.ts";
import { Reflector, type WatchStatus } from "../kube/reflector.ts";
import { tryNormalizeReference } from "../images/reference.ts";

/** Options for {@linkcode NodeImages}. */
export interface NodeImagesOptions {
  kubeConfig: KubeConfig;
  node: string;
  log: Logger;
  clock?: Clock;
}

/** How many images the kubelet reports at most, by default (`--node-status-max-images`). */
export const NODE_STATUS_MAX_IMAGES = 50;

/** What the warm-up reads of the Node (kept small: the watch keeps no whole Node). */
export interface NodeMeta {
  /** `metadata.creationTimestamp`, in epoch milliseconds. */
  readonly created?: number;
  readonly taints: readonly V1Taint[];
  readonly conditions: readonly V1NodeCondition[];
}

/** What is kept of the Node: its image names, and whether the list can be complete. */
interface NodeView {
  readonly names: ReadonlySet<string>;
  readonly tagDigests: ReadonlySet<string>;
  readonly complete: boolean;
  readonly meta?: NodeMeta;
  /** Each raw name of the Node's list, normalised (for the next event). */
  readonly normalized?: Normalized;
}

const EMPTY_VIEW: NodeView = { names: new Set(), tagDigests: new Set(), complete: true };

/** Normalised forms of raw image names (`undefined`: not a reference), from one Node event. */
type Normalized = ReadonlyMap<string, string | undefined>;

/**
 * Reads a Node's `status.images` in one pass: the normalised names, each
 * tag's digest, and the normalised form of every raw name. Names found in
 * `earlier` are not parsed again. Why: the kubelet rewrites the list on each
 * pull (up to 50 images, about 100 names) and one pull changes one entry, so
 * a watch event costs a parse per new name, not per name.
 */
function readNodeImages(obj: KubernetesObject, earlier: Normalized = new Map()): {
  names: Set<string>;
  tagDigests: Set<string>;
  normalized: Map<string, string | undefined>;
} {
  const names = new Set<string>();
  const tagDigests = new Set<string>();
  const normalized = new Map<string, string | undefined>();
  for (const image of (obj as V1Node).status?.images ?? []) {
    const tags: string[] = [];
    const digests: string[] = [];
    for (const name of image.names ?? []) {
      let ref = normalized.get(name);
      if (ref === undefined && !normalized.has(name)) {
        if (earlier.has(name)) ref = earlier.get(name);
        else {
          const result = tryNormalizeReference(name);
          ref = result.ok ? result.ref : undefined;
        }
        normalized.set(name, ref);
      }
      if (ref === undefined) continue;
      names.add(ref);
      (ref.includes("@") ? digests : tags).push(ref);
    }
    // A tag and a digest of one repository in the same entry: the tag's digest.
    for (const tag of tags) {
      const repo = tag.slice(0, tag.lastIndexOf(":"));
      for (const digest of digests) {
        const at = digest.indexOf("@");
        if (digest.slice(0, at) === repo) tagDigests.add(`${tag}${digest.slice(at)}`);
      }
    }
  }
  return { names, tagDigests, normalized };
}

/** What is kept of a Node, reusing the normalised names of the `earlier` event. */
function nodeView(obj: KubernetesObject, earlier?: Normalized): NodeView {
  const node = obj as V1Node;
  const count = node.status?.images?.length ?? 0;
  const created = node.metadata?.creationTimestamp;
  const { names, tagDigests, normalized } = readNodeImages(obj, earlier);
  return {
    names,
    tagDigests,
    normalized,
    complete: count < NODE_STATUS_MAX_IMAGES,
    meta: {
      created: created === undefined ? undefined : new Date(created).getTime(),
      taints: node.spec?.taints ?? [],
      // Only the project's own conditions: the kubelet's change every few seconds.
      conditions: (node.status?.conditions ?? []).filter((c) => c.type === "ImagesPrePulled"),
    },
  };
}

/**
 * Which digest each tag on a Node points to, as `domain/path:tag@digest`:
 * a tag and a digest of one repository listed in the same `status.images`
 * entry (one image). Pure.
 */
export function tagDigestsOfNode(obj: KubernetesObject): ReadonlySet<string> {
  return readNodeImages(obj).tagDigests;
}

/** Normalised image names of a Node's `status.images`. Pure. */
export function imageNamesOfNode(obj: KubernetesObject): ReadonlySet<string> {
  return readNodeImages(obj).names;
}

/**
 * Watches this node's `status.images`. The kubelet caps the list (50 by
 * default), so absence proves nothing; presence of a digest proves the
 * content is there.
 */
export class NodeImages {
  #view: NodeView = EMPTY_VIEW;
  readonly #reflector: Reflector<NodeView>;
  /** Whether the last list or event showed the Node; undefined until the first list. */
  #found?: boolean;
  #onFound = new Set<() => void>();
  /** Resolves after the first list (or when the Node cannot be read). */
  readonly synced: Promise<void>;

  constructor(options: NodeImagesOptions) {
    const collection = nodeCollection(options.kubeConfig, { name: options.node });
    this.#reflector = new Reflector({
      name: "node",
      list: collection.list,
      watch: collection.watch,
      heartbeat: collection.heartbeat,
      log: options.log,
      clock: options.clock,
      handler: {
        // One Node, watched alone: the view before this event is the last one.
        transform: (obj) => nodeView(obj, this.#view.normalized),
        replace: (items) => {
          this.#view = items.values().next().value ?? EMPTY_VIEW;
          this.#setFound(items.size > 0);
        },
        upsert: (_key, view) => {
          this.#view = view;
          this.#setFound(true);
        },
        remove: () => {
          this.#view = EMPTY_VIEW;
          this.#setFound(false);
        },
      },
    });
    this.synced = this.#reflector.synced;
  }

  #setFound(found: boolean): void {
    this.#found = found;
    if (!found) return;
    for (const resolve of this.#onFound) resolve();
    this.#onFound.clear();
  }

  /**
   * Whether the Node exists: true or false once listed, undefined before (or
   * while it cannot be read at all).
   */
  found(): boolean | undefined {
    return this.#found;
  }

  /** Resolves once the Node is seen (at once if it is), or when `signal` aborts. */
  whenFound(signal: AbortSignal): Promise<void> {
    if (this.#found || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#onFound.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#onFound.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** The Node's creation time, taints and warm-up condition, once seen. */
  meta(): NodeMeta | undefined {
    return this.#view.meta;
  }

  /** The normalised names the node reports now (a maintained set: cheap to call). */
  names(): ReadonlySet<string> {
    return this.#view.names;
  }

  /**
   * The tags on the node with the digest each points to, as
   * `domain/path:tag@digest` (a maintained set: cheap to call).
   */
  tagDigests(): ReadonlySet<string> {
    return this.#view.tagDigests;
  }

  /**
   * Whether {@linkcode names} can be every image on the node: false once the
   * list reaches the kubelet's cap, where absence proves nothing.
   */
  complete(): boolean {
    return this.#view.complete;
  }

  /** The Node watch's state, in the shape of a source's, for health and status. */
  status(): WatchStatus {
    const r = this.#reflector.status();
    return {
      name: "node",
      synced: r.synced,
      available: r.available,
      reason: r.reason,
      objects: this.#view.names.size,
      errors: 0,
      restarts: r.restarts,
      lastActivity: r.lastActivity,
    };
  }

  /** Watches until `signal` aborts. */
  run(signal: AbortSignal): Promise<void> {
    return this.#reflector.run(signal);
  }
}
