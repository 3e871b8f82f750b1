/**
 * The daemon's wiring: sources → dedupe map → node puller. `main.ts` parses
 * the configuration and calls {@linkcode runDaemon}; tests and the demo call
 * it too.
 *
 * @module
 */
import type { ListParser } from "./sources/list_parser.ts";
import type { KubeConfig } from "@kubernetes/client-node";
import { type Config, type DaemonIdentity, requireDaemonIdentity } from "./config/config.ts";
import { VERSION } from "./config/version.ts";
import type { Logger } from "./log/logger.ts";
import { DesiredImages, desiredImagesOptions } from "./images/desired_images.ts";
import { EventRecorder, type EventSink } from "./kube/events.ts";
import { PublishedSetSource } from "./publication/published_set_source.ts";
import { LeaseLiveness } from "./election/lease_liveness.ts";
import type { AggregatorParts } from "./aggregator.ts";
import { StaticSource } from "./sources/static.ts";
import type { ArgoKind } from "./sources/argo.ts";
import type { Source } from "./sources/source.ts";
import type { WatchStatus } from "./kube/reflector.ts";
import { NodePuller } from "./puller/node_puller.ts";
import { NodeImages } from "./puller/node_images.ts";
import type { PullStrategy } from "./puller/strategy.ts";
import { readOwnTolerations, WardenPodStrategy } from "./puller/warden_strategy.ts";
import { PullEvents } from "./puller/pull_events.ts";
import type { DaemonMetrics } from "./operate/metrics.ts";
import type { InvolvedObject } from "./kube/events.ts";
import { type Clock, realClock, untilAborted } from "./time/clock.ts";
import { WarmUp } from "./warm/warm_up.ts";

/** Dependencies of {@linkcode runDaemon} that tests replace. */
export interface DaemonDeps {
  kubeConfig: KubeConfig;
  log: Logger;
  clock?: Clock;
  /** Backoff bounds of the source watches. @default {500 ms to 30 s} */
  sourceBackoffBaseMs?: number;
  sourceBackoffMaxMs?: number;
  /** How often a node daemon may read the aggregator's Lease. @default {LEASE_CHECK_EVERY_MS} */
  leaseCheckEveryMs?: number;
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
  readonly watches: readonly { status(): WatchStatus }[];
  /** True once every source has synced and the puller runs. */
  ready(): boolean;
  /** With `--role=node`: the published set as this node sees it. */
  readonly publishedSet?: PublishedSetSource;
  /** What the daemon waits for before it pulls (its Node, if missing). */
  waiting(): string | undefined;
  /** The node's warm-up (condition and startup taint). */
  readonly warmUp?: WarmUp;
}

/**
 * Builds the enabled sources. A node daemon (`--role=node`) has one: the
 * published set (plus its `--image` list); the others watch the cluster,
 * parsing their lists with `listParser` when given.
 */
export async function buildSources(
  config: Config,
  deps: DaemonDeps,
  desired: DesiredImages,
  events: EventSink,
  listParser?: ListParser,
): Promise<Source[]> {
  const { kubeConfig, log, clock } = deps;
  const common = {
    kubeConfig,
    sink: desired,
    log,
    events,
    clock,
    listParser,
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
        // The ledger counts only while an aggregator renews its Lease.
        ledgerLiveness: new LeaseLiveness({
          kubeConfig,
          namespace: config.podNamespace!,
          name: config.leaderElectLeaseName,
          log,
          clock,
          checkEveryMs: deps.leaseCheckEveryMs,
        }),
      }),
    );
    return sources;
  }
  // Loaded only where the cluster's sources are watched: a node daemon
  // never parses YAML or evaluates Argo templates, and does not pay for that
  // code's memory.
  const [{ newConfigMapSource }, { newArgoSource }] = await Promise.all([
    import("./sources/configmap.ts"),
    import("./sources/argo.ts"),
  ]);
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

