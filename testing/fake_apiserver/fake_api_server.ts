/**
 * The fake API server's lifecycle: listening (HTTP or HTTPS), kubeconfigs,
 * nodes with their simulated kubelets, Argo install state, fault switches,
 * and direct store access for test setup and assertions.
 *
 * @module
 */
import { KubeConfig } from "@kubernetes/client-node";
import { stringify as toYaml } from "yaml";
import { type Logger, nullLogger } from "../../log/logger.ts";
import { speakHttp1 } from "../../kube/client.ts";
import { Authorizer, type DenyRule } from "./authz.ts";
import { type FailNextOptions, type FaultMatch, FaultPlan, type InjectedStatus } from "./faults.ts";
import { type FakeKubelet, SimulatedKubelet } from "./kubelet.ts";
import { mergePatch } from "./patch.ts";
import { RequestLog, type RequestLog as RequestLogClass } from "./request_log.ts";
import type { RequestRecord } from "./request_log.ts";
import { ARGO_GROUP, resourceInfo, type ResourceName, RESOURCES } from "./resources.ts";
import { buildFilter } from "./selectors.ts";
import { type HandlerContext, handleRequest } from "./server.ts";
import { type DeleteOptions, Store, type StoreEvent } from "./store.ts";
import { tlsMaterial } from "./tls.ts";
import type { KubeObject } from "./types.ts";
import { WatchRegistry } from "./watch.ts";

/** How long down() lets connections finish before it drops them. */
const DOWN_DRAIN_MS = 100;

/** Options of {@linkcode startFakeApiServer}. */
export interface FakeApiServerOptions {
  /** Serve HTTPS with a throwaway CA (put in the kubeconfig). Needs the openssl CLI. @default {false} */
  tls?: boolean;
  /** Nodes created up front, each with a simulated kubelet. @default {[]} */
  nodes?: string[];
  /** Whether the Argo Workflows CRDs are installed. @default {true} */
  argoInstalled?: boolean;
  /** Watch history kept per resource; an older resourceVersion gets 410 Expired. @default {1000} */
  retainedEvents?: number;
  /**
   * Commits the watch cache trails the store by, from the start (see
   * {@linkcode FaultControls.lagWatchCache}). @default {0}
   */
  watchCacheLag?: number;
  /** BOOKMARK cadence for watches with allowWatchBookmarks=true. @default {1000} */
  bookmarkIntervalMs?: number;
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** @default {0} (ephemeral) */
  port?: number;
  /** The user the kubeconfig's token authenticates as (appears in 403 messages). @default {"system:serviceaccount:image-cache-daemon:image-cache-daemon"} */
  user?: string;
  /** Namespaces created up front. @default {["default", "kube-system", "kube-public", "kube-node-lease"]} */
  namespaces?: string[];
  /** Logs internal failures. @default {nullLogger} */
  logger?: Logger;
}

/** Options of {@linkcode FakeApiServer.addNode}. */
export interface AddNodeOptions {
  /** Extra node labels. */
  labels?: Record<string, string>;
  /** Node taints. */
  taints?: { key: string; value?: string; effect: string }[];
  /** `status.nodeInfo.architecture` and the `kubernetes.io/arch` label. @default {"amd64"} */
  architecture?: string;
  /** Pod capacity. @default {110} */
  maxPods?: number;
  /** Images present from the start (no pull needed). */
  images?: string[];
}

