/**
 * The resources the fake API server serves, with the metadata discovery,
 * validation and error messages need.
 *
 * @module
 */

/** The plural names of every resource the fake serves. */
export type ResourceName =
  | "pods"
  | "configmaps"
  | "events"
  | "nodes"
  | "secrets"
  | "namespaces"
  | "workflowtemplates"
  | "cronworkflows"
  | "clusterworkflowtemplates"
  | "leases";

/** Static description of one served resource. */
export interface ResourceInfo {
  /** Plural name, used in URLs: `configmaps`. */
  readonly plural: ResourceName;
  /** Singular name: `configmap`. */
  readonly singular: string;
  /** Kind: `ConfigMap`. */
  readonly kind: string;
  /** API group; `""` for the core group. */
  readonly group: string;
  /** API version inside the group: `v1`. */
  readonly version: string;
  /** `v1` or `argoproj.io/v1alpha1`. */
  readonly apiVersion: string;
  /** Whether objects live in a namespace. */
  readonly namespaced: boolean;
  /** kubectl short names. */
  readonly shortNames: readonly string[];
  /** Whether a `/status` subresource exists (the main resource then ignores status changes). */
  readonly statusSubresource: boolean;
  /** Whether `metadata.generation` is maintained. */
  readonly generation: boolean;
  /** Whether updates must carry `metadata.resourceVersion` (true for custom resources). */
  readonly requireResourceVersionOnUpdate: boolean;
  /** Whether DELETE answers with the object rather than a success Status (pods do). */
  readonly returnDeletedObject: boolean;
  /** Name rule: DNS-1123 subdomain (most) or label (namespaces). */
  readonly nameRule: "subdomain" | "label";
  /**
   * Lists a strategic merge patch merges by key (the API types'
   * `patchMergeKey`), by dotted path; every other list is replaced.
   */
  readonly mergeKeys?: Readonly<Record<string, string>>;
}

/** The group of the Argo Workflows custom resources. */
export const ARGO_GROUP = "argoproj.io";
/** The version of the Argo Workflows custom resources. */
export const ARGO_VERSION = "v1alpha1";
/** The group of Leases (leader election). */
export const COORDINATION_GROUP = "coordination.k8s.io";
/** The version of Leases served. */
export const COORDINATION_VERSION = "v1";

function core(
  plural: ResourceName,
  kind: string,
  options: Partial<ResourceInfo> = {},
): ResourceInfo {
  return {
    plural,
    singular: kind.toLowerCase(),
    kind,
    group: "",
    version: "v1",
    apiVersion: "v1",
    namespaced: true,
    shortNames: [],
    statusSubresource: false,
    generation: false,
    requireResourceVersionOnUpdate: false,
    returnDeletedObject: false,
    nameRule: "subdomain",
    ...options,
  };
}

function argo(
  plural: ResourceName,
  kind: string,
  options: Partial<ResourceInfo> = {},
): ResourceInfo {
  return core(plural, kind, {
    group: ARGO_GROUP,
    version: ARGO_VERSION,
    apiVersion: `${ARGO_GROUP}/${ARGO_VERSION}`,
    generation: true,
    requireResourceVersionOnUpdate: true,
    ...options,
  });
}

/** Every served resource. */
export const RESOURCES: readonly ResourceInfo[] = [
  core("pods", "Pod", {
    shortNames: ["po"],
    statusSubresource: true,
    generation: true,
    returnDeletedObject: true,
  }),
  core("configmaps", "ConfigMap", { shortNames: ["cm"] }),
  core("events", "Event", { shortNames: ["ev"] }),
  core("secrets", "Secret"),
  core("nodes", "Node", {
    namespaced: false,
    shortNames: ["no"],
    statusSubresource: true,
    mergeKeys: { "status.conditions": "type", "status.addresses": "type" },
  }),
  core("namespaces", "Namespace", {
    namespaced: false,
    shortNames: ["ns"],
    statusSubresource: true,
    nameRule: "label",
  }),
  // Leases: built in, yet an update must carry metadata.resourceVersion (the
  // registry's AllowUnconditionalUpdate is false), which is what makes leader
  // election safe.
  core("leases", "Lease", {
    group: COORDINATION_GROUP,
    version: COORDINATION_VERSION,
    apiVersion: `${COORDINATION_GROUP}/${COORDINATION_VERSION}`,
    requireResourceVersionOnUpdate: true,
  }),
  argo("workflowtemplates", "WorkflowTemplate", { shortNames: ["wftmpl"] }),
  argo("cronworkflows", "CronWorkflow", { shortNames: ["cwf", "cronwf"] }),
  argo("clusterworkflowtemplates", "ClusterWorkflowTemplate", {
    namespaced: false,
    shortNames: ["clusterwftmpl", "cwft"],
  }),
];

const BY_PLURAL = new Map<string, ResourceInfo>(RESOURCES.map((r) => [r.plural, r]));

/** Looks up a resource by plural name. */
export function findResource(group: string, plural: string): ResourceInfo | undefined {
  const info = BY_PLURAL.get(plural);
  return info && info.group === group ? info : undefined;
}

/**
 * Returns the resource with this plural name.
 *
 * @throws {TypeError} when the fake does not serve it.
 */
export function resourceInfo(plural: string): ResourceInfo {
  const info = BY_PLURAL.get(plural);
  if (!info) {
    throw new TypeError(
      `Unknown resource "${plural}": expected one of ${RESOURCES.map((r) => r.plural).join(", ")}`,
    );
  }
  return info;
}

/** `configmaps` or `workflowtemplates.argoproj.io`, as kube-apiserver names a resource in messages. */
export function qualifiedResource(info: ResourceInfo): string {
  return info.group ? `${info.plural}.${info.group}` : info.plural;
}

/** `ConfigMap` or `WorkflowTemplate.argoproj.io`, as kube-apiserver names a kind in messages. */
export function qualifiedKind(info: ResourceInfo): string {
  return info.group ? `${info.kind}.${info.group}` : info.kind;
}