async function buildStrategy(
  config: Config,
  identity: DaemonIdentity,
  deps: DaemonDeps,
): Promise<PullStrategy> {
  if (config.pullStrategy === "cri") {
    // Loaded only in CRI mode: gRPC and protobuf cost memory the default
    // strategy does not need.
    const [{ CriPullStrategy }, { readPullSecretAuth }] = await Promise.all([
      import("./puller/cri/cri_strategy.ts"),
      import("./puller/cri/registry_auth.ts"),
    ]);
    return new CriPullStrategy({
      socket: config.criSocket,
      log: deps.log,
      timeoutMs: config.pullTimeoutMs,
      auth: await readPullSecretAuth({
        kubeConfig: deps.kubeConfig,
        namespace: identity.namespace,
        secrets: config.imagePullSecrets,
        log: deps.log,
      }),
    });
  }
  return new WardenPodStrategy({
    kubeConfig: deps.kubeConfig,
    namespace: identity.namespace,
    node: identity.node,
    wardenImage: config.wardenImage,
    owner: identity.pod?.uid ? { name: identity.pod.name, uid: identity.pod.uid } : undefined,
    imagePullSecrets: config.imagePullSecrets,
    tolerations: await readOwnTolerations({
      kubeConfig: deps.kubeConfig,
      namespace: identity.namespace,
      pod: identity.pod?.name,
      log: deps.log,
    }),
    priorityClassName: config.pullPriorityClass,
    log: deps.log,
    clock: deps.clock,
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
  if (config.role === "aggregator") {
    const { runAggregator } = await import("./aggregator.ts");
    return await runAggregator(config, deps, signal);
  }
  const identity = requireDaemonIdentity(config);
  const { kubeConfig } = deps;
  const clock = deps.clock ?? realClock;
  const { node } = identity;
  const log = deps.log.with({ node });
  const desired = new DesiredImages(desiredImagesOptions(config, log));
  const events = new EventRecorder({ kubeConfig, host: node, log, clock });
  const sources = await buildSources(config, { ...deps, log }, desired, events);
  const nodeImages = new NodeImages({ kubeConfig, node, log, clock });
  const strategy = await buildStrategy(config, identity, { ...deps, log });
  let pullerRunning = false;
  /** Why the puller waits, for `/readyz`. */
  let waiting: string | undefined;
  // Events about pulls go on the daemon's own pod: that is where an operator
  // looks (`kubectl describe pod`), and pull pods are deleted at once.
  const self: InvolvedObject | undefined = identity.pod
    ? {
      apiVersion: "v1",
      kind: "Pod",
      name: identity.pod.name,
      namespace: identity.namespace,
      uid: identity.pod.uid,
    }
    : undefined;
  const reportsTagChecks = config.pullStrategy === "cri";
  const pullEvents = new PullEvents({
    node,
    self,
    events,
    log,
    desiredCount: () => desired.size,
    allPresent: () => puller.allPresent(),
  });
  const publishedSet = sources.find((s): s is PublishedSetSource =>
    s instanceof PublishedSetSource
  );
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
    // --role=node: the aggregator's tag ledger (#16); --role=all checks every tag itself.
    ledger: publishedSet ? (ref) => publishedSet.ledger(ref) : undefined,
    presentTagDigests: () => nodeImages.tagDigests(),
    onLedgerSkip: (ref) => deps.metrics?.ledgerSkip?.(ref),
    onPullStarted: (ref) => deps.metrics?.pullStarted(ref),
    onPullFinished: (ref, result) => {
      deps.metrics?.pullFinished(ref, result);
      pullEvents.pullFinished(ref, result);
      // The tag ledger's canary, pulling through CRI, makes no pull pod the
      // leader could read: it reports its check in an Event instead (#16).
      // Whether this node is the canary, as published, whatever this node
      // thinks of the aggregator: the other nodes may still rely on its report.
      if (reportsTagChecks && publishedSet?.ledgerEntry(ref)?.canary === node) {
        pullEvents.tagChecked(ref, result);
      }
    },
    onPresent: () => {
      pullEvents.present();
      warmUp?.poke();
    },
  });
  // Opt-in: it writes to the Node, which needs the warm-up RBAC component.
  const warmUp = config.startupTaint === undefined && !config.imagesCondition
    ? undefined
    : new WarmUp({
      kubeConfig,
      node,
      log,
      clock,
      taint: config.startupTaint,
      timeoutMs: config.warmTimeoutMs,
      images: () => puller.status(),
      known: () => pullerRunning,
      nodeMeta: () => nodeImages.meta(),
      setConcurrency: (limit) => puller.setConcurrency(limit),
      warmConcurrency: config.warmMaxConcurrentPulls,
      normalConcurrency: config.maxConcurrentPulls,
      events,
      onWarm: (seconds, outcome) => deps.metrics?.nodeWarm(seconds, outcome),
      subscribe: (listener) => desired.subscribe(listener),
    });
  publishedSet?.onLedgerChange((refs) => puller.recheck(refs));
  deps.onStarted?.({
    desired,
    sources,
    puller,
    strategy,
    nodeImages,
    events,
    watches: [nodeImages, ...strategy.watches ?? []],
    ready: () => pullerRunning,
    publishedSet,
    waiting: () => waiting,
    warmUp,
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
    // From the start, not after the sync: --warm-timeout opens the node even
    // if its images never become known (say, no published set yet).
    warmUp?.run(lifetime),
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
        rejected: desired.rejectedCount(),
        sources: Object.fromEntries(sources.map((s) => [s.name, s.status().objects])),
      });
      if (nodeImages.found() === false) {
        // Pull pods pinned to a node that does not exist stay Pending until
        // they time out, one after another, forever: say so once and wait.
        waiting = `Node "${node}" does not exist: --node-name (NODE_NAME) must name a node`;
        log.error("Node not found; nothing is pulled until it exists", {
          node,
          hint: "set --node-name, or NODE_NAME from the downward API (spec.nodeName)",
        });
        await nodeImages.whenFound(lifetime);
        if (!lifetime.aborted) log.info("Node found; pulling starts", { node });
        waiting = undefined;
      }
    }
    if (!lifetime.aborted && publishedSet) {
      // Whether the tag ledger counts, known before the first resync relies
      // on it; a stop does not wait for the answer.
      await Promise.race([publishedSet.checkLedger(), untilAborted(lifetime)]);
    }
    if (!lifetime.aborted) {
      await strategy.start?.(lifetime);
    }
    if (!lifetime.aborted) {
      pullerRunning = true;
      // The images are known from now on: the warm-up's first real look.
      warmUp?.poke();
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
