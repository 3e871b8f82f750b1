/**
 * The daemon's Prometheus metrics, on a registry of their own.
 *
 * prom-client's default collectors are not used: they read `/proc`, which the
 * daemon's permission set does not grant (they would report zeros). Process
 * metrics come from `Deno.memoryUsage()` and `process.cpuUsage()`, which need
 * no permission, under the names every Prometheus client library uses
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `process_start_time_seconds`, unprefixed) so generic process dashboards and
 * alerts work; the V8 heap follows Node.js's `nodejs_heap_size_*_bytes` as
 * `deno_heap_size_*_bytes`.
 *
 * Naming follows Prometheus's conventions: base units in the name
 * (`_seconds`, `_bytes`), `_total` on counters only, `_timestamp_seconds`
 * for Unix times. Every label has a small, fixed set of values except
 * `image` on {@linkcode MAX_FAILING_IMAGE_SERIES}-capped
 * `image_consecutive_failures`; the node is not a label here: the scrape
 * adds it (the PodMonitor and the documented scrape job copy the pod's node
 * name), as for any per-pod target.
 *
 * @module
 */
import process from "node:process";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../config/version.ts";
import type { PullFailureReason } from "../puller/errors.ts";
import type { ImageState, ImageStatus, PullFinished } from "../puller/node_puller.ts";
import type { ObservedParts } from "./parts.ts";

/** Prefix of every metric name but the standard process and runtime ones. */
export const METRIC_PREFIX = "image_cache_daemon_";

/**
 * Most `image_consecutive_failures{image}` series one daemon exports. Why a
 * cap: the label's values come from user data (every desired reference), so
 * without one a bad day (a registry down for everything) would create one
 * series per desired image per node. Only images failing right now have a
 * series (it disappears when the image is pulled or no longer desired), the
 * ones with the most consecutive failures first; `failing_images` keeps the
 * uncapped count, so a truncated list shows.
 */
export const MAX_FAILING_IMAGE_SERIES = 20;

/** Outcome label of `pulls_total` and `pull_duration_seconds`. */
export type PullResultLabel = "success" | "failure" | "cancelled";

/**
 * Every failure reason, so each `pull_failures_total` series exists from the
 * start (a `rate()` over a series that appears late misses its first
 * failures). A `Record` makes the compiler insist on every member.
 */
const FAILURE_REASONS: Record<PullFailureReason, true> = {
  ErrImagePull: true,
  InvalidImageName: true,
  NoMatchingPlatform: true,
  Timeout: true,
  PodRejected: true,
  PodDeleted: true,
  Unauthorized: true,
  RuntimeError: true,
  ApiError: true,
};

const IMAGE_STATES: readonly ImageState[] = ["pending", "pulling", "present", "failed"];

/**
 * Pull durations range from a cached layer check (well under a second) to a
 * multi-gigabyte image on a slow registry (minutes); the last bucket is the
 * longest sensible `--pull-timeout`.
 */
const PULL_DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Options for {@linkcode DaemonMetrics}. */
export interface DaemonMetricsOptions {
  /** Value of the `version` label of `build_info`. @default {VERSION} */
  version?: string;
}

/**
 * Whether an image counts as present on the node: it is, or it was pulled
 * (or found) since it became desired and is now being refreshed or failed a
 * refresh; the earlier pull is still on the node.
 */
function isPresent(image: ImageStatus): boolean {
  return image.state === "present" || image.lastSuccess !== undefined;
}

/**
 * The daemon's metrics. Pull counters move through {@linkcode pullStarted}
 * and {@linkcode pullFinished} (the puller's hooks); gauges are refreshed
 * from status snapshots by {@linkcode observe}, called on each scrape.
 *
 * @example
 * ```ts ignore
 * const metrics = new DaemonMetrics();
 * // NodePullerOptions: onPullStarted: (ref) => metrics.pullStarted(ref), ...
 * metrics.observe(parts);
 * const text = await metrics.render();
 * ```
 */
