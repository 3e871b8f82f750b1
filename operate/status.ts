/**
 * The `/status` document, bounded in size and built once per change.
 *
 * The images list is paged (`?offset=&limit=`); each image shows a few of its
 * origins and a cut error; rejections are one summary per object with a few
 * short samples. The list of image reports is rebuilt only when the desired
 * images or the puller change (their `version`s), so a burst of requests
 * costs one build and a page of serialisation each.
 *
 * @module
 */
import { truncateEcho } from "../images/desired_images.ts";
import type { ObservedParts } from "./parts.ts";

/** Default page size of `/status` images. */
export const STATUS_PAGE_SIZE = 500;
/** Largest page a request may ask for. */
export const STATUS_MAX_PAGE_SIZE = 1_000;
/** Origins shown per image (the count is exact). */
export const STATUS_ORIGINS_PER_IMAGE = 5;
/** Objects with rejections shown, with {@linkcode STATUS_REJECTION_SAMPLES} samples each. */
export const STATUS_REJECTED_OBJECTS = 50;
/** Rejected entries shown per object. */
export const STATUS_REJECTION_SAMPLES = 3;
/** Longest error text shown per image. */
const MAX_ERROR_CHARS = 512;

/** JSON view of one image on `/status`. */
export interface ImageReport {
  image: string;
  state: string;
  trusted?: boolean;
  attempts: number;
  consecutiveFailures: number;
  lastError?: string;
  lastErrorReason?: string;
  lastAttempt?: string;
  lastSuccess?: string;
  digest?: string;
  nextAttempt?: string;
  permanent?: boolean;
  /** Up to {@linkcode STATUS_ORIGINS_PER_IMAGE} origins. */
  origins: readonly string[];
  /** How many origins ask for it, when more than shown. */
  originCount?: number;
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function pageParam(params: URLSearchParams, name: string, fallback: number, max: number): number {
  const value = Number(params.get(name) ?? fallback);
  return Number.isInteger(value) && value >= 0 ? Math.min(value, max) : fallback;
}

/** Builds `/status` bodies from a daemon's parts, caching what does not change between requests. */
export class StatusView {
  #key?: string;
  #images: ImageReport[] = [];
  #rejected: unknown[] = [];
  #rejectedObjects = 0;
  #rejectedEntries = 0;
  #overCap?: { count: number; samples: string[] };
  /** Times the image list was built, for tests of bounded work. */
  builds = 0;

  /** The `/status` JSON body for a request with `params`. */
  render(
    parts: ObservedParts,
    options: { node?: string; ready: boolean; params: URLSearchParams },
  ): string {
    this.#refresh(parts);
    const offset = pageParam(options.params, "offset", 0, Number.MAX_SAFE_INTEGER);
    const limit = pageParam(options.params, "limit", STATUS_PAGE_SIZE, STATUS_MAX_PAGE_SIZE);
    const images = this.#images.slice(offset, offset + limit);
    const next = offset + images.length;
    return JSON.stringify({
      node: options.node,
      ready: options.ready,
      desired: parts.desired.size,
      inFlight: parts.puller?.inFlight() ?? 0,
      election: parts.election?.status(),
      publisher: parts.publisher?.status(),
      publishedSet: parts.publishedSet?.publishedSet(),
      warmUp: parts.warmUp?.status(),
      // The aggregator's tag ledger, paged like the images.
      ledgerTotal: parts.ledger?.entries().length,
      ledger: parts.ledger?.entries().slice(offset, offset + limit).map((e) => ({
        ...e,
        checkedAt: iso(e.checkedAt),
      })),
      offset,
      limit,
      imagesTotal: this.#images.length,
      nextOffset: next < this.#images.length ? next : undefined,
      images,
      sources: parts.sources.map((source) => {
        const s = source.status();
        return { ...s, lastActivity: iso(s.lastActivity) };
      }),
      watches: (parts.watches ?? []).map((watch) => {
        const s = watch.status();
        return { ...s, lastActivity: iso(s.lastActivity) };
      }),
      rejectedObjects: this.#rejectedObjects,
      rejectedEntries: this.#rejectedEntries,
      rejected: this.#rejected,
      overCap: this.#overCap,
    });
  }

  #refresh(parts: ObservedParts): void {
    const { desired } = parts;
    // An aggregator has no puller: no images of its own to report.
    const puller = parts.puller ?? { status: () => [], version: 0 };
    const key = desired.version === undefined || puller.version === undefined
      ? undefined
      : `${desired.version}:${puller.version}`;
    if (key !== undefined && key === this.#key) return;
    this.#key = key;
    this.builds++;
    this.#images = puller.status().map((s) => {
      const origins = desired.originsOf(s.ref);
      const report: ImageReport = {
        image: s.ref,
        state: s.state,
        trusted: s.trusted,
        attempts: s.attempts,
        consecutiveFailures: s.consecutiveFailures,
        lastError: s.lastError === undefined
          ? undefined
          : truncateEcho(s.lastError, MAX_ERROR_CHARS),
        lastErrorReason: s.lastErrorReason,
        lastAttempt: iso(s.lastAttempt),
        lastSuccess: iso(s.lastSuccess),
        digest: s.digest,
        nextAttempt: iso(s.nextAttempt),
        permanent: s.permanent,
        origins: origins.slice(0, STATUS_ORIGINS_PER_IMAGE),
      };
      if (origins.length > STATUS_ORIGINS_PER_IMAGE) report.originCount = origins.length;
      return report;
    });
    const summaries = desired.rejectionSummaries?.() ??
      desired.rejections().map((r) => ({ origin: r.origin, count: 1, samples: [r] }));
    this.#rejectedObjects = summaries.length;
    this.#rejectedEntries = desired.rejectedCount?.() ?? summaries.length;
    this.#rejected = summaries.slice(0, STATUS_REJECTED_OBJECTS).map((s) => ({
      origin: s.origin,
      count: s.count,
      samples: s.samples.slice(0, STATUS_REJECTION_SAMPLES).map(({ input, reason }) => ({
        input,
        reason,
      })),
    }));
    const over = desired.overCap?.(STATUS_REJECTION_SAMPLES);
    this.#overCap = over && over.count > 0 ? over : undefined;
  }
}
