/**
 * Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, the Argo group
 * and version), complete enough for kubectl and client-node.
 *
 * @module
 */
import {
  ARGO_GROUP,
  ARGO_VERSION,
  COORDINATION_GROUP,
  COORDINATION_VERSION,
  type ResourceInfo,
  RESOURCES,
} from "./resources.ts";

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/** The Kubernetes version the fake claims to be. */
export const FAKE_VERSION = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-fake",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2025-01-01T00:00:00Z",
  goVersion: "go1.23.4",
  compiler: "gc",
  platform: "linux/amd64",
} as const;

function resourceEntries(info: ResourceInfo): Record<string, unknown>[] {
  const entries: Record<string, unknown>[] = [{
    name: info.plural,
    singularName: info.singular,
    namespaced: info.namespaced,
    kind: info.kind,
    verbs: VERBS,
    ...(info.shortNames.length ? { shortNames: info.shortNames } : {}),
    ...(info.plural === "pods" ? { categories: ["all"] } : {}),
  }];
  if (info.statusSubresource) {
    entries.push({
      name: `${info.plural}/status`,
      singularName: "",
      namespaced: info.namespaced,
      kind: info.kind,
      verbs: ["get", "patch", "update"],
    });
  }
  return entries;
}

/** `/api` */
export function apiVersions(serverAddress: string): unknown {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

/** `/api/v1` */
export function coreResourceList(): unknown {
  return {
    kind: "APIResourceList",
    groupVersion: "v1",
    resources: RESOURCES.filter((r) => r.group === "").flatMap(resourceEntries),
  };
}

function argoGroup(): Record<string, unknown> {
  const version = { groupVersion: `${ARGO_GROUP}/${ARGO_VERSION}`, version: ARGO_VERSION };
  return { name: ARGO_GROUP, versions: [version], preferredVersion: version };
}

function coordinationGroup(): Record<string, unknown> {
  const version = {
    groupVersion: `${COORDINATION_GROUP}/${COORDINATION_VERSION}`,
    version: COORDINATION_VERSION,
  };
  return { name: COORDINATION_GROUP, versions: [version], preferredVersion: version };
}

/** `/apis` */
export function apiGroupList(argoInstalled: boolean): unknown {
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [coordinationGroup(), ...(argoInstalled ? [argoGroup()] : [])],
  };
}

/** `/apis/coordination.k8s.io` */
export function coordinationApiGroup(): unknown {
  return { kind: "APIGroup", apiVersion: "v1", ...coordinationGroup() };
}

/** `/apis/coordination.k8s.io/v1` */
export function coordinationResourceList(): unknown {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: `${COORDINATION_GROUP}/${COORDINATION_VERSION}`,
    resources: RESOURCES.filter((r) => r.group === COORDINATION_GROUP).flatMap(resourceEntries),
  };
}

/** `/apis/argoproj.io` */
export function argoApiGroup(): unknown {
  return { kind: "APIGroup", apiVersion: "v1", ...argoGroup() };
}

/** `/apis/argoproj.io/v1alpha1` */
export function argoResourceList(): unknown {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: `${ARGO_GROUP}/${ARGO_VERSION}`,
    resources: RESOURCES.filter((r) => r.group === ARGO_GROUP).flatMap(resourceEntries),
  };
}
