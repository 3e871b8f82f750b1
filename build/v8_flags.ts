/**
 * The V8 flags the daemon ships with, chosen by measurement (bench scenario
 * 7, bench/RESULTS.md). The Dockerfile's ENTRYPOINT, `deno task start` and
 * `deno task compile` pass the same flags (the images set the old-space limit
 * apart, in `DENO_V8_FLAGS`, so each workload can match it to its own limit); build/v8_flags_test.ts keeps them
 * in step.
 *
 * @module
 */

/**
 * Why this: measured side by side on the shipped bundle (bench scenario 7),
 * `--optimize-for-size` gave the lowest peak at 10,000 WorkflowTemplates
 * (0.48 of today's build, against 0.50 for `--max-semi-space-size=2` with or
 * without `--heap-growing-percent=20`, and 0.63 for no flags) and the lowest
 * empty-cluster peak, with no slower sync within the noise of a loaded
 * machine. Smaller semi-spaces added nothing on top of it.
 */
export const SHIPPED_V8_FLAGS: readonly string[] = ["--optimize-for-size"];

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

/**
 * The aggregator Deployment's memory limit, MiB
 * (manifests/base/deployment.yaml; manifests_test.ts keeps them equal). It
 * holds the sources' caches every node daemon used to hold (bench scenario 8).
 */
export const AGGREGATOR_MEMORY_LIMIT_MIB = 768;

/**
 * The aggregator's old-space limit, MiB, set by the Deployment through
 * `DENO_V8_FLAGS` (the image's default is {@linkcode DAEMON_OLD_SPACE_MIB}):
 * the limit minus what is not old space, with more room than the node
 * daemon's for the young generation that large lists churn through.
 */
export const AGGREGATOR_OLD_SPACE_MIB = AGGREGATOR_MEMORY_LIMIT_MIB - 128;
