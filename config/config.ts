/**
 * The daemon's configuration: flags and environment, parsed once by a zod
 * schema into a frozen, typed {@linkcode Config}.
 *
 * @module
 */
import { z } from "zod";
import { formatDuration, parseDuration } from "./duration.ts";
import { type FlagSpec, formatHelp, parseFlags, type RawFlags } from "./flags.ts";
import { VERSION } from "./version.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";
import { parseLabelSelector } from "../kube/label_selector.ts";
import { parseReference } from "../images/reference.ts";
import { validateElectionDurations } from "../election/durations.ts";
import {
  DEFAULT_MAX_DESIRED_IMAGES,
  DEFAULT_MAX_IMAGES_PER_OBJECT,
} from "../images/desired_images.ts";
import { compileRepositoryPattern } from "../images/trust.ts";

// The schema parses once per process, at start, before anything else runs:
// zod's default compiles each object schema into a function on its first
// parse, which costs more than that one parse (about 17 ms against 9 ms
// here, issue #15). Parsing is the same either way.
z.config({ jitless: true });

/** The project's own warden image, tagged like the daemon. */
export const DEFAULT_WARDEN_IMAGE = `ghcr.io/image-cache-daemon/warden:${VERSION}`;

/** The usage line of the daemon. */
export const USAGE = `image-cache-daemon ${VERSION}
Pre-pulls container images onto every node of a Kubernetes cluster.

Usage:
  image-cache-daemon [flags]
  image-cache-daemon images [-f FILE|DIR|-]... [--output text|json]`;

const flagName = (key: string) => `--${key}`;

/**
 * The longest duration any flag accepts: 2^31 - 1 ms (about 24.8 days), the
 * longest delay a JavaScript timer holds. Beyond it `setTimeout` fires at
 * once, so a `--pull-timeout=1000h` would time every pull out at once.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Bounds of a duration flag, beyond being a non-negative Go duration. */
interface DurationBounds {
  /** Whether 0 is refused, with an example of a good value. */
  positive?: string;
  /** The least non-zero value, with why a smaller one does harm. */
  min?: { ms: number; why: string };
}

const duration = (flag: string, options: DurationBounds = {}) =>
  z.string().transform((text, ctx) => {
    try {
      const ms = parseDuration(text);
      if (ms > MAX_DURATION_MS) {
        ctx.addIssue({
          code: "custom",
          message: `${flagName(flag)} ${JSON.stringify(text)}: must be at most ${
            formatDuration(MAX_DURATION_MS)
          }, the longest a timer can wait`,
        });
        return z.NEVER;
      }
      if (options.min && ms > 0 && ms < options.min.ms) {
        ctx.addIssue({
          code: "custom",
          message: `${flagName(flag)} ${JSON.stringify(text)}: must be at least ${
            formatDuration(options.min.ms)
          }${options.positive ? "" : " or 0"}: ${options.min.why}`,
        });
        return z.NEVER;
      }
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

const reference = (flag: string) =>
  z.string().superRefine((v, ctx) => {
    try {
      parseReference(v);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        message: `${flagName(flag)} ${JSON.stringify(v)}: ${(error as Error).message}`,
      });
    }
  });

const bool = z.string().transform((v) => v === "true");

const count = (flag: string, min: number, max: number) =>
  z.string().transform((v, ctx) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min || n > max) {
      ctx.addIssue({
        code: "custom",
        message: `${flagName(flag)} ${
          JSON.stringify(v)
        }: expected a whole number from ${min} to ${max}`,
      });
      return z.NEVER;
    }
    return n;
  });

/** `host:port`, `:port` (every interface) or `0` (disabled: undefined). */
const bindAddress = (flag: string, example: string) =>
  z.string().transform((v, ctx) => {
    if (v === "0") return undefined;
    const m = v.match(/^(\[[0-9a-fA-F:]+\]|[^:]*):(\d{1,5})$/);
    if (!m || Number(m[2]) > 65535) {
      ctx.addIssue({
        code: "custom",
        message: `${flagName(flag)} ${
          JSON.stringify(v)
        }: expected host:port such as ${example} or 127.0.0.1:8080, or 0 to disable`,
      });
      return z.NEVER;
    }
    return {
      hostname: m[1] === "" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, ""),
      port: Number(m[2]),
    };
  });
const optionalName = z.string().optional().transform((v) => v === "" ? undefined : v);
const list = z.array(z.string()).default([]);

