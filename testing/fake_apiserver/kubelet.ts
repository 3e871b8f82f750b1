/**
 * A simulated kubelet for one node: it runs the pods bound to its node
 * through realistic status transitions (init containers, image pulls with
 * per-image delays, ErrImagePull/ImagePullBackOff alternation, terminated
 * containers with an imageID) and keeps the node's `status.images` current.
 * It writes through the store, so every change is a MODIFIED watch event, as
 * the real kubelet's status updates are.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parseReference, tryNormalizeReference } from "../../images/reference.ts";
import type { Logger } from "../../log/logger.ts";
// The node's status.images holds at most as many entries as the daemon expects of a kubelet.
import { NODE_STATUS_MAX_IMAGES } from "../../puller/node_images.ts";
import { resourceInfo } from "./resources.ts";
import { kubeTime, type Store, type StoreEvent } from "./store.ts";
import type { KubeObject } from "./types.ts";

/** Why an image marked unpullable fails. */
export type UnpullableReason = "ErrImagePull" | "InvalidImageName" | "NoMatchingPlatform";

/** A pluggable real pull; throwing makes the container wait with ErrImagePull and the error's message. */
export type PullHook = (image: string, pullPolicy: string) => Promise<{ imageID: string }>;

/** One successful pull. */
export interface PullRecord {
  /** The image as written in the pod spec. */
  readonly image: string;
  /** Its normalised form (`docker.io/library/alpine:latest`). */
  readonly ref: string;
  /** `Date.now()` when the pull finished. */
  readonly at: number;
}

/** The test-facing controls of a simulated kubelet. */
export interface FakeKubelet {
  /** The node it runs. */
  readonly node: string;
  /** Pull time for images without their own delay. @default {20} */
  defaultPullDelayMs: number;
  /** First back-off after a failed pull (doubles, up to 8 times this). @default {100} */
  pullBackOffMs: number;
  /** Delay between a pod's graceful deletion and its removal. @default {5} */
  terminationDelayMs: number;
  /** Sets the pull time of one image (any spelling of the reference). */
  setPullDelay(image: string, ms: number): void;
  /** Makes pulls of `image` fail with `reason` until {@linkcode markPullable}. */
  markUnpullable(image: string, reason?: UnpullableReason): void;
  /** Undoes {@linkcode markUnpullable}. */
  markPullable(image: string): void;
  /** While on, pods bound to the node stay Pending (containers never start); off releases them. */
  stickPending(on: boolean): void;
  /** Pods admitted at once; beyond it a pod is rejected (phase Failed, reason OutOfpods). */
  setMaxPods(n: number): void;
  /** Replaces the simulated pull (delay and made-up digest) with a real one; undefined restores it. */
  setPullHook(hook?: PullHook): void;
  /** Every successful pull, oldest first. */
  readonly pulls: readonly PullRecord[];
  /** Normalised references present on the node, most recently pulled first. */
  imagesPresent(): string[];
  /** Makes an image present without a pull (as if pre-loaded on the node). */
  preloadImage(image: string): void;
}

class Aborted extends Error {}

function normalise(image: string): string {
  const result = tryNormalizeReference(image);
  return result.ok ? result.ref : image;
}

/** `docker.io/library/alpine@sha256:…` for an image, deterministic from its name. */
export function fakeImageId(image: string): string {
  const ref = parseReference(image);
  const digest = ref.digest ??
    `sha256:${createHash("sha256").update(normalise(image)).digest("hex")}`;
  return `${ref.domain}/${ref.path}@${digest}`;
}

interface PresentImage {
  readonly imageID: string;
  readonly names: string[];
  readonly sizeBytes: number;
}

interface Simulation {
  readonly controller: AbortController;
  finalizing?: ReturnType<typeof setTimeout>;
}

type ContainerStatus = Record<string, unknown>;

/** The simulated kubelet of one node. Created by the server; tests use it as {@linkcode FakeKubelet}. */
export class SimulatedKubelet implements FakeKubelet {
  readonly node: string;
  defaultPullDelayMs = 20;
  pullBackOffMs = 100;
  terminationDelayMs = 5;
  readonly pulls: PullRecord[] = [];
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #delays = new Map<string, number>();
  readonly #unpullable = new Map<string, UnpullableReason>();
  readonly #sims = new Map<string, Simulation>();
  readonly #admitted = new Set<string>();
  /** Present images keyed by normalised reference; insertion order = pull order. */
  readonly #images = new Map<string, PresentImage>();
  #stuck = false;
  readonly #stuckWaiters = new Set<() => void>();
  #maxPods = 110;
  #hook: PullHook | undefined;
  #stopped = false;

