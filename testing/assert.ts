/**
 * Minimal assertions for the tests (Deno std is unreachable from this
 * project's machines, so node:assert backs them).
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Asserts that `condition` is truthy. */
export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message ?? "Assertion failed");
}

/** Asserts deep equality. */
export function assertEquals<T>(actual: unknown, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Asserts deep inequality. */
export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  if (message === undefined) nodeAssert.notDeepStrictEqual(actual, expected);
  else nodeAssert.notDeepStrictEqual(actual, expected, message);
}

/** Asserts that `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  if (message === undefined) nodeAssert.match(text, pattern);
  else nodeAssert.match(text, pattern, message);
}

// deno-lint-ignore no-explicit-any -- an Error constructor of any signature
type ErrorClass<E> = new (...args: any[]) => E;

/** Checks a caught error against the expected class and message fragment. */
function checkError<E extends Error>(
  error: unknown,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
): E {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    throw new nodeAssert.AssertionError({
      message: `Expected ${ErrorClass.name}, got ${String(error)}`,
    });
  }
  if (includes && !String((error as Error).message).includes(includes)) {
    throw new nodeAssert.AssertionError({
      message: `Expected message to include ${JSON.stringify(includes)}: ${
        (error as Error).message
      }`,
    });
  }
  return error as E;
}

/** Asserts that `fn` throws an instance of `ErrorClass` (any Error by default) and returns it. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return checkError(error, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: "Expected function to throw" });
}

/** Async variant of {@linkcode assertThrows}. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    return checkError(error, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: "Expected promise to reject" });
}
