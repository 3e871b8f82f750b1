/**
 * Where the Kubernetes client's configuration comes from: a kubeconfig file
 * when one is given, otherwise the pod's service account (in-cluster).
 *
 * @module
 */
import { type Cluster, KubeConfig, type User } from "@kubernetes/client-node";

/** The service-account directory mounted into every pod that has a token. */
const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The in-cluster API server host. The service's DNS name, not its IP: the
 * API server's certificate covers this name, and the Deno permission set can
 * name it exactly.
 */
const IN_CLUSTER_HOST = "kubernetes.default.svc";

type CreateDispatcher = (cluster: Cluster | null, agentOptions: Record<string, unknown>) => unknown;

/**
 * Makes `kc` reuse one HTTP connection pool per API server and TLS identity.
 *
 * Why: client-node 2.0.1 builds a new undici Agent, hence a new TCP and TLS
 * connection, for every request (its private `createDispatcher`). Across
 * thousands of daemons that is a TLS handshake on the API server for every
 * list, watch, pod create and delete. The pool is keyed by what the Agent is
 * built from, so a rotated CA or client certificate gets a new pool.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  // The method is private in the typings; it is the one place Agents are made.
  const target = kc as unknown as { createDispatcher: CreateDispatcher };
  const create = target.createDispatcher.bind(kc);
  const pools = new Map<string, unknown>();
  POOLS.set(kc, pools);
  target.createDispatcher = (cluster, agentOptions) => {
    const o = agentOptions;
    const key = JSON.stringify([
      cluster?.server,
      String(o.ca ?? ""),
      String(o.cert ?? ""),
      String(o.key ?? ""),
      String(o.pfx ?? ""),
      o.rejectUnauthorized,
      o.servername,
    ]);
    if (!pools.has(key)) {
      // Bounded: only a rotation adds a key, and old pools are not reused.
      if (pools.size >= 4) pools.delete(pools.keys().next().value!);
      pools.set(key, create(cluster, agentOptions));
    }
    return pools.get(key);
  };
  return kc;
}

/** The pools of each KubeConfig that {@linkcode reuseConnections} made reuse them. */
const POOLS = new WeakMap<KubeConfig, Map<string, unknown>>();

/**
 * Makes `kc`'s next requests open new connections: its pools are dropped,
 * and closed once what runs on them ends (a watch still streaming on one
 * goes on).
 *
 * Why: when the API server restarts, the connections it had are dead, and
 * this runtime may not report that for a connection idle in the pool (see
 * {@linkcode boundRequests}): the next request sent on it waits for its whole
 * bound, 20 to 30 s. A request that failed on its connection is the sign;
 * the requests after it then do not meet the same dead connections.
 */
export function renewConnections(kc: KubeConfig): void {
  const pools = POOLS.get(kc);
  if (!pools) return;
  for (const agent of pools.values()) {
    (agent as { close?: () => Promise<void> }).close?.().catch(() => {});
  }
  pools.clear();
}

/** Error codes of a connection that failed under a request (Node.js and undici). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/**
 * Whether `error` is a request's connection failing (refused, reset,
 * closed, or no answer within the request's bound) rather than an answer
 * of the API server: `fetch failed` and its causes, or
 * {@linkcode RequestTimeoutError}.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof RequestTimeoutError) return true;
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e !== null && typeof e === "object"; depth++) {
    if (e instanceof TypeError && e.message === "fetch failed") return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * `promise`, and when it fails on its connection ({@linkcode isConnectionFailure}),
 * `kc`'s connections renewed first ({@linkcode renewConnections}).
 */
export function renewingOnFailure<T>(kc: KubeConfig, promise: Promise<T>): Promise<T> {
  return promise.catch((error) => {
    if (isConnectionFailure(error)) renewConnections(kc);
    throw error;
  });
}

type DispatcherOptions = { type: string; connect?: Record<string, unknown> };
type CreateDispatcherOptions = (
  cluster: Cluster | null,
  agentOptions: Record<string, unknown>,
) => DispatcherOptions;

/**
 * Makes `kc` speak HTTP/1.1 only, never HTTP/2.
 *
 * Why: client-node 2.0.1's undici (8.x) offers `h2` by ALPN unless told not
 * to, and on this runtime undici's HTTP/2 runs on `node:http2`, whose
 * nghttp2 session aborts the whole process (assertion `stream->closed_next ==
 * NULL` in `find_stream_on_goaway_func`) when a server sends GOAWAY as
 * streams close. kube-apiserver sends GOAWAY on shutdown and, with
 * `--goaway-chance`, at random to rebalance clients: a daemon on HTTP/2 could
 * die of it. Seen here with the fake API server over TLS, which aborted the
 * test process about one run in three. `allowH2: false` in the connect
 * options is what undici's connector reads to offer `http/1.1` alone.
 */
