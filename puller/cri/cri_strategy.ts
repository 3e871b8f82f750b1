/**
 * The CRI pull strategy: pulls straight through the node's container runtime
 * (containerd, CRI-O) over its unix socket, with no pod per image.
 *
 * Opt-in (`--pull-strategy=cri`): mounting the runtime's socket into the
 * daemon is root-equivalent on the node.
 *
 * @module
 */

import { PullError, type PullFailureReason } from "../errors.ts";
import { isDigestPinned, parseReference } from "../../images/reference.ts";
import type { Logger } from "../../log/logger.ts";
import type { PullOptions, PullResult, PullStrategy } from "../strategy.ts";
import {
  type AuthConfig,
  createCriClient,
  CriCallError,
  type CriClient,
  type CriImage,
  GrpcStatus,
} from "./client.ts";

/** Default for {@linkcode CriPullStrategyOptions.timeoutMs}: five minutes. */
const DEFAULT_CRI_TIMEOUT_MS = 5 * 60 * 1000;

/** Options for {@linkcode CriPullStrategy}. */
export interface CriPullStrategyOptions {
  /** The runtime's socket path, e.g. `/run/containerd/containerd.sock`. */
  readonly socket: string;
  /** Logger. */
  readonly log: Logger;
  /**
   * Credentials for an image, e.g. `(ref) => authForImage(ref, secrets)`.
   * @default {no credentials}
   */
  readonly auth?: (ref: string) => AuthConfig | undefined;
  /**
   * Deadline of one pull (all its CRI calls together), in milliseconds; it is
   * sent as the gRPC deadline, so the runtime stops too.
   * @default {300000}
   */
  readonly timeoutMs?: number;
  /**
   * The CRI client to use instead of connecting to `socket`; for tests.
   * @default {createCriClient(socket)}
   */
  readonly client?: CriClient;
}

/**
 * The repository digest of `image` for `ref`'s repository
 * (`registry/repo@sha256:…`), else its first repository digest.
 */
export function repoDigestOf(image: CriImage, ref: string): string | undefined {
  let repository: string | undefined;
  try {
    const parsed = parseReference(ref);
    repository = `${parsed.domain}/${parsed.path}`;
  } catch {
    repository = undefined;
  }
  return image.repoDigests.find((d) => d.slice(0, d.lastIndexOf("@")) === repository) ??
    image.repoDigests[0];
}

/**
 * The manifest digest of `image` as stored for `ref`'s repository (`sha256:…`),
 * falling back to the image ID when the runtime reports no repository digest.
 */
export function digestOf(image: CriImage, ref: string): string | undefined {
  const repoDigest = repoDigestOf(image, ref);
  if (repoDigest !== undefined) return repoDigest.slice(repoDigest.lastIndexOf("@") + 1);
  return image.id === "" ? undefined : image.id;
}

// containerd's and CRI-O's messages for the cases the puller treats apart.
const NO_PLATFORM =
  /no match for platform|no matching manifest|no image found in (manifest|image) list/i;
const UNAUTHORIZED = /\b401\b|\b403\b|unauthori[sz]ed|authentication required|forbidden|denied/i;
const INVALID_NAME = /invalid reference format|failed to parse image reference|invalid image name/i;

/**
 * Classifies a failed CRI pull into the puller's reasons.
 *
 * Only a platform mismatch and an invalid name are permanent: the next
 * attempt would fail the same way. A missing tag or missing credentials may
 * be fixed by a push or a new secret, so they stay retryable with backoff.
 */
export function classifyPullFailure(
  error: unknown,
  aborted?: AbortSignal,
): { reason: PullFailureReason; permanent: boolean } {
  if (error instanceof CriCallError) {
    if (error.code === GrpcStatus.DEADLINE_EXCEEDED) return { reason: "Timeout", permanent: false };
    if (error.code === GrpcStatus.CANCELLED) {
      const timedOut = aborted?.reason instanceof DOMException &&
        aborted.reason.name === "TimeoutError";
      return { reason: timedOut ? "Timeout" : "RuntimeError", permanent: false };
    }
    if (error.code === GrpcStatus.UNAVAILABLE || error.code === GrpcStatus.UNIMPLEMENTED) {
      return { reason: "RuntimeError", permanent: false };
    }
    const text = error.details;
    if (NO_PLATFORM.test(text)) return { reason: "NoMatchingPlatform", permanent: true };
    if (UNAUTHORIZED.test(text) || error.code === GrpcStatus.UNAUTHENTICATED) {
      return { reason: "Unauthorized", permanent: false };
    }
    if (INVALID_NAME.test(text)) return { reason: "InvalidImageName", permanent: true };
    return { reason: "ErrImagePull", permanent: false };
  }
  return { reason: "RuntimeError", permanent: false };
}

