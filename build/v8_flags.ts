/**
 * The V8 flags the daemon ships with, chosen by measurement (bench scenarios
 * 7 and 8, bench/RESULTS.md). The image sets them in `DENO_V8_FLAGS` (so each
 * workload can replace them: the aggregator's Deployment does), `deno task
 * start` and `deno task compile` pass the node daemon's; build/v8_flags_test.ts
 * and the manifests and Dockerfile tests keep them in step.
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
 * The aggregator's semi-space size, MiB (V8's young generation is three of
 * them). Why: the aggregator's start parses every listed object (79 MB of
 * JSON at 10,000 WorkflowTemplates) into short-lived trees; measured side by
 * side (bench/start_phases.ts, bench/RESULTS.md scenario 8), spawn →
 * published took a median 3.1 s with 32 MiB semi-spaces against 3.5 s with
 * V8's default, 3.3 s with 16 or 64, and 4.6 s with the node daemon's
 * `--optimize-for-size`, for a peak of 220 MiB (of the 768 MiB limit).
 */
export const AGGREGATOR_SEMI_SPACE_MIB = 32;

/**
 * The aggregator's old-space limit, MiB: the limit minus the young
 * generation and what is not V8's heap (about 100 MiB, as for the node
 * daemon).
 */
export const AGGREGATOR_OLD_SPACE_MIB = AGGREGATOR_MEMORY_LIMIT_MIB -
  3 * AGGREGATOR_SEMI_SPACE_MIB -
  96;

/**
 * `DENO_V8_FLAGS` of the image (Dockerfile `ENV`): the node daemon's flags,
 * which the DaemonSet (and the single-process layout) runs with.
 */
export const IMAGE_V8_FLAGS = [...SHIPPED_V8_FLAGS, `--max-old-space-size=${DAEMON_OLD_SPACE_MIB}`]
  .join(",");

/**
 * `DENO_V8_FLAGS` of the aggregator's Deployment, which replaces the
 * image's: no `--optimize-for-size` (its start is CPU-bound; its memory is
 * one process per cluster, not per node), larger semi-spaces, and the
 * old-space limit of its own memory limit.
 */
export const AGGREGATOR_V8_FLAGS = [
  `--max-old-space-size=${AGGREGATOR_OLD_SPACE_MIB}`,
  `--max-semi-space-size=${AGGREGATOR_SEMI_SPACE_MIB}`,
].join(",");
