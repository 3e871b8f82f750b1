/**
 * Per-key exponential backoff with jitter, capped.
 *
 * @module
 */

/** Options for {@linkcode Backoff}. */
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

/**
 * Exponential backoff per key: the n-th consecutive failure of a key waits
 * `baseMs * 2^(n-1)`, spread by `jitter` and capped at `maxMs`.
 *
 * Jitter matters here: every node of a cluster sees the same broken image at
 * about the same time, and without spread they would all retry (and hit the
 * registry) in lock-step.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #attempts = new Map<string, number>();

  /** @throws {RangeError} when an option is out of range. */
  constructor(options: BackoffOptions) {
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
    this.#baseMs = Math.min(baseMs, maxMs);
    this.#maxMs = maxMs;
    this.#jitter = jitter;
    this.#random = random;
  }

  /** The cap on every delay, in milliseconds. */
  get maxMs(): number {
    return this.#maxMs;
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  next(key: string): number {
    const attempts = (this.#attempts.get(key) ?? 0) + 1;
    this.#attempts.set(key, attempts);
    // 2^52 already exceeds any sensible cap; stop there to stay finite.
    const nominal = this.#baseMs * 2 ** Math.min(attempts - 1, 52);
    return this.#spread(Math.min(nominal, this.#maxMs));
  }

  /**
   * Records one more failure of `key` and returns the longest delay (the cap,
   * with jitter): for failures that retrying soon cannot fix.
   */
  park(key: string): number {
    this.#attempts.set(key, (this.#attempts.get(key) ?? 0) + 1);
    return this.#spread(this.#maxMs);
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

  #spread(nominal: number): number {
    const factor = 1 + this.#jitter * (2 * this.#random() - 1);
    return Math.round(Math.min(this.#maxMs, Math.max(0, nominal * factor)));
  }
}
