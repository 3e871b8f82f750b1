/**
 * Liveness and readiness of a running daemon, judged from status snapshots.
 *
 * @module
 */
import { formatDuration } from "../config/duration.ts";
import type { ImageStatus } from "../puller/node_puller.ts";
import type { WatchStatus } from "../kube/reflector.ts";
import type { ObservedParts, ServedParts } from "./parts.ts";

/**
 * Default of {@linkcode HealthCheckOptions.stallMs}: 15 minutes.
 *
 * A real API server sends a watch bookmark about every minute, but older ones
 * send one only just before a watch ends, and the reflector's watches last
 * 300–600 s (plus a 30 s client margin and up to 30 s of backoff). Fifteen
 * minutes exceeds the longest quiet gap of either, so a healthy but idle
 * watch never trips it, and a wedged daemon is restarted within a quarter of
 * an hour.
 */
export const DEFAULT_STALL_MS = 15 * 60_000;

/** The answer of {@linkcode HealthCheck.report}. */
export interface HealthReport {
  /** False when at least one loop looks wedged. */
  ok: boolean;
  /** One sentence per wedged loop. */
  problems: string[];
}

/** The answer of {@linkcode readinessReport}. */
export interface ReadinessReport {
  /** True once every source has synced and the puller runs. */
  ready: boolean;
  /** One sentence per part that is not ready yet. */
  notReady: string[];
  /** Ready, but worth saying: such as a node keeping its last complete published set. */
  warnings?: string[];
}

/** Options for {@linkcode HealthCheck}. */
export interface HealthCheckOptions {
  /** How long a loop may make no visible progress before it counts as wedged. @default {DEFAULT_STALL_MS} */
  stallMs?: number;
  /**
   * The puller's `--pull-timeout`. When given, an attempt still running
   * `stallMs` past it counts as wedged (its abort did not settle it).
   */
  pullTimeoutMs?: number;
}

interface SourceProgress {
  restarts: number;
  at: number;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A source with nothing to watch (the static source): synced, never active, never restarted. */
function isIdleByDesign(status: WatchStatus): boolean {
  return status.synced && status.lastActivity === undefined && status.restarts === 0;
}

/**
 * Decides whether the daemon's loops are alive, for `/healthz`.
 *
 * It remembers what it saw between calls, because a snapshot alone cannot
 * tell a wedged loop from a waiting one:
 *
 * - A **source** is wedged when it has neither heard from its API (list,
 *   event or bookmark: `lastActivity`) nor restarted its watch (`restarts`
 *   changing between calls) for `stallMs`. A watch retrying against an
 *   unreachable or forbidding API restarts at least every 30 s, so an API
 *   outage does not restart every daemon in the cluster; only a watch that
 *   hangs silently does.
 * - The **pull queue** is stuck when nothing is in flight, no attempt has
 *   started for `stallMs`, and some image has been waiting to start for
 *   `stallMs`: its `nextAttempt` (retry or resync) passed that long ago, or
 *   it has been `pending` with no `nextAttempt` (queued) that long. An image
 *   backing off has a `nextAttempt` in the future, and images waiting behind
 *   a full concurrency limit have pulls in flight, so neither trips it.
 * - With {@linkcode HealthCheckOptions.pullTimeoutMs}, an attempt still
 *   `pulling` `stallMs` after its timeout is wedged too.
 *
 * The first sighting of a source or a queued image counts as progress, so a
 * freshly started check never fails at once.
 */
export class HealthCheck {
  readonly #stallMs: number;
  readonly #pullTimeoutMs?: number;
  readonly #sources = new Map<string, SourceProgress>();
  readonly #queuedSince = new Map<string, number>();

  /** @throws {RangeError} when `stallMs` is not positive. */
  constructor(options: HealthCheckOptions = {}) {
    const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
    if (!(stallMs > 0)) {
      throw new RangeError(`Cannot create health check with stallMs ${stallMs}: must be > 0`);
    }
    this.#stallMs = stallMs;
    this.#pullTimeoutMs = options.pullTimeoutMs;
  }

  /** Judges the parts at time `now` (epoch ms) and remembers what it saw. */
  report(parts: ObservedParts, now: number): HealthReport {
    const problems = [
      ...this.#sourceProblems(
        [...parts.sources, ...(parts.watches ?? [])].map((s) => s.status()),
        now,
      ),
      ...(parts.puller
        ? this.#pullerProblems(parts.puller.status(), parts.puller.inFlight(), now)
        : []),
    ];
    return { ok: problems.length === 0, problems };
  }

