/**
 * The daemon's configuration: flags and environment, parsed once by a zod
 * schema into a frozen, typed {@linkcode Config}.
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "./duration.ts";
import { type FlagSpec, formatHelp, parseFlags, type RawFlags } from "./flags.ts";
import { VERSION } from "./version.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";
import { parseLabelSelector } from "../kube/label_selector.ts";
import { parseReference } from "../images/reference.ts";
import { validateElectionDurations } from "../election/durations.ts";

/** The project's own warden image, tagged like the daemon. */
export const DEFAULT_WARDEN_IMAGE = `ghcr.io/image-cache-daemon/warden:${VERSION}`;

/** The daemon's roles: see `--role`. */
export const ROLES = ["all", "aggregator", "node"] as const;
/** One of {@linkcode ROLES}. */
export type Role = typeof ROLES[number];

/** Every flag the daemon accepts, in help order. */
export const FLAGS: readonly FlagSpec[] = [
  {
    name: "role",
    type: "string",
    default: "all",
    metavar: "all|aggregator|node",
    help:
      "all: one process per node does everything; aggregator: leader-elected, watches the sources and publishes the desired set; node: pulls the published set on its node",
  },
  {
    name: "image",
    type: "strings",
    help: "Image to cache on every node; repeat for more",
  },
  {
    name: "configmap-selector",
    type: "string",
    default: "app.kubernetes.io/part-of=image-cache-daemon",
    help: "Label selector of the ConfigMaps that list images",
  },
  {
    name: "configmap-namespaces",
    type: "strings",
    metavar: "namespace",
    help: "Watch ConfigMaps only in these namespaces (repeatable; default: all namespaces)",
  },
  {
    name: "node-name",
    type: "string",
    env: "NODE_NAME",
    help: "Name of the node this daemon pulls for",
  },
  { name: "pod-name", type: "string", env: "POD_NAME", help: "Name of the daemon's own pod" },
  {
    name: "pod-namespace",
    type: "string",
    env: "POD_NAMESPACE",
    help: "Namespace of the daemon's own pod, where pull pods are created",
  },
  { name: "pod-uid", type: "string", env: "POD_UID", help: "UID of the daemon's own pod" },
  {
    name: "resync-period",
    type: "string",
    default: "15m0s",
    metavar: "duration",
    help: "How often every image is pulled again (tags move); 0 disables",
  },
  {
    name: "warden-image",
    type: "string",
    default: DEFAULT_WARDEN_IMAGE,
    help: "Image whose entrypoint copies the no-op binary for pull pods",
  },
  {
    name: "watch-argo-workflow-templates",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo WorkflowTemplates",
  },
  {
    name: "watch-argo-cluster-workflow-templates",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo ClusterWorkflowTemplates",
  },
  {
    name: "watch-argo-cron-workflows",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo CronWorkflows",
  },
  {
    name: "watch-configmaps",
    type: "bool",
    default: "true",
    help: "Cache images listed by labelled ConfigMaps",
  },
  {
    name: "max-concurrent-pulls",
    type: "string",
    default: "2",
    metavar: "int",
    help: "Most pulls in flight on this node at once",
  },
  {
    name: "pull-timeout",
    type: "string",
    default: "10m0s",
    metavar: "duration",
    help: "A pull not finished by then is abandoned and counts as failed",
  },
  {
    name: "pull-backoff-max",
    type: "string",
    default: "1h0m0s",
    metavar: "duration",
    help: "Longest wait between retries of a failing image",
  },
  {
    name: "image-pull-secret",
    type: "strings",
    metavar: "name",
    help: "Secret in the daemon's namespace with registry credentials (repeatable)",
  },
  {
    name: "pull-priority-class",
    type: "string",
    metavar: "name",
    help: "PriorityClass for pull pods",
  },
  {
    name: "pull-strategy",
    type: "string",
    default: "pod",
    metavar: "pod|cri",
    help: "How images are pulled: warden pods, or the node's CRI socket",
  },
  {
    name: "cri-socket",
    type: "string",
    default: "/run/containerd/containerd.sock",
    metavar: "path",
    help:
      "CRI runtime socket, with --pull-strategy=cri (the released CRI build may open only the default path: mount the runtime's socket there)",
  },
  {
    name: "metrics-bind-address",
    type: "string",
    default: ":8080",
    metavar: "address",
    help: "Address of the /metrics, /healthz, /readyz and /status server; 0 disables",
  },
  {
    name: "leader-elect-lease-duration",
    type: "string",
    default: "15s",
    metavar: "duration",
    help: "With --role=aggregator: how long a standby waits after the leader's last renewal",
  },
  {
    name: "leader-elect-renew-deadline",
    type: "string",
    default: "10s",
    metavar: "duration",
    help: "With --role=aggregator: how long the leader keeps trying to renew before it stops",
  },
  {
    name: "leader-elect-retry-period",
    type: "string",
    default: "2s",
    metavar: "duration",
    help: "With --role=aggregator: pause between attempts to acquire or renew the lease",
  },
  {
    name: "leader-elect-lease-name",
    type: "string",
    default: "image-cache-daemon-aggregator",
    metavar: "name",
    help: "With --role=aggregator: the Lease in the pod's namespace",
  },
  {
    name: "kubeconfig",
    type: "string",
    env: "KUBECONFIG",
    metavar: "path",
    help: "Kubeconfig file; in-cluster configuration when empty",
  },
  {
    name: "log-level",
    type: "string",
    default: "info",
    metavar: "level",
    help: "Least severe log level: debug, info, warn or error",
  },
  {
    name: "log-format",
    type: "string",
    default: "json",
    metavar: "format",
    help: "Log format: json, or text for humans",
  },
  { name: "version", type: "bool", help: "Print the version and exit" },
  { name: "help", short: "h", type: "bool", help: "Print this help and exit" },
];

