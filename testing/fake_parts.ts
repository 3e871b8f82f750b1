/**
 * Test support for the operations code: small fakes of the daemon's parts
 * and a reader of Prometheus text format. Used only by `operate/*_test.ts`.
 *
 * @module
 */
import type { Rejection } from "../images/desired_images.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { WatchStatus } from "../kube/reflector.ts";
import type { ObservedParts, ServedParts } from "../operate/parts.ts";

/** A fake source whose status a test sets directly. */
export class FakeSource {
  /** The status {@linkcode status} returns; tests replace fields freely. */
  current: WatchStatus;

  constructor(name: string, status: Partial<WatchStatus> = {}) {
    this.current = {
      name,
      synced: true,
      available: true,
      objects: 0,
      errors: 0,
      restarts: 0,
      ...status,
    };
  }

  /** Changes some fields of the status. */
  update(changes: Partial<WatchStatus>): void {
    this.current = { ...this.current, ...changes };
  }

  /** The current status. */
  status(): WatchStatus {
    return this.current;
  }
}

/** A fake puller whose images and in-flight count a test sets directly. */
export class FakePuller {
  /** What {@linkcode status} returns. */
  images: ImageStatus[] = [];
  /** What {@linkcode inFlight} returns. */
  running = 0;

  /** The images. */
  status(): ImageStatus[] {
    return this.images;
  }

  /** The in-flight count. */
  inFlight(): number {
    return this.running;
  }
}

/** A fake dedupe map: fixed references with their origins, and rejections. */
export class FakeDesired {
  /** Reference → origins. */
  origins = new Map<string, string[]>();
  /** What {@linkcode rejections} returns. */
  rejected: Rejection[] = [];

  /** Number of references. */
  get size(): number {
    return this.origins.size;
  }

  /** The rejections. */
  rejections(): Rejection[] {
    return this.rejected;
  }

  /** The origins of a reference. */
  originsOf(ref: string): string[] {
    return this.origins.get(ref) ?? [];
  }
}

/** Fake parts with a switchable `ready()`. */
export interface FakeParts extends ServedParts {
  readonly desired: FakeDesired;
  readonly sources: FakeSource[];
  readonly puller: FakePuller;
  /** What `ready()` returns. */
  isReady: boolean;
}

/** Builds fake parts around the given sources. */
export function fakeParts(sources: FakeSource[] = []): FakeParts {
  const parts: FakeParts = {
    desired: new FakeDesired(),
    sources,
    puller: new FakePuller(),
    isReady: false,
    ready: () => parts.isReady,
  };
  return parts;
}

/** Builds parts around a real `DesiredImages` (or anything shaped like it). */
export function partsWith(
  desired: ObservedParts["desired"],
  sources: FakeSource[] = [],
): ServedParts & { readonly puller: FakePuller; readonly sources: FakeSource[] } {
  return { desired, sources, puller: new FakePuller(), ready: () => true };
}

/**
 * The value of one sample in Prometheus text format, or `undefined` when
 * absent. `labels` must list every label of the sample, in any order.
 */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const match = line.match(/^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (match === null || match[1] !== name) continue;
    const got = (match[2] ?? "").split(/,(?=[A-Za-z_]+=")/).filter((s) => s !== "").sort().join(
      ",",
    );
    if (got === wanted) return Number(match[3]);
  }
  return undefined;
}
