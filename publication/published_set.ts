/**
 * The published set: the desired images as the aggregator hands them to the
 * node daemons, in ConfigMaps labelled
 * `app.kubernetes.io/component=desired-images` in the aggregator's namespace.
 *
 * Pure encoding and decoding, no I/O. A set is written as one *generation*
 * of shards, each shard a ConfigMap named `<prefix>-<generation>-<index>`
 * that carries the generation, its index, the shard count and a digest of the
 * whole set. A reader applies a generation only when every shard of it is
 * present, readable and the digest matches: never half of an update.
 *
 * Each image is a JSON object. Readers ignore fields they do not know, so
 * later versions can add per-image data (a trust marker, a resolved digest
 * for a tag) without breaking older node daemons.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import { isDigestPinned, isSha256Digest, tryNormalizeReference } from "../images/reference.ts";

/** The label (and value) that marks published-set ConfigMaps. */
export const PUBLISHED_SET_LABEL = "app.kubernetes.io/component";
/** See {@linkcode PUBLISHED_SET_LABEL}. */
export const PUBLISHED_SET_COMPONENT = "desired-images";
/** The label selector node daemons watch. */
export const PUBLISHED_SET_SELECTOR = `${PUBLISHED_SET_LABEL}=${PUBLISHED_SET_COMPONENT}`;
/** Name prefix of the shards. */
export const SHARD_NAME_PREFIX = "image-cache-daemon-desired";
/** The data key holding a shard's images. */
export const SHARD_DATA_KEY = "images.json";
/** Annotations every shard carries. */
export const GENERATION_ANNOTATION = "image-cache-daemon/generation";
/** See {@linkcode GENERATION_ANNOTATION}. */
export const SHARD_ANNOTATION = "image-cache-daemon/shard";
/** See {@linkcode GENERATION_ANNOTATION}. */
export const SHARDS_ANNOTATION = "image-cache-daemon/shards";
/** See {@linkcode GENERATION_ANNOTATION}. */
export const SET_DIGEST_ANNOTATION = "image-cache-daemon/set-digest";
/** The format of {@linkcode SHARD_DATA_KEY}. */
export const FORMAT_VERSION = 1;
/**
 * Largest serialised shard (the whole ConfigMap as JSON). etcd refuses
 * objects over about 1.5 MiB and kube-apiserver ConfigMaps over 1 MiB of
 * data; 900 KiB leaves room for what the API server adds (managedFields).
 */
export const MAX_SHARD_BYTES = 900 * 1024;

/** What a node needs to pull one image. */
export interface PublishedImage {
  /** The normalised reference. */
  readonly ref: string;
  /** `IfNotPresent` for a digest-pinned reference (its content cannot change), else `Always`. */
  readonly pullPolicy: "Always" | "IfNotPresent";
  /** The pinned digest, when the reference carries one. */
  readonly digest?: string;
  /**
   * True when an operator-trusted origin asks for it (`--trusted-namespaces`
   * and the like, applied by the aggregator): nodes may use
   * `--image-pull-secret` for it. Absent means untrusted.
   */
  readonly trusted?: boolean;
  /**
   * For a tag (no digest) while the aggregator keeps the tag ledger: the
   * node that checks the tag against its registry each period. Absent: no
   * canary (no ready node, or canaries kept failing): every node pulls the
   * tag itself, as with `--role=all`.
   */
  readonly canary?: string;
  /**
   * For a tag: the manifest digest (`sha256:…`) the canary last saw it point
   * to. A node other than the canary whose copy of the tag has this digest
   * does not pull it.
   */
  readonly ledgerDigest?: string;
}

/** One shard as read from a ConfigMap: its place in a generation, or why it cannot be read. */
export interface Shard {
  readonly name: string;
  readonly generation?: number;
  readonly index?: number;
  readonly count?: number;
  readonly digest?: string;
  readonly images?: readonly PublishedImage[];
  /** Why the shard cannot be used. */
  readonly error?: string;
}