export function speakHttp1(kc: KubeConfig): KubeConfig {
  // The method is private in the typings; createDispatcher builds the Agent from it.
  const target = kc as unknown as { createDispatcherOptions: CreateDispatcherOptions };
  const options = target.createDispatcherOptions.bind(kc);
  target.createDispatcherOptions = (cluster, agentOptions) => {
    const o = options(cluster, agentOptions);
    // Over TLS, "none" would fall back to undici's global dispatcher, which
    // offers h2 too: an Agent of our own with no TLS options instead. Plain
    // HTTP negotiates nothing (undici never starts h2 without TLS).
    if (o.type === "none" && cluster?.server.startsWith("https:")) {
      return { type: "agent", connect: { allowH2: false, keepAlive: true } };
    }
    return o.connect ? { ...o, connect: { ...o.connect, allowH2: false } } : o;
  };
  return kc;
}

/** How long one API request (not a watch) may take. */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * How long a watch may take to start, until its response's headers (an API
 * server sends them as soon as the watch is registered). As long as a write
 * may take ({@linkcode WRITE_TIMEOUT_MS}), for the same reasons.
 */
export const WATCH_START_TIMEOUT_MS = 20_000;

/**
 * How long a write of one object (create, delete, patch, replace) may take.
 * Why shorter than reads: a write answers in milliseconds unless the
 * connection under it died (an API server restarting mid-request, which this
 * runtime may never report, see {@linkcode boundRequests}); every pull waits
 * on its pod's create, so a dead connection should cost a retry sooner than
 * half a minute. Why not much shorter: an overloaded API server queues
 * requests (API Priority and Fairness) for seconds, and a client that gives
 * up early only adds retries to the queue.
 */
export const WRITE_TIMEOUT_MS = 20_000;

/** Client method names that write one object (or a collection) rather than read. */
const WRITE_METHOD = /^(create|delete|patch|replace)/;

/** An API request that did not finish in time. */
export class RequestTimeoutError extends Error {
  override readonly name = "RequestTimeoutError";
}

/**
 * Bounds every API request `kc` makes, except watches, by `timeoutMs`, and
 * every write by `writeTimeoutMs` if that is shorter.
 *
 * Why two layers: client-node's calls take no signal, so each request gets
 * one (it ends a request whose response has not started). But on this
 * runtime a response whose body is cut or stalls mid-way (an API server that
 * dies mid-answer, a proxy dropping the connection) is never reported, and
 * aborting does not end it either (measured: client-node 2.0.1's undici under
 * Deno 2.9.6). So every method of an API client made from `kc` also races its
 * result against a timer: the call fails with {@linkcode RequestTimeoutError}
 * and the daemon carries on; the dead socket is left behind, and `kc`'s
 * connections are renewed ({@linkcode renewConnections}), as they are when a
 * call fails on its connection. Watches set their own signal, are bounded
 * until they start by {@linkcode WATCH_START_TIMEOUT_MS} (kube/listers.ts)
 * and then ended by the reflector's watchdog.
 */
export function boundRequests(
  kc: KubeConfig,
  timeoutMs = REQUEST_TIMEOUT_MS,
  writeTimeoutMs = WRITE_TIMEOUT_MS,
): KubeConfig {
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await apply(context);
    if (context.getSignal() === undefined) context.setSignal(AbortSignal.timeout(timeoutMs));
  };
  const make = kc.makeApiClient.bind(kc);
  kc.makeApiClient = ((apiClass: Parameters<typeof make>[0]) => {
    const api = make(apiClass) as object;
    return new Proxy(api, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
          const name = String(property);
          const bound = WRITE_METHOD.test(name) ? Math.min(timeoutMs, writeTimeoutMs) : timeoutMs;
          return result instanceof Promise
            ? renewingOnFailure(kc, withTimeout(result, bound, name))
            : result;
        };
      },
    });
  }) as typeof kc.makeApiClient;
  return kc;
}

/**
 * Races `promise` against a timer of `ms`: rejects with
 * {@linkcode RequestTimeoutError} naming `what` when the timer wins.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RequestTimeoutError(`API request ${what} timed out after ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Options for {@linkcode loadKubeConfig}. */
export interface KubeConfigOptions {
  /** Path of a kubeconfig file (`--kubeconfig` or `KUBECONFIG`). */
  kubeconfig?: string;
  /** Reads an environment variable. */
  env?: (name: string) => string | undefined;
  /** Where the service account is mounted. @default {SERVICE_ACCOUNT_DIR} */
  serviceAccountDir?: string;
}

