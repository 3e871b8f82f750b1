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

/**
 * The DaemonSet container's memory limit, MiB (manifests/base/daemonset.yaml;
 * manifests_test.ts keeps them equal).
 */
export const DAEMON_MEMORY_LIMIT_MIB = 256;

/**
 * V8's old-space limit in the images, MiB: the memory limit minus what is not
 * V8's old space (the Deno binary's pages, compiled code, the young
 * generation, buffers: about 90 MiB measured on an empty cluster). Near it V8
 * collects harder instead of growing the heap, so the process stays under the
 * limit rather than being killed by the kernel first.
 */
export const DAEMON_OLD_SPACE_MIB = DAEMON_MEMORY_LIMIT_MIB - 96;
