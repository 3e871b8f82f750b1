/**
 * A faithful in-process Kubernetes API server with simulated kubelets, for
 * tests and for running the daemon by hand. Talk to it over real HTTP(S)
 * through `@kubernetes/client-node` (see {@linkcode FakeApiServer.kubeConfig})
 * or kubectl (see {@linkcode FakeApiServer.kubeconfigYaml}).
 *
 * ```ts
 * const server = await startFakeApiServer({ nodes: ["node-1"] });
 * try {
 *   const core = server.kubeConfig().makeApiClient(CoreV1Api);
 *   await core.listNamespacedConfigMap({ namespace: "default" });
 * } finally {
 *   await server.close();
 * }
 * ```
 *
 * @module
 */
export {
  type AddNodeOptions,
  type AuthzControls,
  type DirectListOptions,
  type FakeApiServer,
  type FakeApiServerOptions,
  type FaultControls,
  type RequestLogView,
  startFakeApiServer,
} from "./fake_api_server.ts";
export {
  fakeImageId,
  type FakeKubelet,
  type PullHook,
  type PullRecord,
  type UnpullableReason,
} from "./kubelet.ts";
export { NODE_STATUS_MAX_IMAGES } from "../../puller/node_images.ts";
export type { DenyRule } from "./authz.ts";
export type { FailNextOptions, FaultMatch, InjectedStatus } from "./faults.ts";
export type { RequestRecord } from "./request_log.ts";
export type { ResourceName } from "./resources.ts";
export { ApiError, type StatusBody } from "./status.ts";
export type { DeleteOptions } from "./store.ts";
export type { KubeObject, ObjectMeta, OwnerReference } from "./types.ts";