/** The usage line of the daemon. */
export const USAGE = `image-cache-daemon ${VERSION}
Pre-pulls container images onto every node of a Kubernetes cluster.

Usage:
  image-cache-daemon [flags]
  image-cache-daemon images [-f FILE|DIR|-]... [--output text|json]`;

/** The help text. */
export function helpText(): string {
  return formatHelp(USAGE, FLAGS);
}

const flagName = (key: string) => `--${key}`;

const duration = (flag: string, options: { positive?: string } = {}) =>
  z.string().transform((text, ctx) => {
    try {
      const ms = parseDuration(text);
      if (ms < 0) {
        ctx.addIssue({
          code: "custom",
          message: `${flagName(flag)} ${JSON.stringify(text)}: must not be negative`,
        });
        return z.NEVER;
      }
      if (options.positive && ms === 0) {
        ctx.addIssue({
          code: "custom",
          message: `${flagName(flag)} ${
            JSON.stringify(text)
          }: must be greater than 0, such as ${options.positive}`,
        });
        return z.NEVER;
      }
      return ms;
    } catch {
      ctx.addIssue({
        code: "custom",
        message: `${flagName(flag)} ${
          JSON.stringify(text)
        }: expected a Go duration such as 15m or 1h30m`,
      });
      return z.NEVER;
    }
  });

const bool = z.string().transform((v) => v === "true");
const optionalName = z.string().optional().transform((v) => v === "" ? undefined : v);

