/**
 * The V8 flags the daemon ships with, chosen by measurement (bench scenario
 * 7, bench/RESULTS.md). The Dockerfile's ENTRYPOINT, `deno task start` and
 * `deno task compile` pass the same flags; build/v8_flags_test.ts keeps them
 * in step.
 *
 * @module
 */

/**
 * Why these: with lists streamed, a young generation of 2 MiB semi-spaces is
 * enough for the short-lived per-item objects, and a heap that grows by 20 %
 * rather than V8's default factor keeps the old generation close to the live
 * set instead of doubling ahead of it.
 */
export const SHIPPED_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=2",
  "--heap-growing-percent=20",
];