function describe(error: unknown): string {
  if (error instanceof CriCallError) return error.details || error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Pulls images through the node's CRI runtime.
 *
 * An image already present is skipped (CRI `ImageStatus`), unless the pull is
 * a refresh of a tag, which may have moved. A digest-pinned image that is
 * present is never pulled again: its content cannot change.
 */
export class CriPullStrategy implements PullStrategy {
  /** Strategy name, as in `--pull-strategy=cri`. */
  readonly name = "cri";
  readonly #socket: string;
  readonly #log: Logger;
  readonly #auth?: (ref: string) => AuthConfig | undefined;
  readonly #timeoutMs: number;
  readonly #client: CriClient;

  constructor(options: CriPullStrategyOptions) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CRI_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`Cannot use CRI timeout "${timeoutMs}": must be a positive number`);
    }
    this.#socket = options.socket;
    this.#log = options.log.with({ strategy: "cri" });
    this.#auth = options.auth;
    this.#timeoutMs = timeoutMs;
    this.#client = options.client ?? createCriClient(options.socket);
  }

  /**
   * Checks that the socket answers CRI `runtime.v1` (RuntimeService/Version).
   *
   * @throws {Error} `Cannot reach CRI socket "…": …: is --cri-socket right?`
   */
  async start(signal: AbortSignal): Promise<void> {
    let version;
    try {
      version = await this.#client.version({
        signal,
        deadline: Date.now() + Math.min(this.#timeoutMs, 30_000),
      });
    } catch (error) {
      const hint = error instanceof CriCallError && error.code === GrpcStatus.UNIMPLEMENTED
        ? "the runtime does not serve CRI runtime.v1 (containerd 1.6+ and CRI-O 1.20+ do)"
        : "is --cri-socket right?";
      throw new Error(
        `Cannot reach CRI socket "${this.#socket}": ${describe(error)}: ${hint}`,
        { cause: error },
      );
    }
    this.#log.info("CRI runtime connected", {
      socket: this.#socket,
      runtime: version.runtimeName,
      runtimeVersion: version.runtimeVersion,
      apiVersion: version.runtimeApiVersion,
    });
  }

  /**
   * Makes `ref` present on the node.
   *
   * @throws {PullError} with reason `ErrImagePull`, `Unauthorized`,
   * `NoMatchingPlatform` (permanent), `InvalidImageName` (permanent),
   * `Timeout` or `RuntimeError`.
   */
  async pull(ref: string, options: PullOptions): Promise<PullResult> {
    const { signal, refresh } = options;
    try {
      parseReference(ref);
    } catch (error) {
      throw new PullError(ref, "InvalidImageName", (error as Error).message, {
        cause: error,
        permanent: true,
      });
    }
    const deadline = Date.now() + this.#timeoutMs;
    const pinned = isDigestPinned(ref);
    const started = Date.now();
    try {
      // Why check first: a pull of a present image still asks the registry
      // for the manifest; skipping spares the registry and its rate limits.
      // A tag whose digest here is the one the ledger's canary found this
      // period: a pull would fetch nothing new (#16).
      if (refresh && !pinned && options.ledgerDigest !== undefined) {
        const present = await this.#client.imageStatus(ref, { signal, deadline });
        if (present !== undefined && digestOf(present, ref) === options.ledgerDigest) {
          this.#log.debug("Tag holds the ledger's digest; not pulled", {
            image: ref,
            digest: options.ledgerDigest,
          });
          return { skipped: true, digest: options.ledgerDigest };
        }
      }
      if (!refresh || pinned) {
        const present = await this.#client.imageStatus(ref, { signal, deadline });
        if (present !== undefined) {
          const digest = digestOf(present, ref);
          this.#log.debug("Image already present", { image: ref, digest });
          return { skipped: true, digest };
        }
      }
      // Credentials only for images a trusted origin asks for (see PullOptions.trusted).
      const auth = options.trusted ? this.#auth?.(ref) : undefined;
      const imageRef = await this.#client.pullImage(ref, { signal, deadline, auth });
      let digest: string | undefined = imageRef || undefined;
      const pulled = await this.#client.imageStatus(ref, { signal, deadline }).catch(() =>
        undefined
      );
      if (pulled !== undefined) digest = digestOf(pulled, ref) ?? digest;
      this.#log.info("Image pulled", {
        image: ref,
        digest,
        imageId: imageRef,
        durationMs: Date.now() - started,
        withCredentials: auth !== undefined,
      });
      return { digest };
    } catch (error) {
      const { reason, permanent } = classifyPullFailure(error, signal);
      let message = `Cannot pull "${ref}" through CRI socket "${this.#socket}": ${describe(error)}`;
      if (error instanceof CriCallError && error.code === GrpcStatus.DEADLINE_EXCEEDED) {
        message = `Pull of "${ref}" did not finish within ${this.#timeoutMs} ms`;
      } else if (error instanceof CriCallError && error.code === GrpcStatus.CANCELLED) {
        message = `Pull of "${ref}" was cancelled: ${describe(signal.reason)}`;
      }
      throw new PullError(ref, reason, message, { cause: error, permanent });
    }
  }

  /** Closes the connection to the runtime. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