/** Options of {@linkcode FakeApiServer.list}. */
export interface DirectListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** Fault injection switches. */
export interface FaultControls {
  /**
   * Ends every open watch stream; returns how many were hit.
   * - default: a clean end (as kube-apiserver closes a watch); clients reconnect at once.
   * - `abrupt`: the response is aborted mid-body (no terminating chunk), as when a connection
   *   is cut. Caveat: client-node's undici under Deno does not notice a cut response body,
   *   so such a client sees a silent stream until its own inactivity timeout (client-node's
   *   Watch: 30 s), then reconnects from its last resourceVersion.
   * - `silent`: the streams stop delivering but stay open, like a network partition.
   */
  dropWatches(options?: { abrupt?: boolean; silent?: boolean }): number;
  /** Answers the next `n` matching requests with `status` (Retry-After on 429/503). */
  failNext(n: number, status: InjectedStatus, options?: FailNextOptions): void;
  /** Adds `ms` of latency before every request (0 removes it). */
  setLatency(ms: number): void;
  /**
   * Runs `action` just before the next request matching `match` is handled
   * (such as another writer's edit between a client's read and its patch).
   */
  beforeNext(match: FaultMatch, action: () => void): void;
  /**
   * Makes the watch cache trail the store by `commits` commits (`Infinity`
   * holds it where it is; 0 lets it catch up). Lists with resourceVersion "0"
   * ("any state") are served from the cache and so may show an older state,
   * with the cache's resourceVersion, as a real API server's watch cache may;
   * lists with resourceVersion "" (the latest state) never do.
   */
  lagWatchCache(commits: number): void;
  /**
   * Ends every open watch, closes the listener and its connections, and so refuses new ones
   * until {@linkcode up}. Await it to know the listener is closed.
   */
  down(): Promise<void>;
  /** Listens again on the same port. Await it to know the listener is back. */
  up(): Promise<void>;
  /** Whether the server is down. */
  readonly isDown: boolean;
}

/** Authorization switches (everything is allowed by default). */
export interface AuthzControls {
  /** Denies matching requests with 403; returns the undo. */
  deny(rule: DenyRule): () => void;
  /** Allows everything again. */
  reset(): void;
}

/** The request log. */
export interface RequestLogView {
  entries(): RequestRecord[];
  /** Keyed `"verb resource"`, e.g. `"list configmaps"`, `"watch pods"`, `"patch pods/status"`, `"get /api/v1"`. */
  counts(): Record<string, number>;
  /** Response body bytes sent, keyed like {@linkcode counts} (a watch's grow as it streams). */
  bytes(): Record<string, number>;
  /** Every response byte sent so far, optionally only for requests `select` picks. */
  totalBytes(select?: (record: RequestRecord) => boolean): number;
  reset(): void;
}

/** A running fake API server. */
export interface FakeApiServer {
  /** `http://127.0.0.1:PORT` or `https://…`. */
  readonly url: string;
  /** The bearer token in the kubeconfig. */
  readonly token: string;
  /** The CA certificate (PEM) when serving TLS. */
  readonly caCert: string | undefined;
  /** A new client-node KubeConfig pointing at the server. */
  kubeConfig(): KubeConfig;
  /** The same, as kubeconfig file text (YAML), for daemon processes and kubectl. */
  kubeconfigYaml(options?: { namespace?: string }): string;

  /** Creates an object directly (no HTTP, no request-log entry); a missing namespace is created. */
  create(resource: ResourceName, obj: object): KubeObject;
  /** Replaces an object; without metadata.resourceVersion the update is unconditional. */
  update(resource: ResourceName, obj: object): KubeObject;
  /** Replaces an object's status only (as the status subresource does). */
  updateStatus(resource: ResourceName, obj: object): KubeObject;
  /** Applies a JSON merge patch. */
  patch(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    patch: unknown,
  ): KubeObject;
  /** Deletes an object (with garbage collection). Throws ApiError 404 when absent. */
  delete(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    options?: DeleteOptions,
  ): void;
  /** A copy of an object, or undefined. */
  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Copies of matching objects, sorted by namespace and name. */
  list(resource: ResourceName, options?: DirectListOptions): KubeObject[];
  /**
   * Resolves with the first object (current or future) for which `predicate` holds.
   *
   * @throws {Error} after `timeoutMs` (default 5000).
   */
  waitFor(
    resource: ResourceName,
    predicate: (obj: KubeObject) => boolean,
    options?: { namespace?: string; name?: string; timeoutMs?: number },
  ): Promise<KubeObject>;
  /** Resolves once at least `n` watches are open. @throws {Error} after `timeoutMs` (default 5000). */
  waitForWatches(n: number, options?: { timeoutMs?: number }): Promise<void>;
  /** Number of open watch streams. */
  openWatches(): number;
  /** Number of watch streams ever opened, ended ones included. */
  openedWatches(): number;
  /** The current global resourceVersion. */
  readonly resourceVersion: string;