/** A generation every shard of which is present and consistent. */
export interface CompleteSet {
  readonly generation: number;
  readonly digest: string;
  readonly images: readonly PublishedImage[];
  /** Names of its shards. */
  readonly shards: readonly string[];
}

/** What a set of shards holds: the newest complete generation, and what is wrong with the rest. */
export interface SetView {
  /** The newest generation that is complete, if any. */
  readonly complete?: CompleteSet;
  /** Generations newer than {@linkcode complete} that are not (yet) complete. */
  readonly incomplete: readonly number[];
  /** Shards that cannot be read, with the reason. */
  readonly unreadable: readonly { name: string; error: string }[];
  /** The highest generation seen in any shard. */
  readonly maxGeneration: number;
}

/** The published form of a normalised reference. */
export function publishedImageOf(ref: string): PublishedImage {
  if (!isDigestPinned(ref)) return { ref, pullPolicy: "Always" };
  return { ref, pullPolicy: "IfNotPresent", digest: ref.slice(ref.indexOf("@") + 1) };
}

/** The canonical text of one image: fixed key order, so equal sets encode equally. */
function imageText(image: PublishedImage): string {
  const { ref, pullPolicy, digest, ...rest } = image;
  const extra = Object.keys(rest).sort().map((k) => [k, (rest as Record<string, unknown>)[k]]);
  return JSON.stringify({
    ref,
    pullPolicy,
    ...(digest ? { digest } : {}),
    ...Object.fromEntries(extra),
  });
}

/** The digest of a whole set (images in order), as the shards carry it. */
export function setDigest(images: readonly PublishedImage[]): string {
  const hash = createHash("sha256");
  for (const image of images) hash.update(imageText(image)).update("\n");
  return `sha256:${hash.digest("hex")}`;
}

/** Sorts by reference: the published order, so a set has one encoding. */
export function sortImages(images: Iterable<PublishedImage>): PublishedImage[] {
  return [...images].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
}

/** The name of shard `index` of `generation`. */
export function shardName(generation: number, index: number): string {
  return `${SHARD_NAME_PREFIX}-${generation}-${index}`;
}

/** True for a name {@linkcode shardName} makes: what a publisher may delete as its own. */
export function isShardName(name: string): boolean {
  return SHARD_NAME.test(name);
}

const SHARD_NAME = new RegExp(`^${SHARD_NAME_PREFIX}-\\d{1,16}-\\d{1,6}$`);

function shardObject(
  namespace: string,
  generation: number,
  index: number,
  count: number,
  digest: string,
  body: string,
  labels: Readonly<Record<string, string>>,
): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: shardName(generation, index),
      namespace,
      labels: { ...labels, [PUBLISHED_SET_LABEL]: PUBLISHED_SET_COMPONENT },
      annotations: {
        [GENERATION_ANNOTATION]: String(generation),
        [SHARD_ANNOTATION]: String(index),
        [SHARDS_ANNOTATION]: String(count),
        [SET_DIGEST_ANNOTATION]: digest,
      },
    },
    data: { [SHARD_DATA_KEY]: body },
  };
}

/** Bytes of `value` as JSON on the wire. */
function wireBytes(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).byteLength;
}

/**
 * Encodes a set as the shards of one generation, each under `maxBytes`
 * serialised. Images are sorted first. An empty set is one empty shard, so
 * "nothing desired" is published as such rather than looking missing.
 *
 * @throws {RangeError} when one image alone does not fit in a shard.
 */