/**
 * One flag of the daemon: how it is parsed and shown ({@linkcode FlagSpec}),
 * where its value lands in {@linkcode Config}, and how the raw text (a list
 * for repeatable flags, `"true"`/`"false"` for booleans) is validated and
 * turned into that value.
 */
interface ConfigFlag<K extends string, S extends z.ZodType> extends FlagSpec {
  /** The {@linkcode Config} field the value lands in. */
  readonly key: K;
  /** Validates the raw value and turns it into the field's value; messages name the flag. */
  readonly schema: S;
}

/** Declares a flag, keeping its key and schema types for {@linkcode Config}. */
const flag = <const K extends string, S extends z.ZodType>(f: ConfigFlag<K, S>) => f;

/**
 * Every flag the daemon accepts, in help order: the one table from which the
 * help text, the parser, the validation and the {@linkcode Config} type follow.
 */
const TABLE = [
  flag({
    name: "role",
    key: "role",
    type: "string",
    default: "all",
    metavar: "all|aggregator|node",
    help:
      "all: one process per node does everything; aggregator: leader-elected, watches the sources and publishes the desired set; node: pulls the published set on its node",
    schema: z.enum(["all", "aggregator", "node"], {
      error: (issue) => `--role ${JSON.stringify(issue.input)}: expected all, aggregator or node`,
    }),
  }),
  flag({
    name: "image",
    key: "images",
    type: "strings",
    help: "Image to cache on every node; repeat for more",
    schema: z.array(reference("image")).default([]),
  }),
  flag({
    name: "configmap-selector",
    key: "configmapSelector",
    type: "string",
    default: "app.kubernetes.io/part-of=image-cache-daemon",
    help: "Label selector of the ConfigMaps that list images",
    schema: z.string().superRefine((v, ctx) => {
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
  }),
  flag({
    name: "configmap-namespaces",
    key: "configmapNamespaces",
    type: "strings",
    metavar: "namespace",
    help: "Watch ConfigMaps only in these namespaces (repeatable; default: all namespaces)",
    schema: list,
  }),
  flag({
    name: "node-name",
    key: "nodeName",
    type: "string",
    env: "NODE_NAME",
    help: "Name of the node this daemon pulls for",
    schema: optionalName,
  }),
  flag({
    name: "pod-name",
    key: "podName",
    type: "string",
    env: "POD_NAME",
    help: "Name of the daemon's own pod",
    schema: optionalName,
  }),
  flag({
    name: "pod-namespace",
    key: "podNamespace",
    type: "string",
    env: "POD_NAMESPACE",
    help: "Namespace of the daemon's own pod, where pull pods are created",
    schema: optionalName,
  }),
  flag({
    name: "pod-uid",
    key: "podUid",
    type: "string",
    env: "POD_UID",
    help: "UID of the daemon's own pod",
    schema: optionalName,
  }),
  flag({
    name: "resync-period",
    key: "resyncPeriodMs",
    type: "string",
    default: "15m0s",
    metavar: "duration",
    help: "How often every image is pulled again (tags move); 0 disables",
    // Why a minimum: every resync pulls each tag again on every node (a pod
    // each); at 1ns that is a pull pod after pod as fast as the node allows
    // (~45 a second). A second keeps test and benchmark runs possible;
    // production periods are minutes to hours (README "Configuration").
    schema: duration("resync-period", {
      min: { ms: 1_000, why: "each resync pulls every tag again on every node" },
    }),
  }),
  flag({
    name: "warden-image",
    key: "wardenImage",
    type: "string",
    default: DEFAULT_WARDEN_IMAGE,
    help: "Image whose entrypoint copies the no-op binary for pull pods",
    schema: reference("warden-image"),
  }),
  flag({
    name: "watch-argo-workflow-templates",
    key: "watchArgoWorkflowTemplates",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo WorkflowTemplates",
    schema: bool,
  }),
  flag({
    name: "watch-argo-cluster-workflow-templates",
    key: "watchArgoClusterWorkflowTemplates",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo ClusterWorkflowTemplates",
    schema: bool,
  }),
  flag({
    name: "watch-argo-cron-workflows",
    key: "watchArgoCronWorkflows",
    type: "bool",
    default: "true",
    help: "Cache images named by Argo CronWorkflows",
    schema: bool,
  }),
  flag({
    name: "watch-configmaps",
    key: "watchConfigmaps",
    type: "bool",
    default: "true",
    help: "Cache images listed by labelled ConfigMaps",
    schema: bool,
  }),
  flag({
    name: "max-concurrent-pulls",
    key: "maxConcurrentPulls",
    type: "string",
    default: "2",
    metavar: "int",
    help: "Most pulls in flight on this node at once",
    schema: z.string().transform((v, ctx) => {
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
  }),
  flag({
    name: "startup-taint",
    key: "startupTaint",
    type: "string",
    metavar: "KEY[:EFFECT]",
    help:
      "Warm-up: remove this taint from the node once its images are present (or --warm-timeout passes); never adds it. Roles all and node",
    schema: z.string().optional().transform((v, ctx) => {
      if (v === undefined || v === "") return undefined;
      try {
        return parseStartupTaint(v);
      } catch (error) {
        ctx.addIssue({
          code: "custom",
          message: `--startup-taint ${JSON.stringify(v)}: ${(error as Error).message}`,
        });
        return z.NEVER;
      }
    }),
  }),
  flag({
    name: "images-condition",
    key: "imagesCondition",
    type: "bool",
    default: "false",
    help:
      "Warm-up: keep the ImagesPrePulled condition on this node's status (implied by --startup-taint; needs the warm-up RBAC component)",
    schema: bool,
  }),
  flag({
    name: "warm-timeout",
    key: "warmTimeoutMs",
    type: "string",
    default: "10m0s",
    metavar: "duration",
    help:
      "Warm-up: the startup taint is removed this long after the node registered even if images are missing",
    schema: duration("warm-timeout", { positive: "10m" }),
  }),
  flag({
    name: "warm-max-concurrent-pulls",
    key: "warmMaxConcurrentPulls",
    type: "string",
    metavar: "int",
    help:
      "Warm-up: most pulls in flight while the node is not yet warm (default: --max-concurrent-pulls)",
    schema: z.string().optional().transform((v, ctx) => {
      if (v === undefined || v === "") return undefined;
      const n = Number(v);
      if (/^\d+$/.test(v.trim()) && n >= 1 && n <= 1000) return n;
      ctx.addIssue({
        code: "custom",
        message: `--warm-max-concurrent-pulls ${
          JSON.stringify(v)
        }: expected a whole number from 1 to 1000`,
      });
      return z.NEVER;
    }),
  }),
  flag({
    name: "pull-timeout",
    key: "pullTimeoutMs",
    type: "string",
    default: "10m0s",
    metavar: "duration",
    help: "A pull not finished by then is abandoned and counts as failed",
    // Why a minimum: a pull cannot finish in under a second (a pod must be
    // scheduled and its image fetched), so a smaller timeout only churns pods.
    schema: duration("pull-timeout", {
      positive: "10m",
      min: { ms: 1_000, why: "no pull finishes sooner, so every pull would time out" },
    }),
  }),
  flag({
    name: "pull-backoff-max",
    key: "pullBackoffMaxMs",
    type: "string",
    default: "1h0m0s",
    metavar: "duration",
    help: "Longest wait between retries of a failing image",
    // Why a minimum: a smaller cap retries permanent failures in a tight loop.
    schema: duration("pull-backoff-max", {
      positive: "1h",
      min: { ms: 1_000, why: "failing images would be retried in a tight loop" },
    }),
  }),
  flag({
    name: "image-pull-secret",
    key: "imagePullSecrets",
    type: "strings",
    metavar: "name",
    help: "Secret in the daemon's namespace with registry credentials (repeatable)",
    schema: list,
  }),
  flag({
    name: "trusted-namespaces",
    key: "trustedNamespaces",
    type: "strings",
    metavar: "namespace",
    help:
      "Namespaces whose ConfigMaps and Argo objects are the operator's: their images may use --image-pull-secret and skip --allowed-repositories (repeatable)",
    schema: list,
  }),
  flag({
    name: "trust-cluster-workflow-templates",
    key: "trustClusterWorkflowTemplates",
    type: "bool",
    default: "false",
    help: "Treat ClusterWorkflowTemplates as the operator's, like --trusted-namespaces",
    schema: bool,
  }),
  flag({
    name: "allowed-repositories",
    key: "allowedRepositories",
    type: "strings",
    metavar: "pattern",
    help:
      "Repositories untrusted objects may name, such as docker.io/library/* or ghcr.io/my-org/** (repeatable; default: any)",
    schema: list.superRefine((patterns, ctx) => {
      for (const pattern of patterns) {
        try {
          compileRepositoryPattern(pattern);
        } catch (error) {
          ctx.addIssue({
            code: "custom",
            message: `--allowed-repositories ${JSON.stringify(pattern)}: ${
              (error as Error).message
            }`,
          });
        }
      }
    }),
  }),
  flag({
    name: "max-images-per-object",
    key: "maxImagesPerObject",
    type: "string",
    default: String(DEFAULT_MAX_IMAGES_PER_OBJECT),
    metavar: "int",
    help: "Most images one untrusted object may add; the rest are rejected and reported",
    schema: count("max-images-per-object", 1, 1_000_000),
  }),
  flag({
    name: "max-desired-images",
    key: "maxDesiredImages",
    type: "string",
    default: String(DEFAULT_MAX_DESIRED_IMAGES),
    metavar: "int",
    help:
      "Most images desired at once; past it trusted ones come first, then by name, and the rest are reported",
    schema: count("max-desired-images", 1, 1_000_000),
  }),
  flag({
    name: "pull-priority-class",
    key: "pullPriorityClass",
    type: "string",
    metavar: "name",
    help: "PriorityClass for pull pods",
    schema: optionalName,
  }),
  flag({
    name: "pull-strategy",
    key: "pullStrategy",
    type: "string",
    default: "pod",
    metavar: "pod|cri",
    help: "How images are pulled: warden pods, or the node's CRI socket",
    schema: z.string().refine((v) => v === "pod" || v === "cri", {
      error: (issue) => `--pull-strategy ${JSON.stringify(issue.input)}: expected pod or cri`,
    }).transform((v) => v as "pod" | "cri"),
  }),
  flag({
    name: "cri-socket",
    key: "criSocket",
    type: "string",
    default: "/run/containerd/containerd.sock",
    metavar: "path",
    help:
      "CRI runtime socket, with --pull-strategy=cri (the released CRI build may open only the default path: mount the runtime's socket there)",
    schema: z.string().min(1, {
      message:
        '--cri-socket "": must not be empty; expected a socket path such as /run/containerd/containerd.sock',
    }),
  }),
  flag({
    name: "metrics-bind-address",
    key: "metricsBindAddress",
    type: "string",
    default: ":8080",
    metavar: "address",
    help: "Address of the /metrics, /healthz and /readyz server; 0 disables",
    // Undefined when the server is disabled.
    schema: bindAddress("metrics-bind-address", ":8080"),
  }),
  flag({
    name: "status-bind-address",
    key: "statusBindAddress",
    type: "string",
    default: "127.0.0.1:8081",
    metavar: "address",
    help:
      "Address of the /status server (loopback by default: kubectl port-forward reaches it); 0 disables",
    // Why loopback: /status names every tenant's objects and echoes their
    // rejected input; the pod network has no business reading it.
    schema: bindAddress("status-bind-address", "127.0.0.1:8081"),
  }),
  flag({
    name: "leader-elect-lease-duration",
    key: "leaderElectLeaseDurationMs",
    type: "string",
    default: "15s",
    metavar: "duration",
    help: "With --role=aggregator: how long a standby waits after the leader's last renewal",
    schema: duration("leader-elect-lease-duration", { positive: "15s" }),
  }),
  flag({
    name: "leader-elect-renew-deadline",
    key: "leaderElectRenewDeadlineMs",
    type: "string",
    default: "10s",
    metavar: "duration",
    help: "With --role=aggregator: how long the leader keeps trying to renew before it stops",
    schema: duration("leader-elect-renew-deadline", { positive: "10s" }),
  }),
  flag({
    name: "leader-elect-retry-period",
    key: "leaderElectRetryPeriodMs",
    type: "string",
    default: "2s",
    metavar: "duration",
    help: "With --role=aggregator: pause between attempts to acquire or renew the lease",
    schema: duration("leader-elect-retry-period", { positive: "2s" }),
  }),
  flag({
    name: "leader-elect-lease-name",
    key: "leaderElectLeaseName",
    type: "string",
    default: "image-cache-daemon-aggregator",
    metavar: "name",
    help:
      "With --role=aggregator: the Lease in the pod's namespace; with --role=node: the Lease whose renewals say an aggregator keeps the tag ledger (the manifests grant this name only: change their resourceNames with it)",
    schema: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
      message:
        "--leader-elect-lease-name: expected a lowercase DNS subdomain such as image-cache-daemon-aggregator",
    }),
  }),
  flag({
    name: "publish-interval",
    key: "publishIntervalMs",
    type: "string",
    default: "1s",
    metavar: "duration",
    help:
      "With --role=aggregator: least time between two writes of the published set (a change after a quiet interval is written at once; changes within it are written together; a change only of the tag ledger's digests and canaries waits five intervals or goes with the next change)",
    schema: duration("publish-interval", {
      positive: "1s",
      min: { ms: 50, why: "each write is a new generation of every shard, read by every node" },
    }),
  }),
  flag({
    name: "kubeconfig",
    key: "kubeconfig",
    type: "string",
    env: "KUBECONFIG",
    metavar: "path",
    help: "Kubeconfig file; in-cluster configuration when empty",
    schema: optionalName,
  }),
  flag({
    name: "log-level",
    key: "logLevel",
    type: "string",
    default: "info",
    metavar: "level",
    help: "Least severe log level: debug, info, warn or error",
    schema: z.enum(LOG_LEVELS, {
      error: (issue) =>
        `--log-level ${JSON.stringify(issue.input)}: expected one of ${LOG_LEVELS.join(", ")}`,
    }),
  }),
  flag({
    name: "log-format",
    key: "logFormat",
    type: "string",
    default: "json",
    metavar: "format",
    help: "Log format: json, or text for humans",
    schema: z.enum(LOG_FORMATS, {
      error: (issue) => `--log-format ${JSON.stringify(issue.input)}: expected json or text`,
    }),
  }),
  flag({
    name: "version",
    key: "version",
    type: "bool",
    help: "Print the version and exit",
    schema: bool,
  }),
  flag({
    name: "help",
    key: "help",
    short: "h",
    type: "bool",
    help: "Print this help and exit",
    schema: bool,
  }),
] as const;

/** Every flag the daemon accepts, in help order. */
export const FLAGS: readonly FlagSpec[] = TABLE;

/** The help text. */
export function helpText(): string {
  return formatHelp(USAGE, FLAGS);
}

const schema = z.object(Object.fromEntries(TABLE.map((f) => [f.name, f.schema])));

/** A value as the config holds it: frozen, so lists are read-only. */
type Frozen<T> = T extends readonly (infer U)[] ? readonly U[]
  : T extends object ? { readonly [K in keyof T]: T[K] }
  : T;

/**
 * The daemon's validated configuration: one field per flag (the `key` of
 * its row in the table), typed as its schema's output. Durations are in
 * milliseconds (`resyncPeriodMs` 0 disables resync); `metricsBindAddress` is
 * undefined when the server is disabled.
 */
export type Config = {
  readonly [F in typeof TABLE[number] as F["key"]]: Frozen<z.output<F["schema"]>>;
};

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
  const { flags, positionals } = parseFlags(args, FLAGS, { strictBooleans: true });
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
  const values = parsed.data as Record<string, unknown>;
  // Built from the table, so it has exactly the fields Config declares.
  const config = Object.fromEntries(TABLE.map((f) => [f.key, values[f.name]])) as Config;
  try {
    validateElectionDurations(
      config.leaderElectLeaseDurationMs,
      config.leaderElectRenewDeadlineMs,
      config.leaderElectRetryPeriodMs,
    );
  } catch (error) {
    throw new TypeError(
      `--leader-elect-lease-duration, --leader-elect-renew-deadline, --leader-elect-retry-period: ${
        (error as Error).message
      }`,
    );
  }
  if (config.role === "aggregator") {
    const warm = ["startup-taint", "images-condition", "warm-timeout", "warm-max-concurrent-pulls"]
      .filter((name) => flags[name] !== undefined);
    if (warm.length > 0) {
      throw new TypeError(
        `${
          warm.map(flagName).join(", ")
        }: warm-up runs on the nodes; use it with --role=all or --role=node, not --role=aggregator`,
      );
    }
  }
  if (config.role === "node") {
    const cluster = NODE_IGNORED_FLAGS.filter((name) => flags[name] !== undefined);
    if (cluster.length > 0) {
      throw new TypeError(
        `${
          cluster.map(flagName).join(", ")
        }: the sources and the election run on the aggregator; set them on its Deployment (--role=aggregator), not with --role=node`,
      );
    }
  }
  return deepFreeze({ config, positionals });
}

/** The flags that choose which objects the sources watch (the `images` command takes them too). */
export const SOURCE_SELECTION_FLAGS = [
  "configmap-selector",
  "configmap-namespaces",
  "watch-configmaps",
  "watch-argo-workflow-templates",
  "watch-argo-cluster-workflow-templates",
  "watch-argo-cron-workflows",
] as const;

/**
 * Flags a node daemon (`--role=node`) would silently do nothing with: it
 * reads only the published set, so what selects, trusts or caps the sources'
 * objects, and the election and publishing, are the aggregator's.
 */
const NODE_IGNORED_FLAGS = [
  ...SOURCE_SELECTION_FLAGS,
  "trusted-namespaces",
  "trust-cluster-workflow-templates",
  "max-images-per-object",
  "leader-elect-lease-duration",
  "leader-elect-renew-deadline",
  "leader-elect-retry-period",
  "publish-interval",
] as const;

/**
 * Who the running daemon is. {@linkcode requireDaemonIdentity} returns it
 * only when the node and namespace are known, so the daemon never has to
 * ask again.
 */
export interface DaemonIdentity {
  /** The node this daemon pulls for (`--node-name`). */
  readonly node: string;
  /** The daemon's namespace (`--pod-namespace`): pull pods and pull secrets live there. */
  readonly namespace: string;
  /**
   * The daemon's own pod (`--pod-name`, `--pod-uid`), when known: Events
   * about pulls go on it, and pull pods copy its tolerations and name it
   * their owner.
   */
  readonly pod?: { readonly name: string; readonly uid?: string };
}

/**
 * Checks what running the daemon (not the `images` command) needs beyond the
 * schema, the node to pull for and the namespace for pull pods, and returns
 * the daemon's identity.
 *
 * @throws {TypeError} naming the missing flag and its environment fallback.
 */
export function requireDaemonIdentity(config: Config): DaemonIdentity {
  const { nodeName: node, podNamespace: namespace, podName, podUid } = config;
  const missing: string[] = [];
  if (!node) {
    missing.push(
      "--node-name is required: set it, or NODE_NAME from the downward API (spec.nodeName)",
    );
  }
  if (!namespace) {
    missing.push(
      "--pod-namespace is required: set it, or POD_NAMESPACE from the downward API (metadata.namespace)",
    );
  }
  if (!node || !namespace) throw new TypeError(missing.join("\n"));
  return Object.freeze({
    node,
    namespace,
    pod: podName ? Object.freeze({ name: podName, uid: podUid }) : undefined,
  });
}

/**
 * Checks what running an aggregator (`--role=aggregator`) needs beyond the
 * schema: its pod name (the leader election identity) and its namespace
 * (the Lease's and the published set's).
 *
 * @throws {TypeError} naming the missing flag and its environment fallback.
 */
export function requireAggregatorIdentity(
  config: Config,
): { readonly name: string; readonly namespace: string } {
  const { podName: name, podNamespace: namespace } = config;
  const missing: string[] = [];
  if (!name) {
    missing.push(
      "--pod-name is required with --role=aggregator (it is the leader election identity): set it, or POD_NAME from the downward API (metadata.name)",
    );
  }
  if (!namespace) {
    missing.push(
      "--pod-namespace is required: set it, or POD_NAMESPACE from the downward API (metadata.namespace)",
    );
  }
  if (!name || !namespace) throw new TypeError(missing.join("\n"));
  return Object.freeze({ name, namespace });
}

/** A taint the daemon lifts once the node is warm (`--startup-taint`). */
export interface StartupTaint {
  readonly key: string;
  /** Matches any effect when undefined. */
  readonly effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;

/**
 * Parses `KEY[:EFFECT]` (as `kubectl taint` spells a taint, without a value).
 *
 * @throws {TypeError} when the key is not a qualified name or the effect unknown.
 */
export function parseStartupTaint(text: string): StartupTaint {
  const at = text.lastIndexOf(":");
  const key = at < 0 ? text : text.slice(0, at);
  const effect = at < 0 ? undefined : text.slice(at + 1);
  const name =
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
  if (!name.test(key) || key.length > 316) {
    throw new TypeError(
      `taint key ${JSON.stringify(key)} is not a qualified name such as example.com/warming`,
    );
  }
  if (effect !== undefined && !(TAINT_EFFECTS as readonly string[]).includes(effect)) {
    throw new TypeError(
      `taint effect ${JSON.stringify(effect)}: expected NoSchedule, PreferNoSchedule or NoExecute`,
    );
  }
  return effect === undefined ? { key } : { key, effect: effect as StartupTaint["effect"] };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
