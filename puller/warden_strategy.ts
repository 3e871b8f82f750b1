/**
 * The default pull strategy: one short-lived warden pod per image, pinned to
 * this node, followed through a node-scoped pod watch and deleted whatever
 * the outcome.
 *
 * @module
 */
import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1ContainerStatus,
  type V1Pod,
  type V1Toleration,
} from "@kubernetes/client-node";
import { type Clock, realClock, untilAborted } from "../time/clock.ts";
import { backoffDelay } from "../time/backoff.ts";
import { PullError, type PullFailureReason } from "./errors.ts";
import type { Logger } from "../log/logger.ts";
import { apiMessage, apiStatus } from "../kube/client.ts";
import { podCollection } from "../kube/listers.ts";
import { Reflector, type WatchStatus } from "../kube/reflector.ts";
import type { PullOptions, PullResult, PullStrategy } from "./strategy.ts";
import { newWardenPod, wardenPodSelector } from "./warden_pod.ts";

/** Options for {@linkcode WardenPodStrategy}. */
export interface WardenPodStrategyOptions {
  kubeConfig: KubeConfig;
  /** The daemon's namespace, where pull pods are created. */
  namespace: string;
  /** This node. */
  node: string;
  /** `--warden-image`. */
  wardenImage: string;
  /** The daemon's own pod, the owner of every pull pod. */
  owner?: { name: string; uid: string };
  /** `--image-pull-secret` names. */
  imagePullSecrets?: readonly string[];
  /** The daemon pod's tolerations, so pulls land on the same tainted nodes. */
  tolerations?: readonly V1Toleration[];
  /** `--pull-priority-class`. */
  priorityClassName?: string;
  log: Logger;
  clock?: Clock;
  /** Randomness for the jitter of delete retries, replaceable in tests. @default {Math.random} */
  random?: () => number;
}

/** What the strategy keeps of a pull pod. */
/** What a pull pod's outcome is judged from ({@linkcode podViewOf}). */
export interface PodView {
  readonly name: string;
  /** True once the pod's deletion has begun. */
  readonly deleting?: boolean;
  readonly phase?: string;
  readonly reason?: string;
  readonly message?: string;
  readonly main?: V1ContainerStatus;
  readonly init?: V1ContainerStatus;
}

interface Waiter {
  readonly ref: string;
  resolve(result: PullResult): void;
  reject(error: PullError): void;
}

const PERMANENT_REASONS = new Set(["InvalidImageName"]);

/** Longest wait between attempts to delete a pull pod whose deletion failed. */
const MAX_DELETE_RETRY_MS = 30_000;

/** Projects a pull pod to what {@linkcode podOutcome} reads. Pure. */
export function podViewOf(obj: KubernetesObject): PodView {
  return view(obj);
}

function view(obj: KubernetesObject): PodView {
  const pod = obj as V1Pod;
  return {
    name: pod.metadata?.name ?? "",
    ...(pod.metadata?.deletionTimestamp ? { deleting: true } : {}),
    phase: pod.status?.phase,
    reason: pod.status?.reason,
    message: pod.status?.message,
    main: pod.status?.containerStatuses?.find((c) => c.name === "main"),
    init: pod.status?.initContainerStatuses?.find((c) => c.name === "warden"),
  };
}

/**
 * Decides a pull pod's outcome from its status: a result, a failure, or
 * `undefined` while it is still in progress. Pure.
 */
