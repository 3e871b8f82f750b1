/**
 * The static source: the images given with `--image`.
 *
 * @module
 */
import type { ImageSink, Source } from "./source.ts";
import type { WatchStatus } from "../kube/reflector.ts";
import type { Logger } from "../log/logger.ts";
import { untilAborted } from "../time/clock.ts";

/** The origin under which `--image` references are recorded. */
export const STATIC_ORIGIN = "static/--image";

/** Options for {@linkcode StaticSource}. */
export interface StaticSourceOptions {
  /** The references given with `--image`. */
  images: readonly string[];
  /** Where the references go. */
  sink: ImageSink;
  /** Logger. */
  log: Logger;
}

/** Reports the `--image` list once; it is synced from the start. */
export class StaticSource implements Source {
  readonly name = "static";
  readonly synced: Promise<void> = Promise.resolve();
  #options: StaticSourceOptions;
  #errors = 0;

  constructor(options: StaticSourceOptions) {
    this.#options = options;
    const { images, sink, log } = options;
    if (images.length === 0) return;
    const { accepted, rejected, rejectedCount } = sink.set(STATIC_ORIGIN, images);
    this.#errors = rejectedCount;
    for (const r of rejected) {
      log.error("Rejected image reference", {
        source: this.name,
        origin: r.origin,
        image: r.input,
        reason: r.reason,
      });
    }
    log.info("Source synced", { source: this.name, images: accepted.size });
  }

  run(signal: AbortSignal): Promise<void> {
    return untilAborted(signal);
  }

  status(): WatchStatus {
    return {
      name: this.name,
      synced: true,
      available: true,
      objects: this.#options.images.length > 0 ? 1 : 0,
      errors: this.#errors,
      restarts: 0,
    };
  }
}
