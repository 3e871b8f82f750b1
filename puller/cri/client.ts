/**
 * A small client for the Kubernetes Container Runtime Interface (CRI,
 * `runtime.v1`) over the runtime's unix socket: the calls the CRI pull
 * strategy needs and nothing else.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
// Imported as text, not read from disk at run time: the daemon then needs no
// read permission for it, and `deno compile` embeds it.
import CRI_PROTO from "./cri.proto" with { type: "text" };

/** Registry credentials passed with a pull (CRI `AuthConfig`). */
export interface AuthConfig {
  /** User name. */
  readonly username?: string;
  /** Password. */
  readonly password?: string;
  /** `base64("username:password")`, the form dockerconfigjson files hold. */
  readonly auth?: string;
  /** The registry these credentials are for. */
  readonly serverAddress?: string;
  /** An OAuth refresh token (`identitytoken` in dockerconfigjson). */
  readonly identityToken?: string;
  /** A bearer token sent to the registry as is. */
  readonly registryToken?: string;
}

/** One image the runtime holds (CRI `Image`). */
export interface CriImage {
  /** Image ID, the digest of its config: `sha256:…`. */
  readonly id: string;
  /** References by tag: `registry/repo:tag`. */
  readonly repoTags: readonly string[];
  /** References by digest: `registry/repo@sha256:…`. */
  readonly repoDigests: readonly string[];
  /** Size in bytes. */
  readonly size: number;
}

/** What the runtime says about itself (CRI `VersionResponse`). */
export interface CriVersion {
  /** The CRI version the runtime answered for. */
  readonly version: string;
  /** `containerd`, `cri-o`, … */
  readonly runtimeName: string;
  /** The runtime's own version. */
  readonly runtimeVersion: string;
  /** The CRI API version it speaks: `v1`. */
  readonly runtimeApiVersion: string;
}

/** Per-call options. */
export interface CriCallOptions {
  /** Aborting it cancels the call. */
  readonly signal?: AbortSignal;
  /** Absolute deadline in epoch milliseconds; becomes the gRPC deadline. */
  readonly deadline?: number;
}

/** The CRI calls the pull strategy makes. Tests substitute a fake. */
export interface CriClient {
  /** `RuntimeService/Version`: proves the socket answers and speaks `runtime.v1`. */
  version(options?: CriCallOptions): Promise<CriVersion>;
  /** `ImageService/ImageStatus`: the image, or `undefined` when it is not present. */
  imageStatus(image: string, options?: CriCallOptions): Promise<CriImage | undefined>;
  /** `ImageService/ListImages`: every image the runtime holds. */
  listImages(options?: CriCallOptions): Promise<CriImage[]>;
  /** `ImageService/PullImage`: pulls `image` and returns the runtime's `image_ref`. */
  pullImage(
    image: string,
    options?: CriCallOptions & { readonly auth?: AuthConfig },
  ): Promise<string>;
  /** Closes the connection. */
  close(): void;
}

/**
 * A failed CRI call: the gRPC status code and the runtime's own message.
 * `code` is one of `grpc.status` (e.g. 4 = DEADLINE_EXCEEDED, 14 = UNAVAILABLE).
 */
export class CriCallError extends Error {
  override readonly name = "CriCallError";
  /** The gRPC status code. */
  readonly code: number;
  /** The runtime's message (gRPC status details). */
  readonly details: string;

  constructor(method: string, code: number, details: string, options?: { cause?: unknown }) {
    super(`CRI call ${method} failed: ${grpc.status[code] ?? code}: ${details}`, options);
    this.code = code;
    this.details = details;
  }
}

/**
 * The environment variables grpc-js reads (each is read whether set or not, so
 * Deno needs `--allow-env` for every one). With these, the client needs only
 * `--allow-net=unix:SOCKET --allow-read=SOCKET --allow-write=SOCKET`.
 */
const GRPC_ENV_VARIABLES: readonly string[] = Object.freeze([
  "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
  "GRPC_EXPERIMENTAL_ENABLE_OUTLIER_DETECTION",
  "GRPC_NODE_DEBUG_SEND_ERROR_DETAILS",
  "GRPC_NODE_TRACE",
  "GRPC_NODE_USE_ALTERNATIVE_RESOLVER",
  "GRPC_NODE_VERBOSITY",
  "GRPC_SSL_CIPHER_SUITES",
  "GRPC_TRACE",
  "GRPC_VERBOSITY",
]);

/** The Deno permission flags a process needs to talk CRI over `socket`. */
export function criPermissionFlags(socket: string): string[] {
  return [
    `--allow-net=unix:${socket}`,
    `--allow-read=${socket}`,
    `--allow-write=${socket}`,
    `--allow-env=${GRPC_ENV_VARIABLES.join(",")}`,
  ];
}