  constructor(store: Store, node: string, options: { logger: Logger; maxPods?: number }) {
    this.#store = store;
    this.node = node;
    this.#logger = options.logger.with({ node });
    this.#maxPods = options.maxPods ?? 110;
  }

  setPullDelay(image: string, ms: number): void {
    this.#delays.set(normalise(image), ms);
  }

  markUnpullable(image: string, reason: UnpullableReason = "ErrImagePull"): void {
    this.#unpullable.set(normalise(image), reason);
  }

  markPullable(image: string): void {
    this.#unpullable.delete(normalise(image));
  }

  stickPending(on: boolean): void {
    this.#stuck = on;
    if (!on) {
      for (const release of this.#stuckWaiters) release();
      this.#stuckWaiters.clear();
    }
  }

  setMaxPods(n: number): void {
    this.#maxPods = n;
    this.#store.modify(resourceInfo("nodes"), undefined, this.node, (node) => {
      const status = node.status as Record<string, Record<string, string>>;
      status.capacity = { ...status.capacity, pods: String(n) };
      status.allocatable = { ...status.allocatable, pods: String(n) };
    }, { subresource: "status" });
  }

  setPullHook(hook?: PullHook): void {
    this.#hook = hook;
  }

  imagesPresent(): string[] {
    return [...this.#images.keys()].reverse();
  }

  preloadImage(image: string): void {
    this.#recordImage(normalise(image), fakeImageId(image));
  }

  /** Stops every simulation and timer. */
  stop(): void {
    this.#stopped = true;
    for (const sim of this.#sims.values()) {
      sim.controller.abort();
      if (sim.finalizing !== undefined) clearTimeout(sim.finalizing);
    }
    this.#sims.clear();
  }

  /** Picks up pods already bound to the node. */
  adoptExisting(pods: readonly KubeObject[]): void {
    for (const pod of pods) this.#consider(pod);
  }

  /** Called by the server for every pod event whose pod is bound to this node. */
  handle(event: StoreEvent): void {
    if (this.#stopped) return;
    const pod = event.object;
    const uid = pod.metadata.uid!;
    if (event.type === "DELETED") {
      const sim = this.#sims.get(uid);
      sim?.controller.abort();
      if (sim?.finalizing !== undefined) clearTimeout(sim.finalizing);
      this.#sims.delete(uid);
      this.#admitted.delete(uid);
      return;
    }
    this.#consider(pod);
  }

  #consider(pod: KubeObject): void {
    const uid = pod.metadata.uid!;
    let sim = this.#sims.get(uid);
    if (pod.metadata.deletionTimestamp) {
      if (!sim) this.#sims.set(uid, sim = { controller: new AbortController() });
      sim.controller.abort();
      this.#admitted.delete(uid);
      if (sim.finalizing === undefined) {
        const { namespace, name } = pod.metadata;
        sim.finalizing = setTimeout(() => {
          const current = this.#store.get(resourceInfo("pods"), namespace, name!);
          if (current?.metadata.uid === uid) this.#store.finalizePodDeletion(namespace!, name!);
        }, this.terminationDelayMs);
      }
      return;
    }
    if (sim) return;
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    if (phase === "Succeeded" || phase === "Failed") return;
    sim = { controller: new AbortController() };
    this.#sims.set(uid, sim);
    this.#run(pod, sim.controller.signal).catch((error) => {
      if (!(error instanceof Aborted)) {
        this.#logger.error("Kubelet simulation failed", { pod: pod.metadata.name, error });
      }
    });
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Aborted());
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new Aborted());
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #untilReleased(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Aborted());
      const release = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#stuckWaiters.delete(release);
        reject(new Aborted());
      };
      this.#stuckWaiters.add(release);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #forever(signal: AbortSignal): Promise<never> {
    return new Promise((_, reject) => {
      if (signal.aborted) return reject(new Aborted());
      signal.addEventListener("abort", () => reject(new Aborted()), { once: true });
    });
  }

  async #run(initial: KubeObject, signal: AbortSignal): Promise<void> {
    // Start outside the store's dispatch: the first status write must not nest inside it.
    await Promise.resolve();
    const pods = resourceInfo("pods");
    const { namespace, name, uid } = initial.metadata;
    const write = (mutate: (status: Record<string, unknown>) => void) => {
      if (signal.aborted) throw new Aborted();
      const updated = this.#store.modify(pods, namespace, name!, (pod) => {
        if (pod.metadata.uid !== uid) throw new Aborted();
        pod.status = { ...(pod.status as Record<string, unknown>) };
        mutate(pod.status as Record<string, unknown>);
      }, { subresource: "status" });
      if (!updated) throw new Aborted();
    };
    const pod = this.#store.get(pods, namespace, name!);
    if (!pod || pod.metadata.uid !== uid || signal.aborted) return;
    const spec = pod.spec as {
      restartPolicy?: string;
      initContainers?: { name: string; image: string; imagePullPolicy?: string }[];
      containers: { name: string; image: string; imagePullPolicy?: string }[];
    };
    const now = () => kubeTime(new Date());

    if (this.#admitted.size >= this.#maxPods) {
      write((status) => {
        status.phase = "Failed";
        status.reason = "OutOfpods";
        status.message =
          `Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: ${this.#admitted.size}, capacity: ${this.#maxPods}`;
      });
      return;
    }
    this.#admitted.add(uid!);
    const inits = spec.initContainers ?? [];
    const hasInit = inits.length > 0;
    const waiting = (c: { name: string; image: string }, reason: string, message?: string) => ({
      name: c.name,
      state: { waiting: { reason, ...(message ? { message } : {}) } },
      lastState: {},
      ready: false,
      restartCount: 0,
      image: c.image,
      imageID: "",
      started: false,
    });
    const condition = (type: string, ok: boolean, reason?: string) => ({
      type,
      status: ok ? "True" : "False",
      lastProbeTime: null,
      lastTransitionTime: now(),
      ...(reason ? { reason } : {}),
    });
    const startTime = now();
    write((status) => {
      status.phase = "Pending";
      status.hostIP = "10.0.0.1";
      status.podIP = "10.244.0.10";
      status.startTime = startTime;
      status.conditions = [
        condition("PodReadyToStartContainers", true),
        condition("Initialized", !hasInit, hasInit ? "ContainersNotInitialized" : undefined),
        condition("Ready", false, "ContainersNotReady"),
        condition("ContainersReady", false, "ContainersNotReady"),
        condition("PodScheduled", true),
      ];
      if (hasInit) status.initContainerStatuses = inits.map((c) => waiting(c, "PodInitializing"));
      status.containerStatuses = spec.containers.map((c) =>
        waiting(c, hasInit ? "PodInitializing" : "ContainerCreating")
      );
    });
    if (this.#stuck) await this.#untilReleased(signal);

    const setContainer = (list: string, index: number, value: ContainerStatus) => {
      write((status) => {
        const statuses = [...(status[list] as ContainerStatus[])];
        statuses[index] = value;
        status[list] = statuses;
      });
    };
    const exited = (c: { name: string }, imageID: string, image: string) => {
      const at = now();
      const containerID = `containerd://${crypto.randomUUID().replaceAll("-", "")}`;
      return {
        name: c.name,
        state: {
          terminated: {
            exitCode: 0,
            reason: "Completed",
            startedAt: at,
            finishedAt: at,
            containerID,
          },
        },
        lastState: {},
        ready: false,
        restartCount: 0,
        image,
        imageID,
        started: false,
        containerID,
      };
    };

    for (const [i, c] of inits.entries()) {
      const imageID = await this.#ensureImage(
        c,
        signal,
        (reason, message) => setContainer("initContainerStatuses", i, waiting(c, reason, message)),
      );
      setContainer("initContainerStatuses", i, exited(c, imageID, normalise(c.image)));
    }
    if (hasInit) {
      write((status) => {
        status.conditions = (status.conditions as { type: string }[]).map((cond) =>
          cond.type === "Initialized" ? condition("Initialized", true) : cond
        );
        status.containerStatuses = spec.containers.map((c) => waiting(c, "ContainerCreating"));
      });
    }
    const keepsRunning = (spec.restartPolicy ?? "Always") === "Always";
    for (const [i, c] of spec.containers.entries()) {
      const imageID = await this.#ensureImage(
        c,
        signal,
        (reason, message) => setContainer("containerStatuses", i, waiting(c, reason, message)),
      );
      if (keepsRunning) {
        const at = now();
        setContainer("containerStatuses", i, {
          name: c.name,
          state: { running: { startedAt: at } },
          lastState: {},
          ready: true,
          restartCount: 0,
          image: normalise(c.image),
          imageID,
          started: true,
          containerID: `containerd://${crypto.randomUUID().replaceAll("-", "")}`,
        });
      } else {
        setContainer("containerStatuses", i, exited(c, imageID, normalise(c.image)));
      }
    }
    write((status) => {
      if (keepsRunning) {
        status.phase = "Running";
        status.conditions = (status.conditions as { type: string }[]).map((cond) =>
          cond.type === "Ready" || cond.type === "ContainersReady"
            ? condition(cond.type, true)
            : cond
        );
      } else {
        status.phase = "Succeeded";
        status.conditions = (status.conditions as { type: string }[]).map((cond) =>
          cond.type === "Ready" || cond.type === "ContainersReady"
            ? condition(cond.type, false, "PodCompleted")
            : cond.type === "PodReadyToStartContainers"
            ? condition(cond.type, false)
            : cond
        );
      }
    });
    if (!keepsRunning) this.#admitted.delete(uid!);
  }

  /** Makes the image present as the pull policy asks, reporting waiting states; returns the imageID. */
  async #ensureImage(
    c: { image: string; imagePullPolicy?: string },
    signal: AbortSignal,
    setWaiting: (reason: string, message: string) => void,
  ): Promise<string> {
    const image = c.image;
    const policy = c.imagePullPolicy ?? "IfNotPresent";
    const parsed = tryNormalizeReference(image);
    const invalidName = async (): Promise<never> => {
      setWaiting(
        "InvalidImageName",
        `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`,
      );
      return await this.#forever(signal);
    };
    if (!parsed.ok) return await invalidName();
    const ref = parsed.ref;
    const present = this.#images.get(ref);
    if (policy === "Never") {
      if (present) return present.imageID;
      setWaiting(
        "ErrImageNeverPull",
        `Container image "${image}" is not present with pull policy of Never`,
      );
      return await this.#forever(signal);
    }
    if (policy === "IfNotPresent" && present) return present.imageID;
    let backOff = this.pullBackOffMs;
    while (true) {
      const mark = this.#unpullable.get(ref);
      if (mark === "InvalidImageName") return await invalidName();
      let failure: string | undefined;
      let imageID: string | undefined;
      if (mark === "ErrImagePull") {
        failure =
          `Failed to pull image "${image}": rpc error: code = NotFound desc = failed to pull and unpack image "${ref}": failed to resolve reference "${ref}": ${ref}: not found`;
      } else if (mark === "NoMatchingPlatform") {
        failure =
          `Failed to pull image "${image}": no matching manifest for linux/amd64 in the manifest list entries`;
      } else if (this.#hook) {
        try {
          imageID = (await this.#hook(image, policy)).imageID;
        } catch (error) {
          failure = `Failed to pull image "${image}": ${(error as Error).message}`;
        }
        if (signal.aborted) throw new Aborted();
      } else {
        await this.#sleep(this.#delays.get(ref) ?? this.defaultPullDelayMs, signal);
        imageID = fakeImageId(image);
      }
      if (failure === undefined && imageID !== undefined) {
        this.pulls.push({ image, ref, at: Date.now() });
        this.#recordImage(ref, imageID);
        return imageID;
      }
      // The kubelet alternates: the failed attempt shows ErrImagePull, the wait before the
      // next one ImagePullBackOff, with an exponential back-off between attempts.
      setWaiting("ErrImagePull", failure!);
      await this.#sleep(backOff, signal);
      setWaiting("ImagePullBackOff", `Back-off pulling image "${image}"`);
      await this.#sleep(backOff, signal);
      backOff = Math.min(backOff * 2, this.pullBackOffMs * 8);
    }
  }

  #recordImage(ref: string, imageID: string): void {
    const parsed = parseReference(ref);
    const repo = `${parsed.domain}/${parsed.path}`;
    const digestHex = imageID.slice(imageID.lastIndexOf(":") + 1);
    const names = [imageID];
    if (parsed.tag !== undefined) names.push(`${repo}:${parsed.tag}`);
    this.#images.delete(ref);
    this.#images.set(ref, {
      imageID,
      names,
      sizeBytes: 1_000_000 + (parseInt(digestHex.slice(0, 6), 16) || 0) * 10,
    });
    const images = [...this.#images.values()].reverse().slice(0, NODE_STATUS_MAX_IMAGES)
      .map((i) => ({ names: i.names, sizeBytes: i.sizeBytes }));
    this.#store.modify(resourceInfo("nodes"), undefined, this.node, (node) => {
      node.status = { ...(node.status as Record<string, unknown>), images };
    }, { subresource: "status" });
  }
}