const schema = z.object({
  role: z.enum(ROLES, {
    error: (issue) => `--role ${JSON.stringify(issue.input)}: expected all, aggregator or node`,
  }),
  "leader-elect-lease-duration": duration("leader-elect-lease-duration", { positive: "15s" }),
  "leader-elect-renew-deadline": duration("leader-elect-renew-deadline", { positive: "10s" }),
  "leader-elect-retry-period": duration("leader-elect-retry-period", { positive: "2s" }),
  "leader-elect-lease-name": z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
    message:
      "--leader-elect-lease-name: expected a lowercase DNS subdomain such as image-cache-daemon-aggregator",
  }),
  image: z.array(z.string()).default([]).superRefine((images, ctx) => {
    for (const image of images) {
      try {
        parseReference(image);
      } catch (error) {
        ctx.addIssue({
          code: "custom",
          message: `--image ${JSON.stringify(image)}: ${(error as Error).message}`,
        });
      }
    }
  }),
  "configmap-selector": z.string().superRefine((v, ctx) => {
    try {
      parseLabelSelector(v);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        message: `--configmap-selector ${JSON.stringify(v)}: ${
          (error as Error).message.replace(/^Cannot parse label selector "[^"]*": /, "")
        }; expected a label selector such as app=x,tier in (a,b)`,
      });
    }
  }),
  "configmap-namespaces": z.array(z.string()).default([]),
  "node-name": optionalName,
  "pod-name": optionalName,
  "pod-namespace": optionalName,
  "pod-uid": optionalName,
  "resync-period": duration("resync-period"),
  "warden-image": z.string().superRefine((v, ctx) => {
    try {
      parseReference(v);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        message: `--warden-image ${JSON.stringify(v)}: ${(error as Error).message}`,
      });
    }
  }),
  "watch-argo-workflow-templates": bool,
  "watch-argo-cluster-workflow-templates": bool,
  "watch-argo-cron-workflows": bool,
  "watch-configmaps": bool,
  "max-concurrent-pulls": z.string().transform((v, ctx) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < 1 || n > 1000) {
      ctx.addIssue({
        code: "custom",
        message: `--max-concurrent-pulls ${
          JSON.stringify(v)
        }: expected a whole number from 1 to 1000`,
      });
      return z.NEVER;
    }
    return n;
  }),
  "pull-timeout": duration("pull-timeout", { positive: "10m" }),
  "pull-backoff-max": duration("pull-backoff-max", { positive: "1h" }),
  "image-pull-secret": z.array(z.string()).default([]),
  "pull-priority-class": optionalName,
  "pull-strategy": z.string().refine((v) => v === "pod" || v === "cri", {
    error: (issue) => `--pull-strategy ${JSON.stringify(issue.input)}: expected pod or cri`,
  }).transform((v) => v as "pod" | "cri"),
  "cri-socket": z.string().min(1, {
    message:
      '--cri-socket "": must not be empty; expected a socket path such as /run/containerd/containerd.sock',
  }),
  "metrics-bind-address": z.string().transform((v, ctx) => {
    if (v === "0") return undefined;
    const m = v.match(/^(\[[0-9a-fA-F:]+\]|[^:]*):(\d{1,5})$/);
    if (!m || Number(m[2]) > 65535) {
      ctx.addIssue({
        code: "custom",
        message: `--metrics-bind-address ${
          JSON.stringify(v)
        }: expected host:port such as :8080 or 127.0.0.1:8080, or 0 to disable`,
      });
      return z.NEVER;
    }
    return {
      hostname: m[1] === "" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, ""),
      port: Number(m[2]),
    };
  }),
  kubeconfig: optionalName,
  "log-level": z.enum(LOG_LEVELS, {
    error: (issue) =>
      `--log-level ${JSON.stringify(issue.input)}: expected one of ${LOG_LEVELS.join(", ")}`,
  }),
  "log-format": z.enum(LOG_FORMATS, {
    error: (issue) => `--log-format ${JSON.stringify(issue.input)}: expected json or text`,
  }),
  version: bool,
  help: bool,
});

/** The daemon's validated configuration. */
export interface Config {
  /** `--role`. */
  readonly role: Role;
  /** The leader election's durations and Lease (`--leader-elect-*`), in ms. */
  readonly leaderElection: {
    readonly leaseDurationMs: number;
    readonly renewDeadlineMs: number;
    readonly retryPeriodMs: number;
    readonly leaseName: string;
  };
  readonly images: readonly string[];
  readonly configmapSelector: string;
  readonly configmapNamespaces: readonly string[];
  readonly nodeName?: string;
  readonly podName?: string;
  readonly podNamespace?: string;
  readonly podUid?: string;
  /** Milliseconds; 0 disables resync. */
  readonly resyncPeriodMs: number;
  readonly wardenImage: string;
  readonly watchArgoWorkflowTemplates: boolean;
  readonly watchArgoClusterWorkflowTemplates: boolean;
  readonly watchArgoCronWorkflows: boolean;
  readonly watchConfigmaps: boolean;
  readonly maxConcurrentPulls: number;
  readonly pullTimeoutMs: number;
  readonly pullBackoffMaxMs: number;
  readonly imagePullSecrets: readonly string[];
  readonly pullPriorityClass?: string;
  readonly pullStrategy: "pod" | "cri";
  readonly criSocket: string;
  /** Undefined when the server is disabled. */
  readonly metricsBindAddress?: { readonly hostname: string; readonly port: number };
  readonly kubeconfig?: string;
  readonly logLevel: typeof LOG_LEVELS[number];
  readonly logFormat: typeof LOG_FORMATS[number];
  readonly version: boolean;
  readonly help: boolean;
}