  #sourceProblems(statuses: readonly WatchStatus[], now: number): string[] {
    const problems: string[] = [];
    for (const status of statuses) {
      if (isIdleByDesign(status)) continue;
      const seen = this.#sources.get(status.name);
      const progress = seen === undefined || seen.restarts !== status.restarts
        ? { restarts: status.restarts, at: now }
        : seen;
      this.#sources.set(status.name, progress);
      const last = Math.max(progress.at, status.lastActivity ?? -Infinity);
      if (now - last <= this.#stallMs) continue;
      const heard = status.lastActivity === undefined
        ? "has never heard from its API"
        : `has not heard from its API since ${iso(status.lastActivity)}`;
      problems.push(
        `Source "${status.name}" ${heard} and has not restarted its watch for ${
          formatDuration(now - last)
        }: its watch looks wedged`,
      );
    }
    return problems;
  }

  #pullerProblems(images: readonly ImageStatus[], inFlight: number, now: number): string[] {
    const problems: string[] = [];
    const queued = new Set<string>();
    let lastStart = -Infinity;
    let oldest: { ref: string; since: number } | undefined;
    let overdue = 0;
    for (const image of images) {
      if (image.lastAttempt !== undefined) lastStart = Math.max(lastStart, image.lastAttempt);
      if (image.state === "pulling") {
        const limit = this.#pullTimeoutMs;
        if (limit !== undefined && image.lastAttempt !== undefined) {
          const running = now - image.lastAttempt;
          if (running > limit + this.#stallMs) {
            problems.push(
              `Pull of "${image.ref}" has run for ${formatDuration(running)}, ${
                formatDuration(running - limit)
              } past its timeout`,
            );
          }
        }
        continue;
      }
      let since = image.nextAttempt;
      if (since === undefined && image.state === "pending") {
        since = this.#queuedSince.get(image.ref) ?? now;
        queued.add(image.ref);
        this.#queuedSince.set(image.ref, since);
      }
      if (since === undefined || now - since <= this.#stallMs) continue;
      overdue++;
      if (oldest === undefined || since < oldest.since) oldest = { ref: image.ref, since };
    }
    for (const ref of this.#queuedSince.keys()) {
      if (!queued.has(ref)) this.#queuedSince.delete(ref);
    }
    if (oldest !== undefined && inFlight === 0 && now - lastStart > this.#stallMs) {
      problems.push(
        `Pull queue is stuck: ${overdue} image(s) waiting for more than ${
          formatDuration(this.#stallMs)
        } with no pull in flight (oldest "${oldest.ref}", due since ${iso(oldest.since)})`,
      );
    }
    return problems;
  }
}

/**
 * Decides whether the daemon is ready, for `/readyz`: every source has
 * synced (an unavailable source counts as synced: it has nothing to wait
 * for) and the puller runs. `undefined` parts mean the daemon is starting.
 */
export function readinessReport(parts: ServedParts | undefined): ReadinessReport {
  if (parts === undefined) {
    return { ready: false, notReady: ["The daemon is starting"] };
  }
  const notReady: string[] = [];
  for (const source of parts.sources) {
    const status = source.status();
    if (!status.synced) notReady.push(`Source "${status.name}" has not synced`);
  }
  const waiting = parts.waiting?.();
  if (waiting !== undefined) notReady.push(waiting);
  if (!parts.ready() && parts.puller) notReady.push("The node puller is not running");
  const warnings: string[] = [];
  const published = parts.publishedSet?.publishedSet();
  if (published && published.state !== "current" && published.detail) {
    warnings.push(`Published set ${published.state}: ${published.detail}`);
  }
  // A warming node is no reason to restart or unready the daemon: detail only.
  const warm = parts.warmUp?.status();
  if (warm && !warm.warm) {
    const taint = warm.taintState === "waiting"
      ? `; taint ${warm.taint} stays until warm${
        warm.deadline === undefined ? "" : ` or ${new Date(warm.deadline).toISOString()}`
      }`
      : "";
    warnings.push(`Warming: ${warm.condition.message}${taint}`);
  }
  return {
    ready: notReady.length === 0,
    notReady,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