export class DaemonMetrics {
  readonly #registry = new Registry();
  readonly #desired: Gauge;
  readonly #present: Gauge;
  readonly #images: Gauge<"state">;
  readonly #rejected: Gauge;
  readonly #ready: Gauge;
  readonly #failing: Gauge;
  readonly #imageFailures: Gauge<"image">;
  readonly #pulls: Counter<"result">;
  readonly #duration: Histogram<"result">;
  readonly #inFlight: Gauge;
  readonly #failures: Counter<"reason">;
  readonly #sourceObjects: Gauge<"source">;
  readonly #sourceInvalid: Gauge<"source">;
  readonly #sourceAvailable: Gauge<"source">;
  readonly #sourceSynced: Gauge<"source">;
  readonly #sourceActivity: Gauge<"source">;
  readonly #watchRestarts: Counter<"source">;
  readonly #restartsSeen = new Map<string, number>();
  readonly #rss: Gauge;
  readonly #heap: Gauge;
  readonly #heapUsed: Gauge;
  readonly #cpu: Counter;
  readonly #leader: Gauge;
  readonly #publishedGeneration: Gauge;
  readonly #lastPublish: Gauge;
  readonly #publishedImages: Gauge;
  readonly #publishedShards: Gauge;
  readonly #appliedGeneration: Gauge;
  readonly #setComplete: Gauge;
  readonly #lastComplete: Gauge;
  readonly #warmSeconds: Histogram<"outcome">;
  readonly #ledgerSkips: Counter;
  readonly #ledgerDrift: Gauge;
  readonly #ledgerTags: Gauge;
  readonly #ledgerFallback: Gauge;
  readonly #ledgerOldestCheck: Gauge;

