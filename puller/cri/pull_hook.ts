/**
 * Lets a simulated kubelet (the fake API server's) pull images through a real
 * CRI runtime, so the warden-pod path meets a real runtime in tests.
 *
 * @module
 */

import type { AuthConfig, CriClient, CriImage } from "./client.ts";
import { repoDigestOf } from "./cri_strategy.ts";

/** A container's `imagePullPolicy`. */
export type ImagePullPolicy = "Always" | "IfNotPresent" | "Never";

/** What a kubelet pull hook resolves to: the container status `imageID`. */
export interface PullHookResult {
  /** `registry/repo@sha256:…` as a kubelet on containerd reports it, else the image ID. */
  readonly imageID: string;
}

/** A kubelet pull hook: `(image, pullPolicy) → { imageID }`; rejects when the pull fails. */
export type PullHook = (image: string, pullPolicy?: string) => Promise<PullHookResult>;

/** Options for {@linkcode criPullHook}. */
export interface CriPullHookOptions {
  /** Credentials for an image, as the kubelet takes them from pull secrets. */
  readonly auth?: (image: string) => AuthConfig | undefined;
  /** Deadline of one pull in milliseconds. @default {60000} */
  readonly timeoutMs?: number;
}

/**
 * A pull hook that does what a kubelet does before starting a container:
 * `Never` only looks, `IfNotPresent` pulls when absent, `Always` pulls.
 * A missing policy follows the kubelet's default: `Always` for `:latest` or
 * untagged images, `IfNotPresent` otherwise.
 *
 * Rejects with an `Error` whose message starts with the kubelet's waiting
 * reason (`ErrImageNeverPull: …`, `ErrImagePull: …`).
 */
export function criPullHook(client: CriClient, options: CriPullHookOptions = {}): PullHook {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return async (image, pullPolicy) => {
    const policy = pullPolicy ?? defaultPolicy(image);
    const deadline = Date.now() + timeoutMs;
    const imageID = (found: CriImage) => repoDigestOf(found, image) ?? found.id;
    if (policy !== "Always") {
      const present = await client.imageStatus(image, { deadline });
      if (present !== undefined) return { imageID: imageID(present) };
      if (policy === "Never") {
        throw new Error(
          `ErrImageNeverPull: container image "${image}" is not present with pull policy of Never`,
        );
      }
    }
    try {
      await client.pullImage(image, { deadline, auth: options.auth?.(image) });
    } catch (error) {
      throw new Error(`ErrImagePull: ${(error as Error).message}`, { cause: error });
    }
    const pulled = await client.imageStatus(image, { deadline });
    if (pulled === undefined) {
      throw new Error(`ErrImagePull: image "${image}" is not present after its pull`);
    }
    return { imageID: imageID(pulled) };
  };
}

function defaultPolicy(image: string): ImagePullPolicy {
  if (image.includes("@")) return "IfNotPresent";
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  const tag = colon > lastSlash ? image.slice(colon + 1) : "latest";
  return tag === "latest" ? "Always" : "IfNotPresent";
}
