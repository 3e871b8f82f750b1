/**
 * The operations HTTP server: `/healthz`, `/readyz` and `/metrics` on
 * `--metrics-bind-address` (where the kubelet and Prometheus reach them), and
 * `/status` on `--status-bind-address` (loopback by default).
 *
 * @module
 */
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";
import { HealthCheck, readinessReport } from "./health.ts";
import type { DaemonMetrics } from "./metrics.ts";
import type { ServedParts } from "./parts.ts";
import { type BoundedServerOptions, serveBounded, type ServerStats } from "./http_server.ts";
import { StatusView } from "./status.ts";

/** The endpoints {@linkcode serveOperations} can serve. */
export type OperationsPath = "/healthz" | "/readyz" | "/metrics" | "/status";

/** Every endpoint. */
export const ALL_PATHS: readonly OperationsPath[] = ["/healthz", "/readyz", "/metrics", "/status"];

/** Where one operations server listens, for which flag, serving which paths. */
export interface OperationsListener {
  readonly flag: "--metrics-bind-address" | "--status-bind-address";
  readonly address: { readonly hostname: string; readonly port: number };
  readonly paths: readonly OperationsPath[];
}

/**
 * The operations servers to start: /metrics, /healthz and /readyz where
 * Prometheus and the kubelet reach them; /status, which names every tenant's
 * objects, on its own address (loopback by default: `kubectl port-forward`
 * reaches it, the pod network does not). The same address for both serves
 * all four on one port; an address left out (port 0 or empty) serves
 * nothing. Pure.
 */
export function operationsListeners(
  metricsAt: { hostname: string; port: number } | undefined,
  statusAt: { hostname: string; port: number } | undefined,
): OperationsListener[] {
  const same = metricsAt !== undefined && statusAt !== undefined &&
    metricsAt.hostname === statusAt.hostname && metricsAt.port === statusAt.port;
  const listeners: OperationsListener[] = [];
  if (metricsAt) {
    listeners.push({
      flag: "--metrics-bind-address",
      address: metricsAt,
      paths: same ? ALL_PATHS : ["/healthz", "/readyz", "/metrics"],
    });
  }
  if (statusAt && !same) {
    listeners.push({ flag: "--status-bind-address", address: statusAt, paths: ["/status"] });
  }
  return listeners;
}

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
  /** The endpoints served; others answer 404. @default {ALL_PATHS} */
  paths?: readonly OperationsPath[];
  /** Connection bounds (timeouts on real time unless a clock is given here). */
  connections?: Pick<
    BoundedServerOptions,
    | "clock"
    | "headerTimeoutMs"
    | "writeTimeoutMs"
    | "maxConnections"
    | "maxConnectionsPerClient"
    | "maxHeadBytes"
  >;
}

/** A running operations server. */
export interface OperationsServer {
  /** The port actually bound. */
  readonly port: number;
  /** Resolves once the server has stopped after the signal aborted. */
  readonly finished: Promise<void>;
  /** Connection counters. */
  stats(): ServerStats;
  /** How often the `/status` image list was built. */
  statusBuilds(): number;
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
 * Serves the operations endpoints (those in `paths`) until `signal` aborts:
 *
 * - `GET /healthz`: 200 `ok`, or 503 `{"problems": [...]}` when a loop looks
 *   wedged (see {@linkcode HealthCheck}).
 * - `GET /readyz`: 200 `ok` once every source has synced and the puller
 *   runs, else 503 `{"notReady": [...]}`.
 * - `GET /metrics`: Prometheus text format.
 * - `GET /status`: this node's images (paged: `?offset=&limit=`), sources and
 *   rejected references as JSON, bounded in size (see `status.ts`); 503
 *   while the daemon starts.
 *
 * Other paths get 404; other methods 405. Connections are bounded (see
 * {@linkcode serveBounded}).
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
  const paths = new Set<string>(options.paths ?? ALL_PATHS);
  const statusView = new StatusView();

  const handle = async (request: Request): Promise<Response> => {
    const { pathname, searchParams } = new URL(request.url);
    if (!paths.has(pathname)) return text(404, "not found\n");
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
        const body = statusView.render(parts, {
          node: options.node,
          ready: parts.ready(),
          params: searchParams,
        });
        return new Response(body, {
          headers: { "content-type": "application/json", ...NO_STORE },
        });
      }
    }
  };

  const server = serveBounded({
    hostname: options.hostname,
    port: options.port,
    signal,
    log,
    ...options.connections,
    handler: async (request) => {
      try {
        return await handle(request);
      } catch (error) {
        log.error("Operations request failed", { error });
        return text(500, "internal error\n");
      }
    },
  });
  const port = server.port;
  log.info("Operations server listening", {
    hostname: options.hostname,
    port,
    paths: [...paths],
  });
  const finished = server.finished.then(() => log.debug("Operations server stopped", { port }));
  return { port, finished, stats: server.stats, statusBuilds: () => statusView.builds };
}