export function podOutcome(ref: string, pod: PodView): PullResult | PullError | undefined {
  const main = pod.main;
  const terminated = main?.state?.terminated;
  // The image was pulled as soon as the runtime reports its ID, whatever the
  // no-op command did afterwards.
  if (terminated && main?.imageID) return { digest: main.imageID };
  const waiting = main?.state?.waiting;
  if (waiting?.reason && /ErrImagePull|ImagePullBackOff|InvalidImageName/.test(waiting.reason)) {
    const message = waiting.message ?? waiting.reason;
    const noPlatform = /no matching manifest|no match for platform/i.test(message);
    const reason: PullFailureReason = noPlatform
      ? "NoMatchingPlatform"
      : waiting.reason === "InvalidImageName"
      ? "InvalidImageName"
      : "ErrImagePull";
    return new PullError(ref, reason, `Cannot pull ${ref}: ${message}`, {
      permanent: noPlatform || PERMANENT_REASONS.has(waiting.reason),
    });
  }
  const initWaiting = pod.init?.state?.waiting;
  if (
    initWaiting?.reason && /ErrImagePull|ImagePullBackOff|InvalidImageName/.test(initWaiting.reason)
  ) {
    return new PullError(
      ref,
      "ErrImagePull",
      `Cannot pull the warden image for ${ref}: ${
        initWaiting.message ?? initWaiting.reason
      } (check --warden-image)`,
    );
  }
  if (pod.phase === "Failed") {
    return new PullError(
      ref,
      "PodRejected",
      `Pull pod ${pod.name} failed: ${pod.reason ?? "Failed"}${
        pod.message ? `: ${pod.message}` : ""
      }`,
    );
  }
  if (terminated) {
    return new PullError(
      ref,
      "RuntimeError",
      `Pull pod ${pod.name} ended without an image ID: ${terminated.reason ?? ""} ${
        terminated.message ?? ""
      }`.trim(),
    );
  }
  return undefined;
}

/** Options for {@linkcode readOwnTolerations}. */
export interface ReadOwnTolerationsOptions {
  kubeConfig: KubeConfig;
  /** The daemon's namespace. */
  namespace: string;
  /** The daemon's own pod; without it there is nothing to read. */
  pod?: string;
  log: Logger;
}

/**
 * Reads the daemon pod's tolerations once, so pull pods land on the same
 * tainted nodes as the daemon ({@linkcode WardenPodStrategyOptions.tolerations}).
 *
 * @returns the tolerations, or `undefined` when the pod is unknown or cannot be read (logged).
 */
export async function readOwnTolerations(
  options: ReadOwnTolerationsOptions,
): Promise<V1Toleration[] | undefined> {
  const { kubeConfig, namespace, pod: name, log } = options;
  if (name === undefined) return undefined;
  try {
    const pod = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace });
    return pod.spec?.tolerations;
  } catch (error) {
    // Why absorb: without them pulls still work on untainted nodes.
    log.warn("Cannot read the daemon's own pod; pull pods get no tolerations", {
      pod: name,
      error: apiMessage(error),
    });
    return undefined;
  }
}

/** Pulls images with warden pods. */
export class WardenPodStrategy implements PullStrategy {
  readonly name = "pod";
  /** The pull-pod watch, for health and status. */
  readonly watches: readonly { status(): WatchStatus }[] = [this];
  readonly #o: WardenPodStrategyOptions;
  readonly #api: CoreV1Api;
  readonly #waiters = new Map<string, Waiter>();
  readonly #pods = new Map<string, PodView>();
  readonly #reflector: Reflector<PodView>;
  readonly #stop = new AbortController();
  /** The daemon's lifetime (from {@linkcode start}), or until {@linkcode close}. */
  #lifetime: AbortSignal = this.#stop.signal;
  /**
   * Names of pods deleted recently, so a deletion seen before the pull that
   * created the pod registered its waiter is not missed. Bounded.
   */
  readonly #deleted = new Set<string>();
  /** Names of pods this instance created (or already collected), recently. */
  readonly #created = new Set<string>();
  /** True once start() has dealt with the leftovers: from then on, orphans are collected. */
  #collecting = false;
  #running?: Promise<void>;