  /** Installs the Argo CRDs: argoproj.io paths answer again. */
  installArgo(): void;
  /**
   * Uninstalls them: argoproj.io paths answer 404; their objects are deleted
   * (DELETED events) and their watches end, as deleting a CRD does. With
   * `keepObjects`, the objects stay and come back with `installArgo()`, as when
   * an API server briefly does not serve the CRD's routes (restart, upgrade).
   */
  uninstallArgo(options?: { keepObjects?: boolean }): void;
  /** Forgets watch history: any older resourceVersion now gets 410 Expired. */
  compact(): void;
  /** The kubelet of a node. @throws {TypeError} for an unknown node. */
  kubelet(node: string): FakeKubelet;
  /** Creates a Node object and its simulated kubelet. */
  addNode(name: string, options?: AddNodeOptions): FakeKubelet;

  readonly faults: FaultControls;
  readonly authz: AuthzControls;
  readonly requests: RequestLogView;
  /** Ends watches, stops kubelets and the listener. */
  close(): Promise<void>;
}

/**
 * Aborts a `Deno.serve` through its signal, dropping every connection.
 *
 * Why the guard: a server whose graceful shutdown ended just before (its
 * promise not yet settled, so it looked unfinished) has freed its resource,
 * and the runtime's abort listener then throws `BadResource` as an uncaught
 * error, failing whichever test runs. Only that error, only during the call.
 */
export function killServer(kill: AbortController | undefined): void {
  const late = (event: ErrorEvent) => {
    if (event.error instanceof Deno.errors.BadResource) event.preventDefault();
  };
  globalThis.addEventListener("error", late);
  try {
    kill?.abort();
  } finally {
    globalThis.removeEventListener("error", late);
  }
}

/**
 * Plain JSON of an object given by a test, which may be a client-node model instance
 * (Dates become strings, as on the wire).
 */
function plain(obj: object): KubeObject {
  return JSON.parse(JSON.stringify(obj));
}

const DEFAULT_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];
const DEFAULT_USER = "system:serviceaccount:image-cache-daemon:image-cache-daemon";

class FakeApiServerImpl implements FakeApiServer {
  readonly token = crypto.randomUUID().replaceAll("-", "");
  readonly caCert: string | undefined;
  readonly #store: Store;
  readonly #watches: WatchRegistry;
  readonly #authorizer = new Authorizer();
  readonly #faults = new FaultPlan();
  readonly #requests: RequestLogClass = new RequestLog();
  readonly #kubelets = new Map<string, SimulatedKubelet>();
  readonly #logger: Logger;
  readonly #hostname: string;
  readonly #tls: { cert: string; key: string } | undefined;
  readonly #user: string;
  #port: number;
  #http: Deno.HttpServer | undefined;
  /** Aborting it closes the listener and every open connection at once (a server that dies). */
  #kill?: AbortController;
  #down = false;
  #argo: boolean;
  #closed = false;
  #unsubscribe: () => void;
  readonly #watchWaiters = new Set<() => void>();

