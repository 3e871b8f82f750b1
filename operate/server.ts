/**
 * The operations HTTP server: `/healthz`, `/readyz`, `/metrics` and
 * `/status` on `--metrics-bind-address`.
 *
 * @module
 */
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { HealthCheck, readinessReport } from "./health.ts";
import type { DaemonMetrics } from "./metrics.ts";
import type { ObservedParts, ServedParts } from "./parts.ts";

/** Options for {@linkcode serveOperations}. */
export interface OperationsServerOptions {
  /** Address to bind, such as `0.0.0.0`. */
  hostname: string;
  /** Port to bind; `0` picks a free one (see {@linkcode OperationsServer.port}). */
  port: number;
  /** The daemon's parts once they exist; `undefined` while it starts. */
  parts: () => ServedParts | undefined;
  /** The metrics to serve; refreshed from the parts on each scrape. */
  metrics: DaemonMetrics;
  /** Logger. */
  log: Logger;
  /** The node, reported by `/status`. */
  node?: string;
  /** Time source of the health check. @default {realClock} */
  clock?: Clock;
  /** See {@linkcode HealthCheckOptions.stallMs}. @default {DEFAULT_STALL_MS} */
  stallMs?: number;
  /** See {@linkcode HealthCheckOptions.pullTimeoutMs}. */
  pullTimeoutMs?: number;
  /** Stops the server. */
  signal: AbortSignal;
}

/** A running operations server. */
export interface OperationsServer {
  /** The port actually bound. */
  readonly port: number;
  /** Resolves once the server has stopped after the signal aborted. */
  readonly finished: Promise<void>;
}

/** JSON view of one image on `/status`. */
export interface ImageReport {
  image: string;
  state: string;
  attempts: number;
  consecutiveFailures: number;
  lastError?: string;
  lastErrorReason?: string;
  lastAttempt?: string;
  lastSuccess?: string;
  digest?: string;
  nextAttempt?: string;
  permanent?: boolean;
  origins: readonly string[];
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/** Builds the `/status` document (undefined fields are dropped by JSON). */
function statusDocument(parts: ObservedParts, node: string | undefined, ready: boolean) {
  const images: ImageReport[] = (parts.puller?.status() ?? []).map((s) => ({
    image: s.ref,
    state: s.state,
    attempts: s.attempts,
    consecutiveFailures: s.consecutiveFailures,
    lastError: s.lastError,
    lastErrorReason: s.lastErrorReason,
    lastAttempt: iso(s.lastAttempt),
    lastSuccess: iso(s.lastSuccess),
    digest: s.digest,
    nextAttempt: iso(s.nextAttempt),
    permanent: s.permanent,
    origins: parts.desired.originsOf(s.ref),
  }));
  return {
    node,
    ready,
    desired: parts.desired.size,
    inFlight: parts.puller?.inFlight() ?? 0,
    election: parts.election?.status(),
    publisher: parts.publisher?.status(),
    publishedSet: parts.publishedSet?.publishedSet(),
    images,
    sources: parts.sources.map((source) => {
      const s = source.status();
      return { ...s, lastActivity: iso(s.lastActivity) };
    }),
    watches: (parts.watches ?? []).map((watch) => {
      const s = watch.status();
      return { ...s, lastActivity: iso(s.lastActivity) };
    }),
    rejected: parts.desired.rejections().map(({ origin, input, reason }) => ({
      origin,
      input,
      reason,
    })),
  };
}

const NO_STORE = { "cache-control": "no-store" };

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...NO_STORE, ...headers },
  });
}

function json(status: number, body: unknown): Response {
  return Response.json(body, { status, headers: NO_STORE });
}

/**
 * Serves the operations endpoints until `signal` aborts:
 *
 * - `GET /healthz`: 200 `ok`, or 503 `{"problems": [...]}` when a loop looks
 *   wedged (see {@linkcode HealthCheck}).
 * - `GET /readyz`: 200 `ok` once every source has synced and the puller
 *   runs, else 503 `{"notReady": [...]}`.
 * - `GET /metrics`: Prometheus text format.
 * - `GET /status`: this node's images, sources and rejected references as JSON
 *   (503 while the daemon starts).
 *
 * Other paths get 404; other methods 405.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function serveOperations(options: OperationsServerOptions): OperationsServer {
  const { metrics, log, signal } = options;
  const clock = options.clock ?? realClock;
  const health = new HealthCheck({
    stallMs: options.stallMs,
    pullTimeoutMs: options.pullTimeoutMs,
  });

  let healthy = true;

  const handle = async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    const known = ["/healthz", "/readyz", "/metrics", "/status"].includes(pathname);
    if (!known) return text(404, "not found\n");
    if (request.method !== "GET") return text(405, "method not allowed\n", { allow: "GET" });
    const parts = options.parts();
    switch (pathname) {
      case "/healthz": {
        if (parts === undefined) return text(200, "ok\n");
        const report = health.report(parts, clock.now());
        // Probes come every few seconds: log the change, not every probe.
        if (report.ok !== healthy) {
          healthy = report.ok;
          if (healthy) log.info("Health check passes again");
          else log.warn("Health check failed", { problems: report.problems });
        }
        if (report.ok) return text(200, "ok\n");
        return json(503, { problems: report.problems });
      }
      case "/readyz": {
        const report = readinessReport(parts);
        if (!report.ready) {
          return json(503, {
            notReady: report.notReady,
            ...(report.warnings ? { warnings: report.warnings } : {}),
          });
        }
        return text(
          200,
          ["ok", ...(report.warnings ?? []).map((w) => `warning: ${w}`)].join("\n") + "\n",
        );
      }
      case "/metrics": {
        if (parts !== undefined) metrics.observe(parts);
        metrics.setReady(readinessReport(parts).ready);
        return new Response(await metrics.render(), {
          headers: { "content-type": metrics.contentType, ...NO_STORE },
        });
      }
      default: {
        if (parts === undefined) return json(503, { notReady: ["The daemon is starting"] });
        return json(200, statusDocument(parts, options.node, parts.ready()));
      }
    }
  };

  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    signal,
    onListen: () => {},
    onError: (error) => {
      log.error("Operations request failed", { error });
      return text(500, "internal error\n");
    },
  }, handle);
  const port = server.addr.port;
  log.info("Operations server listening", { hostname: options.hostname, port });
  const finished = server.finished.then(() => log.debug("Operations server stopped", { port }));
  return { port, finished };
}
