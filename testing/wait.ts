/**
 * Waiting for an observable condition in integration tests, where a real
 * HTTP server and watch streams sit between cause and effect.
 *
 * @module
 */

/** Options for {@linkcode waitFor}. */
export interface WaitOptions {
  /** Give up after this long. @default {10000} */
  timeoutMs?: number;
  /** Poll interval. @default {10} */
  intervalMs?: number;
  /** What was awaited, for the failure message. */
  what?: string;
}

/**
 * Polls `predicate` until it returns a truthy value and returns that value;
 * throws with `what` after the timeout.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
  throw new Error(
    `Timed out waiting for ${options.what ?? "condition"}${
      last ? `: last error ${String(last)}` : ""
    }`,
  );
}