  constructor(
    options: FakeApiServerOptions,
    tls: { caCert: string; cert: string; key: string } | undefined,
  ) {
    this.#logger = options.logger ?? nullLogger;
    this.#store = new Store({
      retainedEvents: options.retainedEvents ?? 1000,
      logger: this.#logger,
    });
    this.#watches = new WatchRegistry(this.#store, {
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000,
    });
    this.#hostname = options.hostname ?? "127.0.0.1";
    this.#port = options.port ?? 0;
    this.#argo = options.argoInstalled ?? true;
    this.#user = options.user ?? DEFAULT_USER;
    this.caCert = tls?.caCert;
    this.#tls = tls ? { cert: tls.cert, key: tls.key } : undefined;
    this.#store.gracefulPodDeletion = (pod) =>
      this.#kubelets.has((pod.spec as { nodeName?: string } | undefined)?.nodeName ?? "");
    this.#unsubscribe = this.#store.subscribe((event) => this.#routeToKubelet(event));
    for (const ns of options.namespaces ?? DEFAULT_NAMESPACES) {
      this.#store.create(resourceInfo("namespaces"), { metadata: { name: ns } });
    }
    for (const node of options.nodes ?? []) this.addNode(node);
    this.#store.setWatchCacheLag(options.watchCacheLag ?? 0);
    const isDown = () => this.#down;
    this.faults = {
      dropWatches: (options) =>
        this.#watches.closeAll({
          silence: options?.silent ?? false,
          cut: options?.abrupt ?? false,
        }),
      failNext: (n, status, options) => this.#faults.failNext(n, status, options),
      beforeNext: (match, action) => this.#faults.beforeNext(match, action),
      setLatency: (ms) => {
        this.#faults.latencyMs = ms;
      },
      lagWatchCache: (commits) => this.#store.setWatchCacheLag(commits),
      down: () => this.#goDown(),
      up: () => this.#comeUp(),
      get isDown() {
        return isDown();
      },
    };
  }

  async #goDown(): Promise<void> {
    if (this.#down || this.#closed) return;
    this.#down = true;
    this.#watches.closeAll();
    const http = this.#http;
    this.#http = undefined;
    // The watches just ended get a moment to send their last bytes; then
    // every connection is dropped, as when an API server goes down: a
    // graceful shutdown alone could leave a keep-alive connection open to a
    // server that no longer answers on it, and a client waiting on nothing.
    let done = false;
    const drained = http?.shutdown().finally(() => done = true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      drained,
      new Promise((resolve) => timer = setTimeout(resolve, DOWN_DRAIN_MS)),
    ]);
    clearTimeout(timer);
    if (!done) killServer(this.#kill);
    await drained?.catch(() => {});
  }

  #comeUp(): Promise<void> {
    if (!this.#down || this.#closed) return Promise.resolve();
    this.#down = false;
    this.listen();
    return Promise.resolve();
  }

  #routeToKubelet(event: StoreEvent): void {
    if (event.info.plural !== "pods") return;
    const node = (event.object.spec as { nodeName?: string } | undefined)?.nodeName;
    if (node) this.#kubelets.get(node)?.handle(event);
  }

  #context(): HandlerContext {
    return {
      store: this.#store,
      watches: this.#watches,
      authorizer: this.#authorizer,
      faults: this.#faults,
      requests: this.#requests,
      logger: this.#logger,
      token: this.token,
      user: this.#user,
      serverAddress: () => `${this.#hostname}:${this.#port}`,
      argoInstalled: () => this.#argo,
    };
  }

  listen(): void {
    const ctx = this.#context();
    const handler = (request: Request): Promise<Response> | Response => {
      if (this.#down) {
        // Between down() and the connections being dropped: no answer at all
        // (a response cut after its headers would look like a slow one).
        return new Promise<Response>(() => {});
      }
      const response = handleRequest(ctx, request);
      this.#notifyWatchWaiters();
      return response;
    };
    this.#kill = new AbortController();
    const base = {
      signal: this.#kill.signal,
      hostname: this.#hostname,
      port: this.#port,
      onListen: () => {},
      onError: (error: unknown) => {
        this.#logger.debug("Fake API server connection error", { error });
        return new Response(null, { status: 500 });
      },
    };
    this.#http = this.#tls
      ? Deno.serve({ ...base, cert: this.#tls.cert, key: this.#tls.key }, handler)
      : Deno.serve(base, handler);
    this.#port = (this.#http.addr as Deno.NetAddr).port;
  }

  get url(): string {
    const host = this.#hostname.includes(":") ? `[${this.#hostname}]` : this.#hostname;
    return `${this.#tls ? "https" : "http"}://${host}:${this.#port}`;
  }

  get resourceVersion(): string {
    return String(this.#store.resourceVersion);
  }

  kubeconfigYaml(options: { namespace?: string } = {}): string {
    const cluster: Record<string, unknown> = { server: this.url };
    if (this.caCert) cluster["certificate-authority-data"] = btoa(this.caCert);
    else cluster["insecure-skip-tls-verify"] = true;
    return toYaml({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "fake", cluster }],
      users: [{ name: "fake", user: { token: this.token } }],
      contexts: [{
        name: "fake",
        context: { cluster: "fake", user: "fake", namespace: options.namespace ?? "default" },
      }],
      "current-context": "fake",
    });
  }

  kubeConfig(): KubeConfig {
    // HTTP/1.1 as the daemon speaks it (see speakHttp1 for the HTTP/2 abort).
    const kc = speakHttp1(new KubeConfig());
    kc.loadFromString(this.kubeconfigYaml());
    return kc;
  }

  create(resource: ResourceName, obj: object): KubeObject {
    return structuredClone(
      this.#store.create(resourceInfo(resource), plain(obj), { createNamespace: true }),
    );
  }

  update(resource: ResourceName, obj: object): KubeObject {
    return structuredClone(
      this.#store.update(resourceInfo(resource), plain(obj), { unconditional: true }),
    );
  }

  updateStatus(resource: ResourceName, obj: object): KubeObject {
    return structuredClone(
      this.#store.update(resourceInfo(resource), plain(obj), {
        unconditional: true,
        subresource: "status",
      }),
    );
  }

  patch(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    patch: unknown,
  ): KubeObject {
    return structuredClone(
      this.#store.patch(
        resourceInfo(resource),
        namespace,
        name,
        (current) => mergePatch(current, patch) as KubeObject,
      ),
    );
  }

  delete(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    options?: DeleteOptions,
  ): void {
    this.#store.delete(resourceInfo(resource), namespace, name, options);
  }

  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.#store.get(resourceInfo(resource), namespace, name);
    return obj && structuredClone(obj);
  }

  list(resource: ResourceName, options: DirectListOptions = {}): KubeObject[] {
    const info = resourceInfo(resource);
    return this.#store.list(info, buildFilter(info, options)).items.map((o) => structuredClone(o));
  }

  waitFor(
    resource: ResourceName,
    predicate: (obj: KubeObject) => boolean,
    options: { namespace?: string; name?: string; timeoutMs?: number } = {},
  ): Promise<KubeObject> {
    const info = resourceInfo(resource);
    const selects = (obj: KubeObject) =>
      (options.namespace === undefined || obj.metadata.namespace === options.namespace) &&
      (options.name === undefined || obj.metadata.name === options.name) &&
      predicate(obj);
    const current = this.#store.list(info, buildFilter(info, { namespace: options.namespace }))
      .items.find(selects);
    if (current) return Promise.resolve(structuredClone(current));
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 5000;
      const timer = setTimeout(() => {
        unsubscribe();
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${resource}${
              options.name ? ` "${options.name}"` : ""
            } to match`,
          ),
        );
      }, timeoutMs);
      const unsubscribe = this.#store.subscribe((event) => {
        if (event.info !== info || event.type === "DELETED" || !selects(event.object)) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(structuredClone(event.object));
      });
    });
  }

  openWatches(): number {
    return this.#watches.size;
  }

  openedWatches(): number {
    return this.#watches.opened;
  }

  #notifyWatchWaiters(): void {
    for (const waiter of [...this.#watchWaiters]) waiter();
  }

  waitForWatches(n: number, options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#watches.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 5000;
      // Watches register while their response starts, after the handler returned: poll on
      // each request and on a short interval rather than sleeping for a fixed time.
      const check = () => {
        if (this.#watches.size < n) return;
        done();
        resolve();
      };
      const interval = setInterval(check, 5);
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${n} open watches (have ${this.#watches.size})`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearInterval(interval);
        clearTimeout(timer);
        this.#watchWaiters.delete(check);
      };
      this.#watchWaiters.add(check);
    });
  }

  installArgo(): void {
    this.#argo = true;
  }

  uninstallArgo(options: { keepObjects?: boolean } = {}): void {
    this.#argo = false;
    for (const info of RESOURCES.filter((r) => r.group === ARGO_GROUP)) {
      if (!options.keepObjects) {
        for (const obj of this.#store.list(info, buildFilter(info, {})).items) {
          this.#store.delete(info, obj.metadata.namespace, obj.metadata.name!);
        }
      }
      this.#watches.closeAll({ resource: info });
    }
  }

  compact(): void {
    this.#store.compact();
  }

  kubelet(node: string): FakeKubelet {
    const kubelet = this.#kubelets.get(node);
    if (!kubelet) {
      throw new TypeError(
        `No node "${node}": known nodes are ${[...this.#kubelets.keys()].join(", ") || "none"}`,
      );
    }
    return kubelet;
  }

  addNode(name: string, options: AddNodeOptions = {}): FakeKubelet {
    if (this.#kubelets.has(name)) throw new TypeError(`Node "${name}" already exists`);
    const arch = options.architecture ?? "amd64";
    const maxPods = options.maxPods ?? 110;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const index = this.#kubelets.size + 1;
    const capacity = {
      cpu: "4",
      memory: "16331752Ki",
      "ephemeral-storage": "102350Mi",
      pods: String(maxPods),
    };
    this.#store.create(resourceInfo("nodes"), {
      metadata: {
        name,
        labels: {
          "kubernetes.io/hostname": name,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": arch,
          "beta.kubernetes.io/os": "linux",
          "beta.kubernetes.io/arch": arch,
          ...options.labels,
        },
      },
      spec: options.taints ? { taints: options.taints } : {},
      status: {
        capacity,
        allocatable: capacity,
        conditions: [{
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        }],
        addresses: [
          { type: "InternalIP", address: `10.0.${Math.floor(index / 250)}.${(index % 250) + 1}` },
          { type: "Hostname", address: name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
        nodeInfo: {
          architecture: arch,
          operatingSystem: "linux",
          osImage: "Fake Linux",
          kernelVersion: "6.1.0-fake",
          containerRuntimeVersion: "containerd://1.7.24",
          kubeletVersion: "v1.32.0-fake",
          kubeProxyVersion: "v1.32.0-fake",
          machineID: crypto.randomUUID().replaceAll("-", ""),
          systemUUID: crypto.randomUUID(),
          bootID: crypto.randomUUID(),
        },
        images: [],
      },
    });
    const kubelet = new SimulatedKubelet(this.#store, name, { logger: this.#logger, maxPods });
    this.#kubelets.set(name, kubelet);
    for (const image of options.images ?? []) kubelet.preloadImage(image);
    kubelet.adoptExisting(
      this.#store.list(
        resourceInfo("pods"),
        buildFilter(resourceInfo("pods"), {
          fieldSelector: `spec.nodeName=${name}`,
        }),
      ).items,
    );
    return kubelet;
  }

  readonly faults: FaultControls;

  readonly authz: AuthzControls = {
    deny: (rule) => this.#authorizer.deny(rule),
    reset: () => this.#authorizer.reset(),
  };

  readonly requests: RequestLogView = {
    entries: () => this.#requests.entries(),
    counts: () => this.#requests.counts(),
    bytes: () => this.#requests.bytes(),
    totalBytes: (select) => this.#requests.totalBytes(select),
    reset: () => this.#requests.reset(),
  };

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const kubelet of this.#kubelets.values()) kubelet.stop();
    this.#watches.closeAll();
    const http = this.#http;
    this.#http = undefined;
    await http?.shutdown();
  }
}

/**
 * Starts a fake Kubernetes API server with simulated kubelets, listening on a real port.
 * Always `close()` it (tests: in a `finally`).
 *
 * @throws {Error} when `tls` is set and the openssl CLI is missing.
 */
export async function startFakeApiServer(
  options: FakeApiServerOptions = {},
): Promise<FakeApiServer> {
  const tls = options.tls ? await tlsMaterial() : undefined;
  const server = new FakeApiServerImpl(options, tls);
  server.listen();
  return server;
}
