/**
 * The one retry policy: exponential backoff with jitter, capped. The puller's
 * per-image retries ({@linkcode Backoff}), the watches' reconnects and the
 * warden strategy's delete retries ({@linkcode backoffDelay}) all wait by it.
 *
 * Jitter matters everywhere: every node of a cluster sees the same broken
 * image, the same API outage, at about the same time, and without spread
 * they would all retry (and hit the registry or the API server) in lock-step.
 *
 * @module
 */

/** How long to wait before a retry, as a function of the failures so far. */
export interface BackoffOptions {
  /** Delay before the first retry, in milliseconds. @default {5000} */
  baseMs?: number;
  /** Cap on any delay, in milliseconds (`--pull-backoff-max`). */
  maxMs: number;
  /**
   * Spread of each delay, as a fraction of it: `0.2` gives a delay between
   * 80 % and 120 % of the nominal one (never above `maxMs`). @default {0.2}
   */
  jitter?: number;
  /** Source of randomness in `[0, 1)`, replaceable in tests. @default {Math.random} */
  random?: () => number;
}

/** The options with their defaults applied, checked. */
function checked(options: BackoffOptions): Required<BackoffOptions> {
  const { baseMs = 5_000, maxMs, jitter = 0.2, random = Math.random } = options;
  if (!(maxMs > 0) || !Number.isFinite(maxMs)) {
    throw new RangeError(`Cannot create backoff with maxMs ${maxMs}: must be a positive number`);
  }
  if (!(baseMs > 0) || !Number.isFinite(baseMs)) {
    throw new RangeError(
      `Cannot create backoff with baseMs ${baseMs}: must be a positive number`,
    );
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`Cannot create backoff with jitter ${jitter}: must be within 0..1`);
  }
  return { baseMs: Math.min(baseMs, maxMs), maxMs, jitter, random };
}

/** `nominal` spread by the jitter, never above the cap, in whole milliseconds. */
function spread(nominal: number, o: Required<BackoffOptions>): number {
  const factor = 1 + o.jitter * (2 * o.random() - 1);
  return Math.round(Math.min(o.maxMs, Math.max(0, nominal * factor)));
}

/** The nominal delay after `failures` consecutive failures: doubling from the base, capped. */
function nominalDelay(failures: number, o: Required<BackoffOptions>): number {
  // 2^52 already exceeds any sensible cap; stop there to stay finite.
  return Math.min(o.baseMs * 2 ** Math.min(Math.max(failures, 1) - 1, 52), o.maxMs);
}

/**
 * How long to wait after the `failures`-th consecutive failure (1 for the
 * first): `baseMs * 2^(failures-1)`, spread by `jitter` and capped at
 * `maxMs`. For a single stream of retries that counts its own failures.
 *
 * @throws {RangeError} when an option is out of range.
 */
export function backoffDelay(failures: number, options: BackoffOptions): number {
  const o = checked(options);
  return spread(nominalDelay(failures, o), o);
}

/**
 * Exponential backoff per key: the n-th consecutive failure of a key waits
 * as {@linkcode backoffDelay} says.
 */
export class Backoff {
  readonly #o: Required<BackoffOptions>;
  readonly #attempts = new Map<string, number>();

  /** @throws {RangeError} when an option is out of range. */
  constructor(options: BackoffOptions) {
    this.#o = checked(options);
  }

  /** The cap on every delay, in milliseconds. */
  get maxMs(): number {
    return this.#o.maxMs;
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  next(key: string): number {
    const attempts = (this.#attempts.get(key) ?? 0) + 1;
    this.#attempts.set(key, attempts);
    return spread(nominalDelay(attempts, this.#o), this.#o);
  }

  /**
   * Records one more failure of `key` and returns the longest delay (the cap,
   * with jitter): for failures that retrying soon cannot fix.
   */
  park(key: string): number {
    this.#attempts.set(key, (this.#attempts.get(key) ?? 0) + 1);
    return spread(this.#o.maxMs, this.#o);
  }

  /** Forgets the failures of `key`: its next delay is the base one again. */
  reset(key: string): void {
    this.#attempts.delete(key);
  }

  /** Consecutive failures recorded for `key` since the last {@linkcode reset}. */
  attempts(key: string): number {
    return this.#attempts.get(key) ?? 0;
  }

  /** Number of keys with failures recorded. */
  get size(): number {
    return this.#attempts.size;
  }
}
