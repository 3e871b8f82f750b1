/**
 * A small HTTP/1.1 server for the operations endpoints, with the bounds
 * `Deno.serve` lacks: it keeps an idle or half-open connection forever
 * (measured on Deno 2.9.6: a connection that sends nothing, or half a request,
 * was still open after 70 s), so anyone who can reach the port can exhaust the
 * daemon's file descriptors and memory.
 *
 * Here every connection carries one request: the request head must arrive
 * within `headerTimeoutMs` and fit in `maxHeadBytes`, the answer must be
 * taken within `writeTimeoutMs`, then the connection is closed
 * (`connection: close`; Prometheus and the kubelet open one per scrape or
 * probe anyway). At most `maxConnections` are open at once, and at most
 * `maxConnectionsPerClient` from one address; more are closed at accept.
 * Request bodies are never read.
 *
 * @module
 */
import { type Clock, realClock } from "../time/clock.ts";
import type { Logger } from "../log/logger.ts";

/** Default of {@linkcode BoundedServerOptions.headerTimeoutMs}: 10 s, as Go servers commonly use. */
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
/** Default of {@linkcode BoundedServerOptions.writeTimeoutMs}. */
export const DEFAULT_WRITE_TIMEOUT_MS = 10_000;
/**
 * Default of {@linkcode BoundedServerOptions.maxConnections}: a scraper, the
 * kubelet's probes and an operator's port-forward need a handful; 256 open
 * connections cost about 2 MiB.
 */
export const DEFAULT_MAX_CONNECTIONS = 256;
/**
 * Default of {@linkcode BoundedServerOptions.maxConnectionsPerClient}. Why a
 * limit per client address: one pod holding every slot would starve the
 * kubelet's probes, and the kubelet would restart a healthy daemon.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 8;
/** Default of {@linkcode BoundedServerOptions.maxHeadBytes}: ample for a GET with headers. */
export const DEFAULT_MAX_HEAD_BYTES = 8 * 1024;

/** Options for {@linkcode serveBounded}. */
export interface BoundedServerOptions {
  hostname: string;
  /** `0` picks a free port. */
  port: number;
  handler(request: Request): Response | Promise<Response>;
  signal: AbortSignal;
  log: Logger;
  /** Time source of the timeouts. @default {realClock} */
  clock?: Clock;
  /** @default {DEFAULT_HEADER_TIMEOUT_MS} */
  headerTimeoutMs?: number;
  /** @default {DEFAULT_WRITE_TIMEOUT_MS} */
  writeTimeoutMs?: number;
  /** @default {DEFAULT_MAX_CONNECTIONS} */
  maxConnections?: number;
  /** Open connections allowed from one remote address. @default {DEFAULT_MAX_CONNECTIONS_PER_CLIENT} */
  maxConnectionsPerClient?: number;
  /** @default {DEFAULT_MAX_HEAD_BYTES} */
  maxHeadBytes?: number;
}

/** Counters of a {@linkcode BoundedServer}, for tests and logs. */
export interface ServerStats {
  accepted: number;
  /** Open now. */
  open: number;
  /** The most open at once. */
  maxOpen: number;
  /** Closed at accept because `maxConnections` were open, or that client's share. */
  refused: number;
  /** Closed because the head or the answer did not go through in time. */
  timedOut: number;
  /** Requests handed to the handler. */
  handled: number;
}

/** A running {@linkcode serveBounded} server. */
export interface BoundedServer {
  readonly port: number;
  readonly finished: Promise<void>;
  stats(): ServerStats;
}

const encoder = new TextEncoder();
const HEAD_END = encoder.encode("\r\n\r\n");