/** gRPC status codes, re-exported so callers need not import grpc-js. */
export const GrpcStatus = grpc.status;

// Field names become camelCase (image_ref → imageRef); 64-bit sizes become
// numbers (an image is far below 2^53 bytes); absent repeated fields become [].
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: false,
  arrays: true,
  objects: false,
};

let packageDefinition: protoLoader.PackageDefinition | undefined;

function definitions(): protoLoader.PackageDefinition {
  if (packageDefinition === undefined) {
    const parsed = protobuf.parse(CRI_PROTO, { keepCase: false });
    packageDefinition = protoLoader.fromJSON(parsed.root.toJSON(), LOADER_OPTIONS);
  }
  return packageDefinition;
}

function method(
  service: "RuntimeService" | "ImageService",
  name: string,
): protoLoader.MethodDefinition<object, object> {
  const def = definitions()[`runtime.v1.${service}`] as protoLoader.ServiceDefinition;
  return def[name];
}

interface RawImage {
  id?: string;
  repoTags?: string[];
  repoDigests?: string[];
  size?: number;
}

function toImage(raw: RawImage): CriImage {
  return {
    id: raw.id ?? "",
    repoTags: raw.repoTags ?? [],
    repoDigests: raw.repoDigests ?? [],
    size: raw.size ?? 0,
  };
}

/** Options for {@linkcode createCriClient}. */
export interface CriClientOptions {
  /**
   * Largest response accepted, in bytes; `ListImages` on a busy node is large.
   * @default {16777216}
   */
  readonly maxReceiveBytes?: number;
}

/**
 * Connects to a CRI runtime's unix socket, e.g. `/run/containerd/containerd.sock`
 * or `/var/run/crio/crio.sock`. The connection is made lazily on the first call.
 */
export function createCriClient(socket: string, options: CriClientOptions = {}): CriClient {
  if (socket === "") throw new TypeError('Cannot use CRI socket "": the path is empty');
  const address = socket.startsWith("unix:") ? socket : `unix://${socket}`;
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": options.maxReceiveBytes ?? 16 * 1024 * 1024,
    // A local socket: no DNS, no proxies. Why: the daemon has no network
    // permission beyond the API server, and the socket is not behind a proxy.
    "grpc.enable_http_proxy": 0,
  });

  const unary = <Res>(
    service: "RuntimeService" | "ImageService",
    name: string,
    request: object,
    callOptions: CriCallOptions = {},
  ): Promise<Res> => {
    const def = method(service, name);
    const signal = callOptions.signal;
    if (signal?.aborted) {
      return Promise.reject(
        new CriCallError(name, grpc.status.CANCELLED, "cancelled before start", {
          cause: signal.reason,
        }),
      );
    }
    return new Promise<Res>((resolve, reject) => {
      const grpcOptions: grpc.CallOptions = {};
      if (callOptions.deadline !== undefined) grpcOptions.deadline = callOptions.deadline;
      const call = client.makeUnaryRequest<object, object>(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        request,
        new grpc.Metadata(),
        grpcOptions,
        (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) {
            reject(
              new CriCallError(name, error.code ?? grpc.status.UNKNOWN, error.details ?? "", {
                cause: error,
              }),
            );
          } else {
            resolve(response as Res);
          }
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  };

  return {
    async version(options) {
      const res = await unary<Partial<CriVersion>>(
        "RuntimeService",
        "Version",
        { version: "v1" },
        options,
      );
      return {
        version: res.version ?? "",
        runtimeName: res.runtimeName ?? "",
        runtimeVersion: res.runtimeVersion ?? "",
        runtimeApiVersion: res.runtimeApiVersion ?? "",
      };
    },
    async imageStatus(image, options) {
      const res = await unary<{ image?: RawImage | null }>(
        "ImageService",
        "ImageStatus",
        { image: { image } },
        options,
      );
      return res.image ? toImage(res.image) : undefined;
    },
    async listImages(options) {
      const res = await unary<{ images?: RawImage[] }>("ImageService", "ListImages", {}, options);
      return (res.images ?? []).map(toImage);
    },
    async pullImage(image, options) {
      const request: { image: { image: string }; auth?: AuthConfig } = { image: { image } };
      if (options?.auth !== undefined) request.auth = options.auth;
      const res = await unary<{ imageRef?: string }>(
        "ImageService",
        "PullImage",
        request,
        options,
      );
      return res.imageRef ?? "";
    },
    close() {
      client.close();
    },
  };
}