/**
 * Loads the client configuration: the kubeconfig file if given, otherwise
 * the in-cluster service account, addressed as `https://kubernetes.default.svc`.
 *
 * @throws {TypeError} with a fix hint when neither is usable.
 */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const kc = boundRequests(reuseConnections(speakHttp1(new KubeConfig())));
  if (options.kubeconfig) {
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (error) {
      // Why no cause and no excerpt: the parser's error quotes the file (its
      // message shows the lines around the fault, its `mark` the whole
      // buffer), and a kubeconfig holds tokens and keys.
      throw new TypeError(
        `Cannot load kubeconfig ${JSON.stringify(options.kubeconfig)}: ${
          kubeconfigErrorWithoutContent(error)
        }`,
      );
    }
    if (!kc.getCurrentCluster()) {
      throw new TypeError(
        `Kubeconfig ${
          JSON.stringify(options.kubeconfig)
        } has no current cluster: set current-context`,
      );
    }
    return kc;
  }
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const tokenFile = `${dir}/token`;
  try {
    Deno.statSync(tokenFile);
  } catch (error) {
    throw new TypeError(
      `No kubeconfig given and no service account token at ${tokenFile}: pass --kubeconfig, or run in a pod with a service account`,
      { cause: error },
    );
  }
  const port = options.env?.("KUBERNETES_SERVICE_PORT") || "443";
  const cluster: Cluster = {
    name: "in-cluster",
    server: `https://${IN_CLUSTER_HOST}:${port}`,
    caFile: `${dir}/ca.crt`,
    skipTLSVerify: false,
  };
  // client-node reads the token file again at most once a minute (as
  // client-go does), so projected service-account tokens, which the kubelet
  // rotates long before they expire, need no restart.
  const user: User = {
    name: "in-cluster",
    authProvider: { name: "tokenFile", config: { tokenFile } },
  };
  kc.loadFromClusterAndUser(cluster, user);
  return kc;
}

/**
 * What went wrong loading a kubeconfig, without any of the file's content: a
 * YAML error's reason and position, or the first line of another error with
 * quoted text left out.
 */
export function kubeconfigErrorWithoutContent(error: unknown): string {
  const e = error as { reason?: unknown; mark?: { line?: unknown; column?: unknown } };
  if (typeof e?.reason === "string" && typeof e.mark?.line === "number") {
    return `${e.reason} at line ${e.mark.line + 1}, column ${Number(e.mark.column ?? 0) + 1}`;
  }
  const first = (error instanceof Error ? error.message : String(error)).split("\n")[0];
  // Syntax errors of JSON.parse quote the text around the fault.
  return first.replace(/"[^"]*"|'[^']*'/g, "…").replace(/\(\d+:\d+\)$/, "").trim();
}

/**
 * Says which host the Deno permissions refused, when that is why a request
 * failed; client-node otherwise reports only `fetch failed`. Through
 * client-node the refusal shows as `getaddrinfo EPERM <host>` (node:net's
 * lookup asks the permission before any DNS query); a direct `fetch` throws
 * `NotCapable` naming host and port.
 */
export function permissionRefusal(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e = error; e && typeof e === "object" && !seen.has(e); e = (e as Error).cause) {
    seen.add(e);
    if (e instanceof Deno.errors.NotCapable) {
      const target = (e as Error).message.match(/access to "([^"]+)"/)?.[1];
      if (/\bnet\b/.test((e as Error).message)) {
        return `Network access to ${
          JSON.stringify(target ?? "the host")
        } is refused by the Deno permissions (--allow-net); see docs/PERMISSIONS.md`;
      }
      return `${(e as Error).message.split("\n")[0]} (Deno permissions; see docs/PERMISSIONS.md)`;
    }
    const n = e as { code?: unknown; syscall?: unknown; hostname?: unknown };
    if (n.code === "EPERM" && n.syscall === "getaddrinfo" && typeof n.hostname === "string") {
      return `Network access to ${
        JSON.stringify(n.hostname)
      } is refused by the Deno permissions (--allow-net); the daemon's permission set allows the in-cluster API server and loopback only, see docs/PERMISSIONS.md`;
    }
  }
  return undefined;
}

/** The HTTP status of an error from client-node (API call or watch), if it has one. */
export function apiStatus(error: unknown): number | undefined {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; statusCode?: unknown };
    if (typeof e.code === "number") return e.code;
    if (typeof e.statusCode === "number") return e.statusCode;
  }
  return undefined;
}

/** The server's message from a Kubernetes Status body carried by a client-node error, if any. */
export function apiMessage(error: unknown): string {
  if (error && typeof error === "object") {
    const body = (error as { body?: unknown }).body;
    let parsed: unknown = body;
    if (typeof body === "string") {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
    }
    const message = (parsed as { message?: unknown } | undefined)?.message;
    if (typeof message === "string" && message) return message;
    const status = apiStatus(error);
    if (status !== undefined) return `HTTP ${status}`;
  }
  const refused = permissionRefusal(error);
  if (refused !== undefined) return refused;
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/** Seconds from a Retry-After header carried by a client-node error, if any. */
export function retryAfterSeconds(error: unknown): number | undefined {
  const headers = (error as { headers?: Record<string, string> } | undefined)?.headers;
  const value = headers?.["retry-after"] ?? headers?.["Retry-After"];
  const seconds = value === undefined ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