export function encodeShards(
  images: Iterable<PublishedImage>,
  options: {
    namespace: string;
    generation: number;
    /** Extra labels (never the ConfigMap source's selector). */
    labels?: Readonly<Record<string, string>>;
    /** @default {MAX_SHARD_BYTES} */
    maxBytes?: number;
  },
): V1ConfigMap[] {
  const sorted = sortImages(images);
  const digest = setDigest(sorted);
  const { namespace, generation } = options;
  const labels = options.labels ?? {};
  const maxBytes = options.maxBytes ?? MAX_SHARD_BYTES;
  // What a shard costs besides its images: measured on a shard whose numbers
  // are as long as they can be, plus the API server's own metadata.
  const overhead = wireBytes(
    shardObject(namespace, generation, 999_999, 999_999, digest, body([]), labels),
  ) + Math.min(16 * 1024, Math.floor(maxBytes / 8));
  const budget = maxBytes - overhead;
  const groups: string[][] = [[]];
  let size = 0;
  for (const image of sorted) {
    const text = imageText(image);
    // The entry as it appears inside the data string: escaped, plus a comma.
    const cost = wireBytes(text) - 2 + 1;
    if (cost > budget) {
      throw new RangeError(
        `Cannot publish image ${JSON.stringify(image.ref)}: too large for a shard`,
      );
    }
    if (size + cost > budget && groups[groups.length - 1].length > 0) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(text);
    size += cost;
  }
  return groups.map((texts, index) =>
    shardObject(namespace, generation, index, groups.length, digest, body(texts), labels)
  );
}

function body(texts: readonly string[]): string {
  return `{"format":${FORMAT_VERSION},"images":[${texts.join(",")}]}`;
}

const positiveInt = (v: string | undefined, min: number) =>
  v !== undefined && /^\d{1,15}$/.test(v) && Number(v) >= min ? Number(v) : undefined;

/**
 * The highest generation a shard may carry (15 digits). A publisher that
 * would have to go past it (someone wrote a shard at the limit) writes and
 * deletes nothing and says so, retrying with backoff, rather than write
 * shards nobody could read.
 */
export const MAX_GENERATION = 999_999_999_999_999;

/** Reads one image of a shard, or says why it cannot be used. */
function readImage(value: unknown): PublishedImage | string {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return "an image entry is not an object";
  }
  const entry = value as Record<string, unknown>;
  const normalized = tryNormalizeReference(entry.ref);
  if (!normalized.ok || normalized.ref !== entry.ref) {
    return `image ${JSON.stringify(entry.ref)} is not a normalised reference`;
  }
  const policy = entry.pullPolicy;
  if (policy !== "Always" && policy !== "IfNotPresent") {
    return `image ${JSON.stringify(entry.ref)} has pullPolicy ${JSON.stringify(policy)}`;
  }
  if (entry.trusted !== undefined && typeof entry.trusted !== "boolean") {
    return `image ${JSON.stringify(entry.ref)} has a trusted marker that is not a boolean`;
  }
  if (entry.digest !== undefined && typeof entry.digest !== "string") {
    return `image ${JSON.stringify(entry.ref)} has a digest that is not a string`;
  }
  if (entry.canary !== undefined && (typeof entry.canary !== "string" || entry.canary === "")) {
    return `image ${JSON.stringify(entry.ref)} has a canary that is not a node name`;
  }
  if (
    entry.ledgerDigest !== undefined &&
    (typeof entry.ledgerDigest !== "string" || !isSha256Digest(entry.ledgerDigest))
  ) {
    return `image ${JSON.stringify(entry.ref)} has a ledgerDigest that is not a sha256 digest`;
  }
  // Unknown fields are kept (they count in the set's digest) and otherwise ignored.
  return entry as unknown as PublishedImage;
}

