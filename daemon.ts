/**
 * The daemon's wiring: sources → dedupe map → node puller. `main.ts` parses
 * the configuration and calls {@linkcode runDaemon}; tests and the demo call
 * it too.
 *
 * @module
 */
import { CoreV1Api, type KubeConfig, type V1Toleration } from "@kubernetes/client-node";
import type { Config } from "./config/config.ts";
import { requireDaemonIdentity } from "./config/config.ts";
import { VERSION } from "./config/version.ts";
import type { Logger } from "./log/logger.ts";
import { DesiredImages } from "./images/desired_images.ts";
import { apiMessage } from "./kube/client.ts";
import { EventRecorder, type EventSink } from "./kube/events.ts";
import { PublishedSetSource } from "./publication/published_set_source.ts";
import { StaticSource } from "./sources/static.ts";
import { newConfigMapSource } from "./sources/configmap.ts";
import { type ArgoKind, newArgoSource } from "./sources/argo.ts";
import type { Source, SourceStatus } from "./sources/source.ts";
import { NodePuller } from "./puller/node_puller.ts";
import { NodeImages } from "./puller/node_images.ts";
import type { PullStrategy } from "./puller/strategy.ts";
import { WardenPodStrategy } from "./puller/warden_strategy.ts";
import type { AuthConfig } from "./puller/cri/registry_auth.ts";
import type { PullFinished } from "./puller/node_puller.ts";
import type { DaemonMetrics } from "./operate/metrics.ts";
import type { InvolvedObject } from "./kube/events.ts";
import { type Clock, realClock } from "./clock.ts";
import type { AggregatorParts } from "./aggregator.ts";

/** Dependencies of {@linkcode runDaemon} that tests replace. */
export interface DaemonDeps {
  kubeConfig: KubeConfig;
  log: Logger;
  clock?: Clock;
  /** Backoff bounds of the source watches. @default {500 ms to 30 s} */
  sourceBackoffBaseMs?: number;
  sourceBackoffMaxMs?: number;
  /** Called once the daemon's parts exist, before they run (for the metrics server and tests). */
  onStarted?(daemon: DaemonParts): void;
  /** Metrics fed by the puller's hooks. */
  metrics?: DaemonMetrics;
  /** With `--role=aggregator`: called once its parts exist. */
  onAggregatorStarted?(parts: AggregatorParts): void;
}

/** The running parts of a daemon. */
export interface DaemonParts {
  readonly desired: DesiredImages;
  readonly sources: readonly Source[];
  readonly puller: NodePuller;
  readonly strategy: PullStrategy;
  readonly nodeImages: NodeImages;
  readonly events: EventRecorder;
  /** The daemon's own watches (its pull pods, its Node), for health and status. */
  readonly watches: readonly { status(): SourceStatus }[];
  /** True once every source has synced and the puller runs. */
  ready(): boolean;
  /** With `--role=node`: the published set as this node sees it. */
  readonly publishedSet?: PublishedSetSource;
}

/**
 * Builds the enabled sources. A node daemon (`--role=node`) has one: the
 * published set (plus its `--image` list); the others watch the cluster.
 */
export function buildSources(
  config: Config,
  deps: DaemonDeps,
  desired: DesiredImages,
  events: EventSink,
): Source[] {
  const { kubeConfig, log, clock } = deps;
  const common = {
    kubeConfig,
    sink: desired,
    log,
    events,
    clock,
    backoffBaseMs: deps.sourceBackoffBaseMs,
    backoffMaxMs: deps.sourceBackoffMaxMs,
  };
  const sources: Source[] = [new StaticSource({ images: config.images, sink: desired, log })];
  if (config.role === "node") {
    sources.push(
      new PublishedSetSource({
        kubeConfig,
        namespace: config.podNamespace!,
        sink: desired,
        log,
        clock,
        backoffBaseMs: deps.sourceBackoffBaseMs,
        backoffMaxMs: deps.sourceBackoffMaxMs,
      }),
    );
    return sources;
  }
  if (config.watchConfigmaps) {
    sources.push(newConfigMapSource({
      ...common,
      labelSelector: config.configmapSelector,
      namespaces: config.configmapNamespaces,
    }));
  }
  const argo: [boolean, ArgoKind][] = [
    [config.watchArgoWorkflowTemplates, "workflowtemplate"],
    [config.watchArgoClusterWorkflowTemplates, "clusterworkflowtemplate"],
    [config.watchArgoCronWorkflows, "cronworkflow"],
  ];
  for (const [enabled, kind] of argo) if (enabled) sources.push(newArgoSource(kind, common));
  return sources;
}

