/**
 * OpenAPI v3 documents (`/openapi/v3` and one per group-version), as
 * kube-apiserver serves them: kubectl reads them to learn that the server
 * validates fields itself (`fieldValidation` on each PATCH), so `kubectl
 * apply -f` works without `--validate=false`, and what each kind looks like.
 *
 * Not served: `/openapi/v2`, whose only encoding kubectl accepts is protobuf.
 * kubectl needs it only for servers without v3. The PATCH operations list no
 * strategic-merge content type, so kubectl computes strategic merge patches
 * for built-in kinds from its own compiled-in types, as for a server whose
 * documents lack patch metadata.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ARGO_GROUP, ARGO_VERSION, type ResourceInfo, RESOURCES } from "./resources.ts";
import { openApiSchema, SCHEMAS } from "./schemas.ts";

/** `api/v1` or `apis/argoproj.io/v1alpha1`. */
function groupVersionPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function schemaName(info: ResourceInfo): string {
  return info.group
    ? `io.argoproj.workflow.${info.version}.${info.kind}`
    : `io.k8s.api.core.${info.version}.${info.kind}`;
}

const gvk = (info: ResourceInfo) => [{
  group: info.group,
  version: info.version,
  kind: info.kind,
}];

function queryParameter(name: string, description: string): Record<string, unknown> {
  return { name, in: "query", description, schema: { type: "string", uniqueItems: true } };
}

const WRITE_PARAMETERS = [
  queryParameter(
    "fieldValidation",
    "How to handle unknown fields: Ignore, Warn (the default: dropped, with a warning) or Strict (rejected).",
  ),
  queryParameter("fieldManager", "The actor making the change; required for apply patches."),
  queryParameter("dryRun", "Not supported by the fake."),
];

function operation(
  info: ResourceInfo,
  action: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const ref = { $ref: `#/components/schemas/${schemaName(info)}` };
  return {
    operationId: `${action}${info.kind}`,
    responses: { "200": { description: "OK", content: { "application/json": { schema: ref } } } },
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": gvk(info)[0],
    ...extra,
  };
}

function pathsOf(info: ResourceInfo): Record<string, unknown> {
  const prefix = `/${groupVersionPath(info.group, info.version)}`;
  const collections = info.namespaced
    ? [`${prefix}/namespaces/{namespace}/${info.plural}`, `${prefix}/${info.plural}`]
    : [`${prefix}/${info.plural}`];
  const item = `${collections[0]}/{name}`;
  const body = (types: string[]) => ({
    requestBody: {
      content: Object.fromEntries(
        types.map((t) => [t, { schema: { $ref: `#/components/schemas/${schemaName(info)}` } }]),
      ),
    },
  });
  const paths: Record<string, unknown> = {
    [collections[0]]: {
      get: operation(info, "list"),
      post: operation(info, "post", { parameters: WRITE_PARAMETERS, ...body(["*/*"]) }),
    },
    [item]: {
      get: operation(info, "get"),
      put: operation(info, "put", { parameters: WRITE_PARAMETERS, ...body(["*/*"]) }),
      patch: operation(info, "patch", {
        parameters: [
          ...WRITE_PARAMETERS,
          queryParameter("force", "Apply: take fields owned by other managers."),
        ],
        ...body([
          "application/apply-patch+yaml",
          "application/json-patch+json",
          "application/merge-patch+json",
        ]),
      }),
      delete: operation(info, "delete"),
    },
  };
  if (collections[1]) paths[collections[1]] = { get: operation(info, "list") };
  return paths;
}

/** The document of one group-version. */
export function groupVersionDocument(group: string, version: string): Record<string, unknown> {
  const infos = RESOURCES.filter((r) => r.group === group && r.version === version);
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes (fake)", version: "v1.32.0-fake" },
    paths: Object.assign({}, ...infos.map(pathsOf)),
    components: {
      schemas: Object.fromEntries(infos.map((info) => [
        schemaName(info),
        { ...openApiSchema(SCHEMAS[info.plural]), "x-kubernetes-group-version-kind": gvk(info) },
      ])),
    },
  };
}

/** The group-versions served: the core one, and Argo's while it is installed. */
function groupVersions(argoInstalled: boolean): [string, string][] {
  return argoInstalled ? [["", "v1"], [ARGO_GROUP, ARGO_VERSION]] : [["", "v1"]];
}

/** `/openapi/v3`: where each group-version's document is, with a hash of its content. */
export function openApiRoot(argoInstalled: boolean): Record<string, unknown> {
  return {
    paths: Object.fromEntries(
      groupVersions(argoInstalled).map(([group, version]) => {
        const path = groupVersionPath(group, version);
        const hash = createHash("sha512")
          .update(JSON.stringify(groupVersionDocument(group, version)))
          .digest("hex")
          .slice(0, 128);
        return [path, { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` }];
      }),
    ),
  };
}

/** The document at `/openapi/v3/<path>`, if it is served. */
export function openApiDocument(
  path: string,
  argoInstalled: boolean,
): Record<string, unknown> | undefined {
  for (const [group, version] of groupVersions(argoInstalled)) {
    if (path === groupVersionPath(group, version)) return groupVersionDocument(group, version);
  }
  return undefined;
}