/** Reads a shard from its ConfigMap (a pure projection: nothing else of the object is kept). */
export function readShard(obj: KubernetesObject): Shard {
  const cm = obj as V1ConfigMap;
  const name = cm.metadata?.name ?? "";
  const a = cm.metadata?.annotations ?? {};
  const generation = positiveInt(a[GENERATION_ANNOTATION], 1);
  const index = positiveInt(a[SHARD_ANNOTATION], 0);
  const count = positiveInt(a[SHARDS_ANNOTATION], 1);
  const digest = a[SET_DIGEST_ANNOTATION];
  const fail = (error: string): Shard => ({ name, generation, index, count, digest, error });
  if (generation === undefined) {
    return fail(`annotation ${GENERATION_ANNOTATION} is not a positive number`);
  }
  if (count === undefined) return fail(`annotation ${SHARDS_ANNOTATION} is not a positive number`);
  if (index === undefined || index >= count) {
    return fail(`annotation ${SHARD_ANNOTATION} is not a shard index below ${count}`);
  }
  if (name !== shardName(generation, index)) {
    return fail(
      `its name is not ${shardName(generation, index)}, as its annotations say it should be`,
    );
  }
  if (typeof digest !== "string" || !digest.startsWith("sha256:")) {
    return fail(`annotation ${SET_DIGEST_ANNOTATION} is missing`);
  }
  const text = cm.data?.[SHARD_DATA_KEY];
  if (typeof text !== "string") return fail(`key ${SHARD_DATA_KEY} is missing`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail(`key ${SHARD_DATA_KEY} is not JSON: ${(error as Error).message}`);
  }
  const doc = parsed as { format?: unknown; images?: unknown };
  if (doc?.format !== FORMAT_VERSION) {
    return fail(`format ${JSON.stringify(doc?.format)} is not ${FORMAT_VERSION}`);
  }
  if (!Array.isArray(doc.images)) return fail("images is not a list");
  const images: PublishedImage[] = [];
  for (const value of doc.images) {
    const image = readImage(value);
    if (typeof image === "string") return fail(image);
    images.push(image);
  }
  return { name, generation, index, count, digest, images };
}

/** Each shard of a complete set {@linkcode viewShards} verified, to that set. */
const verified = new WeakMap<Shard, CompleteSet>();

/**
 * Judges a set of shards: the newest generation whose every shard is present
 * and readable, agrees on count and digest, and whose images hash to that
 * digest.
 */
export function viewShards(shards: Iterable<Shard>): SetView {
  const byGeneration = new Map<number, Shard[]>();
  const poisoned = new Set<number>();
  const unreadable: { name: string; error: string }[] = [];
  let maxGeneration = 0;
  for (const shard of shards) {
    if (shard.generation !== undefined) maxGeneration = Math.max(maxGeneration, shard.generation);
    if (shard.error !== undefined) {
      unreadable.push({ name: shard.name, error: shard.error });
      if (shard.generation !== undefined) poisoned.add(shard.generation);
      continue;
    }
    const list = byGeneration.get(shard.generation!) ?? [];
    list.push(shard);
    byGeneration.set(shard.generation!, list);
  }
  const incomplete: number[] = [];
  for (const generation of poisoned) {
    if (!byGeneration.has(generation)) byGeneration.set(generation, []);
  }
  for (const generation of [...byGeneration.keys()].sort((a, b) => b - a)) {
    const list = byGeneration.get(generation)!.sort((a, b) => a.index! - b.index!);
    const { count, digest } = list[0] ?? {};
    const consistent = !poisoned.has(generation) && list.length === count &&
      list.every((s, i) => s.index === i && s.count === count && s.digest === digest);
    // Shards are immutable once read: the same shard objects as a set
    // verified before make the same set, without hashing every image again
    // (a watch event of another generation would otherwise cost that).
    const known = consistent ? verified.get(list[0]) : undefined;
    if (known !== undefined && list.every((s) => verified.get(s) === known)) {
      return { complete: known, incomplete, unreadable, maxGeneration };
    }
    const images = consistent ? list.flatMap((s) => s.images!) : [];
    if (consistent && setDigest(images) === digest) {
      const complete = { generation, digest: digest!, images, shards: list.map((s) => s.name) };
      for (const shard of list) verified.set(shard, complete);
      return { complete, incomplete, unreadable, maxGeneration };
    }
    incomplete.push(generation);
  }
  return { incomplete, unreadable, maxGeneration };
}