/** Reads the daemon pod's tolerations once, so pull pods land on the same tainted nodes. */
async function ownTolerations(
  config: Config,
  kubeConfig: KubeConfig,
  log: Logger,
): Promise<V1Toleration[] | undefined> {
  if (!config.podName || !config.podNamespace) return undefined;
  try {
    const pod = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedPod({
      name: config.podName,
      namespace: config.podNamespace,
    });
    return pod.spec?.tolerations;
  } catch (error) {
    // Why absorb: without them pulls still work on untainted nodes.
    log.warn("Cannot read the daemon's own pod; pull pods get no tolerations", {
      pod: config.podName,
      error: apiMessage(error),
    });
    return undefined;
  }
}

/**
 * Reads the `--image-pull-secret` dockerconfigjson Secrets for the CRI
 * strategy, which must hand credentials to the runtime itself (pull pods
 * only name the secrets, and the kubelet reads them).
 */
async function pullSecretAuth(
  config: Config,
  kubeConfig: KubeConfig,
  log: Logger,
): Promise<(ref: string) => AuthConfig | undefined> {
  const { authForImage, parseDockerConfigJson } = await import("./puller/cri/registry_auth.ts");
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const auths: Map<string, AuthConfig>[] = [];
  for (const name of config.imagePullSecrets) {
    try {
      const secret = await api.readNamespacedSecret({ name, namespace: config.podNamespace! });
      const data = secret.data?.[".dockerconfigjson"] ?? secret.data?.[".dockercfg"];
      if (data === undefined) throw new TypeError("it has no .dockerconfigjson key");
      auths.push(parseDockerConfigJson(data));
    } catch (error) {
      // Why absorb: public images still pull; the failures name the registry.
      log.error("Cannot read image pull secret; pulls that need it will fail", {
        secret: name,
        error: error instanceof TypeError ? error.message : apiMessage(error),
      });
    }
  }
  return (ref) => authForImage(ref, auths);
}

