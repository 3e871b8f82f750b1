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
 * kubectl works against it as against a real cluster: `kubectl apply -f`
 * with validation (OpenAPI v3 documents advertise server-side field
 * validation, and unknown fields are handled per `fieldValidation`),
 * `kubectl apply --server-side`, and the server-side Table output of `kubectl
 * get`. Simplified, on purpose (see `server.ts`): server-side apply merges
 * what is applied (a field dropped from the applied configuration stays),
 * owns lists whole in `managedFields`, and detects no conflicts between
 * managers; strategic merge patches are applied as JSON merge patches; there
 * is no `/openapi/v2` (kubectl reads v3); schemas are closed only down to the
 * object, its metadata, the pod spec and containers (see `schemas.ts`).
 *
 * Lists with `resourceVersion=0` are served from a watch cache that may
 * trail the store (`faults.lagWatchCache`), as a real API server's may; a
 * watch from `resourceVersion=0` still starts from the latest state.
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