/** The result of {@linkcode loadConfig}: the config and the positional arguments. */
export interface LoadedConfig {
  readonly config: Config;
  readonly positionals: readonly string[];
}

/**
 * Reads an environment variable, treating a denied permission as unset.
 * Only the variables named in {@linkcode FLAGS} are ever read.
 */
export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Parses flags and environment into a frozen {@linkcode Config}.
 *
 * @param args command-line arguments, without the program name
 * @param env looks up an environment variable; defaults to the process environment
 * @throws {TypeError} with one line per problem, each naming the flag, the
 * bad value and what is expected.
 */
export function loadConfig(
  args: readonly string[],
  env: (name: string) => string | undefined = readEnv,
): LoadedConfig {
  const { flags, positionals } = parseFlags(args, FLAGS);
  const input: RawFlags = {};
  for (const spec of FLAGS) {
    const given = flags[spec.name];
    if (given !== undefined) input[spec.name] = given;
    else if (spec.env && env(spec.env)) input[spec.name] = env(spec.env)!;
    else if (spec.type === "bool") input[spec.name] = spec.default ?? "false";
    else if (spec.default !== undefined) input[spec.name] = spec.default;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new TypeError(parsed.error.issues.map((i) => i.message).join("\n"));
  }
  const v = parsed.data;
  const leaderElection = {
    leaseDurationMs: v["leader-elect-lease-duration"],
    renewDeadlineMs: v["leader-elect-renew-deadline"],
    retryPeriodMs: v["leader-elect-retry-period"],
    leaseName: v["leader-elect-lease-name"],
  };
  try {
    validateElectionDurations(
      leaderElection.leaseDurationMs,
      leaderElection.renewDeadlineMs,
      leaderElection.retryPeriodMs,
    );
  } catch (error) {
    throw new TypeError(
      `--leader-elect-lease-duration, --leader-elect-renew-deadline, --leader-elect-retry-period: ${
        (error as Error).message
      }`,
    );
  }
  const config: Config = {
    role: v.role,
    leaderElection,
    images: v.image,
    configmapSelector: v["configmap-selector"],
    configmapNamespaces: v["configmap-namespaces"],
    nodeName: v["node-name"],
    podName: v["pod-name"],
    podNamespace: v["pod-namespace"],
    podUid: v["pod-uid"],
    resyncPeriodMs: v["resync-period"],
    wardenImage: v["warden-image"],
    watchArgoWorkflowTemplates: v["watch-argo-workflow-templates"],
    watchArgoClusterWorkflowTemplates: v["watch-argo-cluster-workflow-templates"],
    watchArgoCronWorkflows: v["watch-argo-cron-workflows"],
    watchConfigmaps: v["watch-configmaps"],
    maxConcurrentPulls: v["max-concurrent-pulls"],
    pullTimeoutMs: v["pull-timeout"],
    pullBackoffMaxMs: v["pull-backoff-max"],
    imagePullSecrets: v["image-pull-secret"],
    pullPriorityClass: v["pull-priority-class"],
    pullStrategy: v["pull-strategy"],
    criSocket: v["cri-socket"],
    metricsBindAddress: v["metrics-bind-address"],
    kubeconfig: v.kubeconfig,
    logLevel: v["log-level"],
    logFormat: v["log-format"],
    version: v.version,
    help: v.help,
  };
  return deepFreeze({ config, positionals });
}

/**
 * Checks what running the daemon (not the `images` command) needs beyond the
 * schema: the node to pull for and the namespace for pull pods.
 *
 * @throws {TypeError} naming the missing flag and its environment fallback.
 */
export function requireDaemonIdentity(config: Config): void {
  const missing: string[] = [];
  if (config.role === "aggregator" && !config.podName) {
    missing.push(
      "--pod-name is required with --role=aggregator (it is the leader election identity): set it, or POD_NAME from the downward API (metadata.name)",
    );
  }
  if (config.role !== "aggregator" && !config.nodeName) {
    missing.push(
      "--node-name is required: set it, or NODE_NAME from the downward API (spec.nodeName)",
    );
  }
  if (!config.podNamespace) {
    missing.push(
      "--pod-namespace is required: set it, or POD_NAMESPACE from the downward API (metadata.namespace)",
    );
  }
  if (missing.length) throw new TypeError(missing.join("\n"));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