async function buildStrategy(
  config: Config,
  deps: DaemonDeps,
  tolerations: V1Toleration[] | undefined,
): Promise<PullStrategy> {
  if (config.pullStrategy === "cri") {
    // Loaded only in CRI mode: gRPC and protobuf cost memory the default
    // strategy does not need.
    const { CriPullStrategy } = await import("./puller/cri/cri_strategy.ts");
    return new CriPullStrategy({
      socket: config.criSocket,
      log: deps.log,
      timeoutMs: config.pullTimeoutMs,
      auth: await pullSecretAuth(config, deps.kubeConfig, deps.log),
    });
  }
  return new WardenPodStrategy({
    kubeConfig: deps.kubeConfig,
    namespace: config.podNamespace!,
    node: config.nodeName!,
    wardenImage: config.wardenImage,
    owner: config.podName && config.podUid
      ? { name: config.podName, uid: config.podUid }
      : undefined,
    imagePullSecrets: config.imagePullSecrets,
    tolerations,
    priorityClassName: config.pullPriorityClass,
    log: deps.log,
    clock: deps.clock,
  });
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Runs the daemon until `signal` aborts: sources watch, and once every
 * enabled source has synced, the puller makes every desired image present on
 * this node. On abort it stops the watches, stops creating pull pods,
 * deletes the ones in flight and returns.
 */
export async function runDaemon(
  config: Config,
  deps: DaemonDeps,
  signal: AbortSignal,
): Promise<void> {
  requireDaemonIdentity(config);
  if (config.role === "aggregator") {
    const { runAggregator } = await import("./aggregator.ts");
    return await runAggregator(config, deps, signal);
  }
  const { kubeConfig } = deps;
  const clock = deps.clock ?? realClock;
  const node = config.nodeName!;
  const log = deps.log.with({ node });
  const desired = new DesiredImages();
  const events = new EventRecorder({ kubeConfig, host: node, log, clock });
  const sources = buildSources(config, { ...deps, log }, desired, events);
  const nodeImages = new NodeImages({ kubeConfig, node, log, clock });
  const tolerations = config.pullStrategy === "pod"
    ? await ownTolerations(config, kubeConfig, log)
    : undefined;
  const strategy = await buildStrategy(config, { ...deps, log }, tolerations);
  let pullerRunning = false;
  // Events about pulls go on the daemon's own pod: that is where an operator
  // looks (`kubectl describe pod`), and pull pods are deleted at once.
  const self: InvolvedObject | undefined = config.podName
    ? {
      apiVersion: "v1",
      kind: "Pod",
      name: config.podName,
      namespace: config.podNamespace,
      uid: config.podUid,
    }
    : undefined;
  let announcedAllPresent = false;
  const onPresent = () => {
    if (announcedAllPresent || desired.size === 0 || !puller.allPresent()) return;
    announcedAllPresent = true;
    log.info("Every desired image is present on this node", { images: desired.size });
    if (self) {
      events.emit(
        "Normal",
        self,
        "AllImagesPresent",
        `Node ${node} holds all ${desired.size} desired images`,
      );
    }
  };
  const onPullFinished = (ref: string, result: PullFinished) => {
    deps.metrics?.pullFinished(ref, result);
    if (result.error && self) {
      events.emit("Warning", self, "PullFailed", `${ref}: ${result.error.message}`);
    }
  };

  const puller = new NodePuller({
    node,
    strategy,
    desired,
    log,
    clock,
    maxConcurrentPulls: config.maxConcurrentPulls,
    pullTimeoutMs: config.pullTimeoutMs,
    backoffMaxMs: config.pullBackoffMaxMs,
    resyncPeriodMs: config.resyncPeriodMs,
    presentImages: () => nodeImages.names(),
    presentImagesComplete: () => nodeImages.complete(),
    onPullStarted: (ref) => deps.metrics?.pullStarted(ref),
    onPullFinished,
    onPresent,
  });
  deps.onStarted?.({
    desired,
    sources,
    puller,
    strategy,
    nodeImages,
    events,
    watches: strategy instanceof WardenPodStrategy ? [nodeImages, strategy] : [nodeImages],
    ready: () => pullerRunning,
    publishedSet: sources.find((s): s is PublishedSetSource => s instanceof PublishedSetSource),
  });
  log.info("Starting image-cache-daemon", {
    version: VERSION,
    role: config.role,
    node,
    strategy: strategy.name,
    sources: sources.map((s) => s.name),
  });
  // The daemon's own lifetime: the caller's signal, or a failure of its own
  // (such as an unreachable CRI socket), stops every loop it started.
  const stopping = new AbortController();
  const lifetime = AbortSignal.any([signal, stopping.signal]);
  const watching = [
    ...sources.map((s) => s.run(lifetime)),
    nodeImages.run(lifetime),
  ];
  try {
    // No action before sync: an image missing from a half-filled cache is
    // never a reason to drop it, so the puller waits for every source.
    await Promise.race([
      Promise.all([...sources.map((s) => s.synced), nodeImages.synced]),
      untilAborted(lifetime),
    ]);
    if (!lifetime.aborted) {
      log.info("All sources synced", {
        images: desired.size,
        rejected: desired.rejections().length,
        sources: Object.fromEntries(sources.map((s) => [s.name, s.status().objects])),
      });
      await strategy.start?.(lifetime);
    }
    if (!lifetime.aborted) {
      pullerRunning = true;
      await puller.run(lifetime);
    }
  } finally {
    pullerRunning = false;
    stopping.abort();
    await strategy.close?.();
    await Promise.all(watching);
    await events.flush();
  }
  log.info("Stopped", { node });
}