  constructor(options: DaemonMetricsOptions = {}) {
    const registers = [this.#registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name: METRIC_PREFIX + name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name: METRIC_PREFIX + name, help, labelNames, registers });

    this.#desired = gauge("desired_images", "Distinct image references desired cluster-wide.");
    this.#present = gauge(
      "present_images",
      "Desired images made present on this node since they became desired.",
    );
    this.#images = gauge("images", "Desired images on this node by puller state.", ["state"]);
    this.#rejected = gauge(
      "rejected_images",
      "Image references rejected as unpullable as written (templated, invalid).",
    );
    this.#ready = gauge("ready", "1 while the daemon is ready (as GET /readyz), else 0.");
    this.#failing = gauge(
      "failing_images",
      "Desired images whose last pull attempt on this node failed.",
    );
    this.#imageFailures = gauge(
      "image_consecutive_failures",
      `Consecutive failed pulls of each failing image on this node (at most ${MAX_FAILING_IMAGE_SERIES} images, most failures first).`,
      ["image"],
    );
    this.#pulls = counter("pulls_total", "Pull attempts settled on this node, by result.", [
      "result",
    ]);
    this.#duration = new Histogram({
      name: METRIC_PREFIX + "pull_duration_seconds",
      help: "Duration of settled pull attempts (cancelled ones excluded), by result.",
      labelNames: ["result"],
      buckets: PULL_DURATION_BUCKETS,
      registers,
    });
    this.#inFlight = gauge("pulls_in_flight", "Pull attempts running on this node.");
    this.#failures = counter("pull_failures_total", "Failed pull attempts, by reason.", [
      "reason",
    ]);
    this.#sourceObjects = gauge("source_objects", "Objects contributing images, by source.", [
      "source",
    ]);
    this.#sourceInvalid = gauge(
      "source_invalid_objects",
      "Objects whose image data is in error, by source.",
      ["source"],
    );
    this.#sourceAvailable = gauge(
      "source_available",
      "1 while the source's API is present and allowed, else 0.",
      ["source"],
    );
    this.#sourceSynced = gauge(
      "source_synced",
      "1 once the source has completed its first list, else 0.",
      ["source"],
    );
    this.#sourceActivity = gauge(
      "source_last_activity_timestamp_seconds",
      "When the source last heard from its API (list, event or bookmark).",
      ["source"],
    );
    this.#watchRestarts = counter(
      "watch_restarts_total",
      "Watch restarts after an error or expiry, by source.",
      ["source"],
    );
    this.#ledgerSkips = counter(
      "ledger_skips_total",
      "Node: resync checks of a tag answered by the tag ledger (the node held its digest; no pull).",
    );
    this.#ledgerDrift = gauge(
      "ledger_drift_images",
      "Node: tags whose copy on this node does not have the ledger's digest (yet).",
    );
    this.#ledgerTags = gauge("ledger_tags", "Aggregator: tags in the tag ledger.");
    this.#ledgerFallback = gauge(
      "ledger_fallback_tags",
      "Aggregator: tags whose canaries keep failing, pulled by every node itself.",
    );
    this.#ledgerOldestCheck = gauge(
      "ledger_oldest_check_timestamp_seconds",
      "Aggregator: the oldest last check of any tag with a digest in the ledger " +
        "(per tag in /status: a label per tag would be a series per desired image).",
    );
    this.#leader = gauge(
      "leader",
      "Aggregator: 1 while this replica holds the leader election Lease and may write, else 0.",
    );
    this.#publishedGeneration = gauge(
      "published_generation",
      "Aggregator: generation of the complete published set it sees.",
    );
    this.#lastPublish = gauge(
      "last_publish_timestamp_seconds",
      "Aggregator: when this replica last wrote a generation of the published set.",
    );
    this.#publishedImages = gauge("published_images", "Aggregator: images in the published set.");
    this.#publishedShards = gauge(
      "published_shards",
      "Aggregator: ConfigMaps (shards) of the published set.",
    );
    this.#appliedGeneration = gauge(
      "published_set_applied_generation",
      "Node: generation of the published set this node pulls.",
    );
    this.#setComplete = gauge(
      "published_set_complete",
      "Node: 1 while the newest published set is complete and applied, 0 while the node keeps its last complete set (missing, incomplete or unreadable).",
    );
    this.#lastComplete = gauge(
      "published_set_seen_timestamp_seconds",
      "Node: when a complete published set was last seen (the scrape time while complete).",
    );
    this.#warmSeconds = new Histogram({
      name: METRIC_PREFIX + "node_warm_duration_seconds",
      help:
        "Node: time from the Node's registration until it opened for work, by outcome (warm, or timeout: opened by --warm-timeout).",
      labelNames: ["outcome"],
      buckets: [5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    });
    // The standard process and runtime names, unprefixed (see the module doc).
    const standard = (name: string, help: string) => new Gauge({ name, help, registers });
    this.#rss = standard("process_resident_memory_bytes", "Resident memory size in bytes.");
    this.#heap = standard("deno_heap_size_total_bytes", "V8 heap size in bytes (allocated).");
    this.#heapUsed = standard("deno_heap_size_used_bytes", "V8 heap in use in bytes.");
    this.#cpu = new Counter({
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      registers,
    });
    standard("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
      .set(Math.round(performance.timeOrigin) / 1000);
    gauge("build_info", "Always 1; labels carry the daemon and Deno versions.", [
      "version",
      "deno",
    ]).set({ version: options.version ?? VERSION, deno: Deno.version.deno }, 1);

    for (const result of ["success", "failure", "cancelled"] as const) {
      this.#pulls.inc({ result }, 0);
    }
    this.#duration.zero({ result: "success" });
    this.#duration.zero({ result: "failure" });
    this.#warmSeconds.zero({ outcome: "warm" });
    this.#warmSeconds.zero({ outcome: "timeout" });
    for (const reason of Object.keys(FAILURE_REASONS)) this.#failures.inc({ reason }, 0);
    this.#inFlight.set(0);
    this.#ready.set(0);
    this.#failing.set(0);
  }

  /** The `Content-Type` of {@linkcode render}'s output. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Counts an attempt that started (the puller's `onPullStarted` hook). */
  pullStarted(_ref: string): void {
    this.#inFlight.inc();
  }

  /** Counts a tag check answered by the ledger (the puller's `onLedgerSkip` hook). */
  ledgerSkip(_ref: string): void {
    this.#ledgerSkips.inc();
  }

  /** Counts an attempt that settled (the puller's `onPullFinished` hook). */
  pullFinished(_ref: string, result: PullFinished): void {
    this.#inFlight.dec();
    const label: PullResultLabel = result.ok
      ? "success"
      : result.cancelled
      ? "cancelled"
      : "failure";
    this.#pulls.inc({ result: label });
    if (label === "cancelled") return;
    this.#duration.observe({ result: label }, result.durationMs / 1000);
    if (label === "failure") {
      this.#failures.inc({ reason: result.error?.reason ?? "RuntimeError" });
    }
  }

  /** Observes a node's time to warm (the warm-up's `onWarm` hook). */
  nodeWarm(seconds: number, outcome: "warm" | "timeout"): void {
    this.#warmSeconds.observe({ outcome }, seconds);
  }

  /** Sets `ready` from the readiness report (`GET /readyz`); call it on each scrape. */
  setReady(ready: boolean): void {
    this.#ready.set(ready ? 1 : 0);
  }

  /** Refreshes the gauges from the parts' current status. Cheap: call it on each scrape. */
  observe(parts: ObservedParts): void {
    this.#observeSplit(parts);
    const images = parts.puller?.status() ?? [];
    const byState = new Map<ImageState, number>(IMAGE_STATES.map((s) => [s, 0]));
    let present = 0;
    const failing: ImageStatus[] = [];
    let drift = 0;
    for (const image of images) {
      byState.set(image.state, (byState.get(image.state) ?? 0) + 1);
      if (isPresent(image)) present++;
      if (image.ledgerDrift) drift++;
      if (image.consecutiveFailures > 0) failing.push(image);
    }
    failing.sort((a, b) =>
      b.consecutiveFailures - a.consecutiveFailures || (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0)
    );
    this.#failing.set(failing.length);
    // Rebuilt on every scrape: an image that recovered or left the desired
    // set loses its series at once.
    this.#imageFailures.reset();
    for (const image of failing.slice(0, MAX_FAILING_IMAGE_SERIES)) {
      this.#imageFailures.set({ image: image.ref }, image.consecutiveFailures);
    }
    for (const [state, count] of byState) this.#images.set({ state }, count);
    this.#present.set(present);
    this.#ledgerDrift.set(drift);
    this.#desired.set(parts.desired.size);
    this.#rejected.set(parts.desired.rejectedCount?.() ?? parts.desired.rejections().length);
    this.#inFlight.set(parts.puller?.inFlight() ?? 0);

    for (const source of parts.sources) {
      const status = source.status();
      const labels = { source: status.name };
      this.#sourceObjects.set(labels, status.objects);
      this.#sourceInvalid.set(labels, status.errors);
      this.#sourceAvailable.set(labels, status.available ? 1 : 0);
      this.#sourceSynced.set(labels, status.synced ? 1 : 0);
      if (status.lastActivity !== undefined) {
        this.#sourceActivity.set(labels, status.lastActivity / 1000);
      }
      // The source reports a running total; a counter moves by the difference
      // (a smaller total means the source was replaced: count from zero).
      const seen = this.#restartsSeen.get(status.name) ?? 0;
      const delta = status.restarts >= seen ? status.restarts - seen : status.restarts;
      this.#watchRestarts.inc(labels, delta);
      this.#restartsSeen.set(status.name, status.restarts);
    }
  }

  #observeSplit(parts: ObservedParts): void {
    const election = parts.election?.status();
    if (election) this.#leader.set(election.leader ? 1 : 0);
    const publisher = parts.publisher?.status();
    if (publisher) {
      if (publisher.generation !== undefined) {
        this.#publishedGeneration.set(publisher.generation);
      }
      if (publisher.lastPublish !== undefined) this.#lastPublish.set(publisher.lastPublish / 1000);
      this.#publishedImages.set(publisher.images);
      this.#publishedShards.set(publisher.shards);
    }
    const ledger = parts.ledger?.entries();
    if (ledger) {
      this.#ledgerTags.set(ledger.length);
      this.#ledgerFallback.set(ledger.filter((e) => e.fallback).length);
      const checks = ledger.flatMap((e) => e.checkedAt === undefined ? [] : [e.checkedAt]);
      if (checks.length > 0) this.#ledgerOldestCheck.set(Math.min(...checks) / 1000);
    }
    const set = parts.publishedSet?.publishedSet();
    if (set) {
      if (set.generation !== undefined) this.#appliedGeneration.set(set.generation);
      this.#setComplete.set(set.state === "current" ? 1 : 0);
      if (set.lastComplete !== undefined) this.#lastComplete.set(set.lastComplete / 1000);
    }
  }

  /** The metrics in Prometheus text format; refreshes the process metrics first. */
  render(): Promise<string> {
    const memory = Deno.memoryUsage();
    this.#rss.set(memory.rss);
    this.#heap.set(memory.heapTotal);
    this.#heapUsed.set(memory.heapUsed);
    const cpu = process.cpuUsage();
    this.#cpu.reset();
    this.#cpu.inc((cpu.user + cpu.system) / 1e6);
    return this.#registry.metrics();
  }
}