function indexOfHeadEnd(buffer: Uint8Array, length: number): number {
  outer: for (let i = 0; i + 4 <= length; i++) {
    for (let j = 0; j < 4; j++) if (buffer[i + j] !== HEAD_END[j]) continue outer;
    return i;
  }
  return -1;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/**
 * Serves `handler` until `signal` aborts, with the bounds described in the
 * module documentation.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function serveBounded(options: BoundedServerOptions): BoundedServer {
  const clock = options.clock ?? realClock;
  const headerTimeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const perClient = options.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT;
  const byClient = new Map<string, number>();
  const clientOf = (conn: Deno.Conn) => (conn.remoteAddr as Deno.NetAddr).hostname ?? "";
  const maxHeadBytes = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const stats: ServerStats = {
    accepted: 0,
    open: 0,
    maxOpen: 0,
    refused: 0,
    timedOut: 0,
    handled: 0,
  };
  const connections = new Set<Deno.Conn>();
  const close = (conn: Deno.Conn) => {
    if (!connections.delete(conn)) return;
    stats.open--;
    const client = clientOf(conn);
    const left = (byClient.get(client) ?? 1) - 1;
    if (left > 0) byClient.set(client, left);
    else byClient.delete(client);
    try {
      conn.close();
    } catch {
      // Why absorb: already closed by the peer; nothing is left to free.
    }
  };

  /** Runs `step` with a deadline: past it the connection is closed, which ends the step. */
  const withDeadline = async <T>(conn: Deno.Conn, ms: number, step: () => Promise<T>) => {
    const stop = new AbortController();
    clock.sleep(ms, stop.signal).then(() => {
      stats.timedOut++;
      close(conn);
    }, () => {});
    try {
      return await step();
    } finally {
      stop.abort();
    }
  };

  const readHead = async (conn: Deno.Conn): Promise<string | number | undefined> => {
    const buffer = new Uint8Array(maxHeadBytes);
    let length = 0;
    for (;;) {
      if (length === buffer.length) return 431;
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return undefined;
      length += n;
      const end = indexOfHeadEnd(buffer, length);
      if (end !== -1) return new TextDecoder().decode(buffer.subarray(0, end));
    }
  };

  const respond = async (conn: Deno.Conn, response: Response, head: boolean) => {
    const body = head ? new Uint8Array() : new Uint8Array(await response.arrayBuffer());
    const lines = [`HTTP/1.1 ${response.status} ${REASONS[response.status] ?? "Status"}`];
    response.headers.forEach((value, name) => {
      if (name !== "content-length" && name !== "connection") lines.push(`${name}: ${value}`);
    });
    lines.push(`content-length: ${body.length}`, "connection: close", "", "");
    const bytes = new Uint8Array([...encoder.encode(lines.join("\r\n")), ...body]);
    for (let written = 0; written < bytes.length;) {
      written += await conn.write(bytes.subarray(written));
    }
  };

  const serve = async (conn: Deno.Conn) => {
    try {
      const head = await withDeadline(conn, headerTimeoutMs, () => readHead(conn));
      if (head === undefined || !connections.has(conn)) return;
      let response: Response;
      let method = "GET";
      if (typeof head === "number") {
        response = new Response("request head too large\n", { status: head });
      } else {
        const [requestLine, ...headerLines] = head.split("\r\n");
        const match = requestLine.match(/^([A-Z]{1,16}) (\/\S*) HTTP\/1\.[01]$/);
        const host = headerLines.find((l) => /^host:/i.test(l))?.slice(5).trim() || "localhost";
        let request: Request | undefined;
        try {
          if (match) request = new Request(`http://${host}${match[2]}`, { method: match[1] });
        } catch {
          request = undefined;
        }
        if (request === undefined) response = new Response("bad request\n", { status: 400 });
        else {
          method = request.method;
          stats.handled++;
          response = await options.handler(request);
        }
      }
      if (!connections.has(conn)) return;
      await withDeadline(conn, writeTimeoutMs, () => respond(conn, response, method === "HEAD"));
    } catch (error) {
      // Why absorb: a peer that resets or a closed deadline ends only its own connection.
      if (connections.has(conn)) {
        options.log.debug("Operations connection failed", { error: (error as Error).message });
      }
    } finally {
      close(conn);
    }
  };

  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // The listener was closed: the server stops.
      }
      stats.accepted++;
      const client = clientOf(conn);
      if (connections.size >= maxConnections || (byClient.get(client) ?? 0) >= perClient) {
        // Why refuse rather than queue: a queue is what a flood would grow.
        stats.refused++;
        try {
          conn.close();
        } catch {
          // Already gone.
        }
        continue;
      }
      connections.add(conn);
      byClient.set(client, (byClient.get(client) ?? 0) + 1);
      stats.open++;
      stats.maxOpen = Math.max(stats.maxOpen, stats.open);
      serve(conn);
    }
  })();
  const stop = () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of [...connections]) close(conn);
  };
  if (options.signal.aborted) stop();
  else options.signal.addEventListener("abort", stop, { once: true });
  return { port, finished: accepting, stats: () => ({ ...stats }) };
}
