/**
 * Where the Kubernetes client's configuration comes from: a kubeconfig file
 * when one is given, otherwise the pod's service account (in-cluster).
 *
 * @module
 */
import { type Cluster, KubeConfig, type User } from "@kubernetes/client-node";

/** The service-account directory mounted into every pod that has a token. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The in-cluster API server host. The service's DNS name, not its IP: the
 * API server's certificate covers this name, and the Deno permission set can
 * name it exactly.
 */
export const IN_CLUSTER_HOST = "kubernetes.default.svc";

/** Options for {@linkcode loadKubeConfig}. */
export interface KubeConfigOptions {
  /** Path of a kubeconfig file (`--kubeconfig` or `KUBECONFIG`). */
  kubeconfig?: string;
  /** Reads an environment variable. */
  env?: (name: string) => string | undefined;
}

/**
 * Loads the client configuration: the kubeconfig file if given, otherwise
 * the in-cluster service account, addressed as `https://kubernetes.default.svc`.
 *
 * @throws {TypeError} with a fix hint when neither is usable.
 */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfig) {
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (error) {
      throw new TypeError(
        `Cannot load kubeconfig ${JSON.stringify(options.kubeconfig)}: ${(error as Error).message}`,
        { cause: error },
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
  const tokenFile = `${SERVICE_ACCOUNT_DIR}/token`;
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
    caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    skipTLSVerify: false,
  };
  // The token file is re-read by client-node on each request, so projected
  // service-account tokens rotate without a restart.
  const user: User = {
    name: "in-cluster",
    authProvider: { name: "tokenFile", config: { tokenFile } },
  };
  kc.loadFromClusterAndUser(cluster, user);
  return kc;
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
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/** Seconds from a Retry-After header carried by a client-node error, if any. */
export function retryAfterSeconds(error: unknown): number | undefined {
  const headers = (error as { headers?: Record<string, string> } | undefined)?.headers;
  const value = headers?.["retry-after"] ?? headers?.["Retry-After"];
  const seconds = value === undefined ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