  constructor(options: WardenPodStrategyOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    const labelSelector = wardenPodSelector(options.node);
    const fieldSelector = `spec.nodeName=${options.node}`;
    // Why node-scoped: each daemon sees only its own node's pods; anything
    // cluster-wide would be a scale bug at 1,000 nodes.
    const collection = podCollection(options.kubeConfig, {
      namespace: options.namespace,
      labelSelector,
      fieldSelector,
    });
    this.#reflector = new Reflector<PodView>({
      name: "pull-pods",
      list: collection.list,
      watch: collection.watch,
      heartbeat: collection.heartbeat,
      log: options.log,
      clock: options.clock ?? realClock,
      handler: {
        transform: view,
        replace: (items) => {
          this.#pods.clear();
          for (const pod of items.values()) this.#pods.set(pod.name, pod);
          for (const name of [...this.#waiters.keys()]) {
            const pod = this.#pods.get(name);
            if (pod) this.#settle(pod);
            // Not in the list: it may have been created after the list's
            // snapshot. Ask before failing a pull that may be running fine.
            else void this.#confirmGone(name);
          }
        },
        upsert: (_key, pod) => {
          this.#pods.set(pod.name, pod);
          this.#settle(pod);
          this.#collectOrphan(pod);
        },
        remove: (key) => {
          const name = key.slice(key.indexOf("/") + 1);
          this.#pods.delete(name);
          this.#rememberDeleted(name);
          this.#gone(name);
        },
      },
    });
  }

  /** The pull-pod watch's state, in the shape of a source's, for health and status. */
  status(): WatchStatus {
    const r = this.#reflector.status();
    return {
      name: "pull-pods",
      synced: r.synced,
      available: r.available,
      reason: r.reason,
      objects: this.#pods.size,
      errors: 0,
      restarts: r.restarts,
      lastActivity: r.lastActivity,
    };
  }

  /** Pull pods this strategy currently sees on its node. */
  pods(): string[] {
    return [...this.#pods.keys()].sort();
  }

  /**
   * Starts the pod watch and deletes pull pods an earlier daemon instance
   * left on this node, before any new one is created: no duplicates, no leaks.
   */
  async start(signal: AbortSignal): Promise<void> {
    const both = AbortSignal.any([signal, this.#stop.signal]);
    this.#lifetime = both;
    this.#running = this.#reflector.run(both);
    await Promise.race([this.#reflector.synced, untilAborted(both)]);
    // Stopping (perhaps before it started): no leftovers deleted now.
    if (both.aborted) return;
    const leftovers = this.pods();
    if (leftovers.length > 0) {
      this.#o.log.info("Deleting pull pods left by an earlier instance", {
        node: this.#o.node,
        pods: leftovers,
      });
      for (const name of leftovers) this.#created.add(name);
      await Promise.all(leftovers.map((name) => this.#delete(name)));
    }
    this.#collecting = true;
  }

  async pull(ref: string, options: PullOptions): Promise<PullResult> {
    const { signal } = options;
    signal.throwIfAborted();
    const manifest = newWardenPod(ref, {
      node: this.#o.node,
      namespace: this.#o.namespace,
      wardenImage: this.#o.wardenImage,
      owner: this.#o.owner,
      // Why only for trusted images: a pod with the secrets pulls whatever a
      // tenant names with the operator's credentials, and the image then runs
      // without them for any pod with IfNotPresent.
      imagePullSecrets: options.trusted ? this.#o.imagePullSecrets : undefined,
      tolerations: this.#o.tolerations as object[] | undefined,
      priorityClassName: this.#o.priorityClassName,
    });
    let created: V1Pod;
    try {
      created = await this.#api.createNamespacedPod({
        namespace: this.#o.namespace,
        body: manifest,
      });
    } catch (error) {
      const status = apiStatus(error);
      throw new PullError(
        ref,
        "ApiError",
        `Cannot create pull pod for ${ref}: ${apiMessage(error)}`,
        // A 422 means the pod spec itself is refused; retrying soon cannot help.
        { cause: error, permanent: status === 422 },
      );
    }
    const name = created.metadata!.name!;
    this.#rememberCreated(name);
    this.#o.log.debug("Pull pod created", { image: ref, node: this.#o.node, pod: name });
    try {
      return await new Promise<PullResult>((resolve, reject) => {
        const onAbort = () => {
          this.#waiters.delete(name);
          reject(signal.reason);
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        const done = () => signal.removeEventListener("abort", onAbort);
        this.#waiters.set(name, {
          ref,
          resolve: (r) => {
            done();
            resolve(r);
          },
          reject: (e) => {
            done();
            reject(e);
          },
        });
        const seen = this.#pods.get(name);
        if (seen) this.#settle(seen);
        else if (this.#deleted.has(name)) this.#gone(name);
      });
    } finally {
      this.#waiters.delete(name);
      // Whatever the outcome (success, failure, timeout, removal, shutdown),
      // the pod goes: it has done its job or can no longer do it.
      await this.#delete(name);
    }
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  #settle(pod: PodView): void {
    const waiter = this.#waiters.get(pod.name);
    if (!waiter) return;
    const outcome = podOutcome(waiter.ref, pod);
    if (outcome === undefined) return;
    this.#waiters.delete(pod.name);
    if (outcome instanceof PullError) waiter.reject(outcome);
    else waiter.resolve(outcome);
  }

  /**
   * Deletes a finished pull pod on this node that no pull of this instance
   * knows: one whose create timed out on the client's side after the API
   * server had made it (its name never came back), so no `finally` deletes
   * it. Level-triggered: whatever left it, it goes once it is done. A pod of
   * this instance is never taken for one: its name is remembered from the
   * create's answer until long after its own delete.
   */
  #collectOrphan(pod: PodView): void {
    if (pod.deleting || this.#waiters.has(pod.name) || this.#created.has(pod.name)) return;
    if (!this.#collecting) return; // start() deals with what an earlier instance left
    if (pod.phase !== "Succeeded" && pod.phase !== "Failed") return;
    this.#created.add(pod.name); // once
    this.#o.log.info("Deleting a finished pull pod no pull knows (its create timed out)", {
      node: this.#o.node,
      pod: pod.name,
    });
    void this.#delete(pod.name);
  }

  /** Remembers `name` as this instance's pod (bounded, oldest forgotten first). */
  #rememberCreated(name: string): void {
    this.#created.add(name);
    if (this.#created.size > 1024) this.#created.delete(this.#created.values().next().value!);
  }

  #rememberDeleted(name: string): void {
    this.#deleted.add(name);
    if (this.#deleted.size > 256) this.#deleted.delete(this.#deleted.values().next().value!);
  }

  async #confirmGone(name: string): Promise<void> {
    try {
      const pod = await this.#api.readNamespacedPod({ name, namespace: this.#o.namespace });
      const seen = view(pod);
      this.#pods.set(name, seen);
      this.#settle(seen);
    } catch (error) {
      if (apiStatus(error) === 404) this.#gone(name);
      // Otherwise keep waiting: the watch or the pull timeout settles it.
    }
  }

  #gone(name: string): void {
    const waiter = this.#waiters.get(name);
    if (!waiter) return;
    this.#waiters.delete(name);
    waiter.reject(
      new PullError(waiter.ref, "PodDeleted", `Pull pod ${name} was deleted before it finished`),
    );
  }

  /**
   * Deletes a pull pod, retrying with backoff until it is gone or the daemon
   * stops. Why wait: the pull that owns the pod keeps its concurrency slot
   * until then, so a delete failing (an API storm) cannot let more pull pods
   * exist on the node than `--max-concurrent-pulls`. Why give up on stop: the
   * next start deletes leftovers, and the ownerReference lets the garbage
   * collector remove them if the daemon goes.
   */
  async #delete(name: string): Promise<void> {
    for (let retry = 0;; retry++) {
      try {
        await this.#api.deleteNamespacedPod({
          name,
          namespace: this.#o.namespace,
          gracePeriodSeconds: 0,
        });
        this.#o.log.debug("Pull pod deleted", { node: this.#o.node, pod: name });
        return;
      } catch (error) {
        if (apiStatus(error) === 404) return;
        if (retry === 0) {
          this.#o.log.warn("Cannot delete pull pod; will retry", {
            pod: name,
            error: apiMessage(error),
          });
        }
        if (this.#lifetime.aborted) return;
        const delay = backoffDelay(retry + 1, {
          baseMs: 1_000,
          maxMs: MAX_DELETE_RETRY_MS,
          random: this.#o.random,
        });
        try {
          await (this.#o.clock ?? realClock).sleep(delay, this.#lifetime);
        } catch {
          return;
        }
      }
    }
  }
}
