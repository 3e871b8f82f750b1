/**
 * The HTTP side of the fake API server: routing of kube-apiserver paths,
 * authentication, authorisation, fault injection, the request log, and the
 * list/get/create/update/patch/delete/watch handlers.
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import type { Authorizer } from "./authz.ts";
import {
  apiGroupList,
  apiVersions,
  argoApiGroup,
  argoResourceList,
  coordinationApiGroup,
  coordinationResourceList,
  coreResourceList,
  FAKE_VERSION,
} from "./discovery.ts";
import type { FaultPlan } from "./faults.ts";
import { jsonPatch, mergePatch, patchTypeOf, strategicMergePatch } from "./patch.ts";
import type { RequestLog, RequestRecord } from "./request_log.ts";
import {
  ARGO_GROUP,
  ARGO_VERSION,
  COORDINATION_GROUP,
  COORDINATION_VERSION,
  findResource,
  type ResourceInfo,
} from "./resources.ts";
import { buildFilter, type ObjectFilter } from "./selectors.ts";
import { ApiError, badRequest, failureStatus, notFound, pathNotFound } from "./status.ts";
import { type DeleteOptions, jsonOf, type Store } from "./store.ts";
import { tableOf, tableVersionOf } from "./table.ts";
import { pruneUnknown, SCHEMAS, unknownFields } from "./schemas.ts";
import { openApiDocument, openApiRoot } from "./openapi.ts";
import { parse as parseYaml } from "yaml";
import type { KubeObject } from "./types.ts";
import type { WatchRegistry } from "./watch.ts";

/** What the handler needs from the server it belongs to. */
export interface HandlerContext {
  readonly store: Store;
  readonly watches: WatchRegistry;
  readonly authorizer: Authorizer;
  readonly faults: FaultPlan;
  readonly requests: RequestLog;
  readonly logger: Logger;
  /** The bearer token clients must present. */
  readonly token: string;
  /** The user that token authenticates as. */
  readonly user: string;
  /** `host:port`, for `/api`. */
  readonly serverAddress: () => string;
  readonly argoInstalled: () => boolean;
}

interface ResourceRequest {
  readonly info: ResourceInfo;
  readonly verb: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: "status";
}

const JSON_HEADERS = { "content-type": "application/json" };

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { ...JSON_HEADERS, ...headers },
  });
}

function errorResponse(error: ApiError): Response {
  return json(error.code, error.body, { ...error.headers });
}

function methodNotAllowed(): ApiError {
  return new ApiError(
    failureStatus(
      405,
      "MethodNotAllowed",
      "the server does not allow this method on the requested resource",
    ),
  );
}

/** Parses a resource path after the group/version prefix. */
function parseResourcePath(
  group: string,
  rest: string[],
  method: string,
  params: URLSearchParams,
): ResourceRequest {
  let namespace: string | undefined;
  let parts = rest;
  if (parts[0] === "namespaces" && parts.length >= 3) {
    namespace = parts[1];
    parts = parts.slice(2);
  }
  if (parts.length === 0 || parts.length > 3 || parts.some((p) => p === "")) throw pathNotFound();
  const [plural, name, sub] = parts;
  const info = findResource(group, plural);
  if (!info) throw pathNotFound();
  if (namespace !== undefined && !info.namespaced) throw pathNotFound();
  if (sub !== undefined && !(sub === "status" && info.statusSubresource)) throw pathNotFound();
  if (info.namespaced && name !== undefined && namespace === undefined) throw pathNotFound();
  const watch = params.get("watch") === "true" || params.get("watch") === "1";
  let verb: string;
  switch (method) {
    case "GET":
      verb = watch ? "watch" : name !== undefined ? "get" : "list";
      break;
    case "POST":
      if (name !== undefined) throw methodNotAllowed();
      verb = "create";
      break;
    case "PUT":
      if (name === undefined) throw methodNotAllowed();
      verb = "update";
      break;
    case "PATCH":
      if (name === undefined) throw methodNotAllowed();
      verb = "patch";
      break;
    case "DELETE":
      verb = name !== undefined ? "delete" : "deletecollection";
      break;
    default:
      throw methodNotAllowed();
  }
  if (sub !== undefined && !["get", "update", "patch"].includes(verb)) throw methodNotAllowed();
  return { info, verb, namespace, name, subresource: sub as "status" | undefined };
}

async function readJson(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
}

function listBody(
  info: ResourceInfo,
  items: readonly KubeObject[],
  metadata: Record<string, unknown>,
): string {
  const list = items.map(jsonOf).join(",");
  // As kube-apiserver writes them: a built-in type's list is a typed struct
  // (kind, apiVersion, metadata, then items), while a custom resource's is an
  // unstructured map, encoded with its keys sorted, so `metadata` (and its
  // continue token) comes after the items.
  if (info.group === ARGO_GROUP) {
    return `{"apiVersion":"${info.apiVersion}","items":[${list}],"kind":"${info.kind}List","metadata":${
      JSON.stringify(metadata)
    }}`;
  }
  return `{"kind":"${info.kind}List","apiVersion":"${info.apiVersion}","metadata":${
    JSON.stringify(metadata)
  },"items":[${list}]}`;
}

function filterFor(rr: ResourceRequest, params: URLSearchParams): ObjectFilter {
  const filter = buildFilter(rr.info, {
    namespace: rr.namespace,
    labelSelector: params.get("labelSelector") ?? undefined,
    fieldSelector: params.get("fieldSelector") ?? undefined,
  });
  if (rr.name === undefined) return filter;
  // A watch on a named path watches that one object.
  return {
    ...filter,
    fields: [...filter.fields, { field: "metadata.name", operator: "=", value: rr.name }],
  };
}

function parseInteger(params: URLSearchParams, key: string): number | undefined {
  const raw = params.get(key);
  if (raw === null || raw === "") return undefined;
  if (!/^-?\d+$/.test(raw)) throw badRequest(`invalid value for ${key}: ${JSON.stringify(raw)}`);
  return Number(raw);
}

/**
 * What a write does with fields its kind does not declare, as
 * `fieldValidation` says: Strict rejects the write, Warn (the default, as in
 * kube-apiserver) drops them with a `Warning` header each, Ignore drops them.
 */
function fieldPolicy(
  info: ResourceInfo,
  params: URLSearchParams,
  warnings: string[],
): (obj: KubeObject) => KubeObject {
  const mode = params.get("fieldValidation") || "Warn";
  if (!["Ignore", "Warn", "Strict"].includes(mode)) {
    throw badRequest(
      `fieldValidation: Unsupported value: ${
        JSON.stringify(mode)
      }: supported values: "Ignore", "Strict", "Warn"`,
    );
  }
  const schema = SCHEMAS[info.plural];
  return (obj) => {
    const unknown = unknownFields(schema, obj);
    if (unknown.length === 0) return obj;
    const problems = unknown.map((f) => `unknown field ${JSON.stringify(f)}`);
    if (mode === "Strict") {
      throw badRequest(
        `${info.kind} in version "${info.version}" cannot be handled as a ${info.kind}: strict decoding error: ${
          problems.join(", ")
        }`,
      );
    }
    if (mode === "Warn") warnings.push(...problems);
    return pruneUnknown(schema, obj) as KubeObject;
  };
}

/** A JSON response with one `Warning` header per warning (RFC 7234 style, code 299). */
function withWarnings(response: Response, warnings: readonly string[]): Response {
  for (const w of warnings) response.headers.append("warning", `299 - ${JSON.stringify(w)}`);
  return response;
}

/**
 * The fields an applied configuration sets, in `FieldsV1` form. Simplified:
 * a list is owned as a whole (no `k:`/`i:` items).
 */
function fieldsV1(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [`f:${k}`, fieldsV1(v)]),
  );
}

/**
 * Server-side apply (`PATCH` with `application/apply-patch+yaml`): creates the
 * object when absent, else merges the applied configuration into it, and
 * records the manager in `metadata.managedFields`.
 *
 * Simplified, on purpose: the merge is a JSON merge of what is applied (a
 * field the manager applied before and now leaves out is kept, not removed),
 * lists are owned whole, and there are no conflicts between managers (so
 * `force` changes nothing).
 */
function serverSideApply(
  ctx: HandlerContext,
  rr: ResourceRequest,
  text: string,
  params: URLSearchParams,
): Response {
  const { store } = ctx;
  const { info } = rr;
  const manager = params.get("fieldManager");
  if (!manager) throw badRequest("fieldManager is required for apply requests");
  let applied: KubeObject;
  try {
    applied = parseYaml(text) as KubeObject;
  } catch (error) {
    throw badRequest(`error decoding YAML: ${(error as Error).message}`);
  }
  if (applied === null || typeof applied !== "object" || Array.isArray(applied)) {
    throw badRequest("the apply patch must be an object");
  }
  const apiVersion = (applied as { apiVersion?: unknown }).apiVersion;
  const kind = (applied as { kind?: unknown }).kind;
  if (apiVersion !== info.apiVersion || kind !== info.kind) {
    throw badRequest(
      `the apply patch is a ${String(kind)} of ${
        String(apiVersion)
      }, not a ${info.kind} of ${info.apiVersion}`,
    );
  }
  const meta = (applied.metadata ?? {}) as KubeObject["metadata"];
  if (meta.name !== undefined && meta.name !== rr.name) {
    throw badRequest(
      `the name of the object (${meta.name}) does not match the name on the URL (${rr.name})`,
    );
  }
  if (info.namespaced && meta.namespace !== undefined && meta.namespace !== rr.namespace) {
    throw badRequest(
      `the namespace of the object (${meta.namespace}) does not match the namespace on the URL (${rr.namespace})`,
    );
  }
  const { managedFields: _ignored, ...appliedMeta } = meta;
  const config = { ...applied, metadata: { ...appliedMeta, name: rr.name } } as KubeObject;
  const warnings: string[] = [];
  const fields = fieldPolicy(info, params, warnings);
  const {
    metadata: { name: _n, namespace: _ns, ...ownedMeta },
    apiVersion: _a,
    kind: _k,
    ...rest
  } = config;
  const entry = {
    manager,
    operation: "Apply",
    apiVersion: info.apiVersion,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    fieldsType: "FieldsV1",
    fieldsV1: fieldsV1({
      ...(Object.keys(ownedMeta).length ? { metadata: ownedMeta } : {}),
      ...rest,
    }),
  };
  const withEntry = (obj: KubeObject, before: unknown[] = []): KubeObject => ({
    ...obj,
    metadata: {
      ...obj.metadata,
      managedFields: [
        ...before.filter((e) => {
          const m = e as { manager?: string; operation?: string };
          return !(m.manager === manager && m.operation === "Apply");
        }),
        entry,
      ],
    },
  });
  if (!store.get(info, rr.namespace, rr.name!)) {
    const created = store.create(info, withEntry(fields(config)), { namespace: rr.namespace });
    return withWarnings(json(201, jsonOf(created)), warnings);
  }
  const patched = store.patch(info, rr.namespace, rr.name!, (current) => {
    const merged = mergePatch(current, config) as KubeObject;
    const before = current.metadata.managedFields;
    return withEntry(fields(merged), Array.isArray(before) ? before : []);
  }, { subresource: rr.subresource });
  return withWarnings(json(200, jsonOf(patched)), warnings);
}

async function handleResource(
  ctx: HandlerContext,
  rr: ResourceRequest,
  request: Request,
  params: URLSearchParams,
): Promise<Response> {
  const { store, watches } = ctx;
  const { info } = rr;
  switch (rr.verb) {
    case "get": {
      const obj = store.get(info, rr.namespace, rr.name!);
      if (!obj) throw notFound(info, rr.name!);
      const table = tableVersionOf(request.headers.get("accept"));
      if (table) {
        return json(
          200,
          tableOf(info, [obj], {
            version: table,
            includeObject: params.get("includeObject"),
            listMeta: { resourceVersion: obj.metadata.resourceVersion },
          }),
        );
      }
      return json(200, jsonOf(obj));
    }
    case "list": {
      const result = store.list(info, filterFor(rr, params), {
        limit: parseInteger(params, "limit"),
        continue: params.get("continue") ?? undefined,
        resourceVersion: params.get("resourceVersion") ?? undefined,
        resourceVersionMatch: params.get("resourceVersionMatch") ?? undefined,
      });
      const metadata: Record<string, unknown> = { resourceVersion: result.resourceVersion };
      if (result.continue) metadata.continue = result.continue;
      if (result.remainingItemCount !== undefined) {
        metadata.remainingItemCount = result.remainingItemCount;
      }
      const table = tableVersionOf(request.headers.get("accept"));
      if (table) {
        return json(
          200,
          tableOf(info, result.items, {
            version: table,
            includeObject: params.get("includeObject"),
            listMeta: metadata,
          }),
        );
      }
      return json(200, listBody(info, result.items, metadata));
    }
    case "watch": {
      const rvParam = params.get("resourceVersion") ?? "";
      let from: "initial" | number;
      if (rvParam === "" || rvParam === "0") from = "initial";
      else if (/^\d+$/.test(rvParam)) from = Number(rvParam);
      else throw badRequest(`invalid resource version: ${JSON.stringify(rvParam)}`);
      const filter = filterFor(rr, params);
      const body = watches.open({
        info,
        filter,
        from,
        allowBookmarks: params.get("allowWatchBookmarks") === "true",
        timeoutSeconds: parseInteger(params, "timeoutSeconds"),
      });
      return new Response(body, {
        status: 200,
        headers: { ...JSON_HEADERS, "cache-control": "no-cache, private" },
      });
    }
    case "create": {
      const body = await readJson(request);
      const warnings: string[] = [];
      const fields = fieldPolicy(info, params, warnings);
      const created = store.create(info, fields(body as KubeObject), { namespace: rr.namespace });
      return withWarnings(json(201, jsonOf(created)), warnings);
    }
    case "update": {
      const body = await readJson(request);
      const warnings: string[] = [];
      const fields = fieldPolicy(info, params, warnings);
      const updated = store.update(info, fields(body as KubeObject), {
        namespace: rr.namespace,
        name: rr.name,
        subresource: rr.subresource,
      });
      return withWarnings(json(200, jsonOf(updated)), warnings);
    }
    case "patch": {
      const contentType = (request.headers.get("content-type") ?? "").split(";")[0].trim();
      if (contentType === "application/apply-patch+yaml") {
        return serverSideApply(ctx, rr, await request.text(), params);
      }
      const type = patchTypeOf(request.headers.get("content-type"));
      if (!type) {
        return json(
          415,
          failureStatus(
            415,
            "UnsupportedMediaType",
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`,
          ),
        );
      }
      const body = await readJson(request);
      const warnings: string[] = [];
      const fields = fieldPolicy(info, params, warnings);
      const patched = store.patch(
        info,
        rr.namespace,
        rr.name!,
        (current) =>
          fields(
            (type === "json"
              ? jsonPatch(current, body)
              : type === "strategic"
              ? strategicMergePatch(current, body, info.mergeKeys)
              : mergePatch(current, body)) as KubeObject,
          ),
        {
          subresource: rr.subresource,
        },
      );
      return withWarnings(json(200, jsonOf(patched)), warnings);
    }
    case "delete":
    case "deletecollection": {
      const body = (await readJson(request) ?? {}) as DeleteOptions & { kind?: string };
      const options: DeleteOptions = {
        gracePeriodSeconds: parseInteger(params, "gracePeriodSeconds") ?? body.gracePeriodSeconds,
        propagationPolicy:
          (params.get("propagationPolicy") ?? body.propagationPolicy ?? undefined) as
            | DeleteOptions["propagationPolicy"]
            | undefined,
        preconditions: body.preconditions,
      };
      if (rr.verb === "deletecollection") {
        const { items } = store.list(info, filterFor(rr, params));
        const deleted = items.filter((obj) =>
          store.get(info, obj.metadata.namespace, obj.metadata.name!)
        )
          .map((obj) =>
            store.delete(info, obj.metadata.namespace, obj.metadata.name!, options).object
          );
        return json(
          200,
          listBody(info, deleted, { resourceVersion: String(store.resourceVersion) }),
        );
      }
      const { object } = store.delete(info, rr.namespace, rr.name!, options);
      if (info.returnDeletedObject) return json(200, jsonOf(object));
      return json(200, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Success",
        details: {
          name: rr.name,
          ...(info.group ? { group: info.group } : {}),
          kind: info.plural,
          uid: object.metadata.uid,
        },
      });
    }
  }
  throw methodNotAllowed();
}

function nonResource(ctx: HandlerContext, path: string): unknown | undefined {
  if (path === "/openapi/v3") return openApiRoot(ctx.argoInstalled());
  if (path.startsWith("/openapi/v3/")) {
    return openApiDocument(path.slice("/openapi/v3/".length), ctx.argoInstalled());
  }
  switch (path) {
    case "/version":
      return FAKE_VERSION;
    case "/api":
      return apiVersions(ctx.serverAddress());
    case "/api/v1":
      return coreResourceList();
    case "/apis":
      return apiGroupList(ctx.argoInstalled());
    case `/apis/${COORDINATION_GROUP}`:
      return coordinationApiGroup();
    case `/apis/${COORDINATION_GROUP}/${COORDINATION_VERSION}`:
      return coordinationResourceList();
    case `/apis/${ARGO_GROUP}`:
      return ctx.argoInstalled() ? argoApiGroup() : undefined;
    case `/apis/${ARGO_GROUP}/${ARGO_VERSION}`:
      return ctx.argoInstalled() ? argoResourceList() : undefined;
  }
  return undefined;
}

/**
 * Streams `response`'s body through a counter that adds every byte sent to
 * `record.bytes` (a watch's too, as its events flow).
 */
function counted(response: Response, record: { bytes: number }): Response {
  if (response.body === null) return response;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      record.bytes += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return new Response(response.body.pipeThrough(counter), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** Answers one HTTP request. */
export async function handleRequest(ctx: HandlerContext, request: Request): Promise<Response> {
  const at = Date.now();
  // The log's record of this request; its byte count grows as the body is sent.
  const sent = { bytes: 0 };
  const url = new URL(request.url);
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
  const params = url.searchParams;
  let verb = "get";
  let resource = path;
  let rr: ResourceRequest | undefined;
  let status = 500;
  try {
    if (ctx.faults.latencyMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, ctx.faults.latencyMs));
    }
    let rest: string[] | undefined;
    let group = "";
    if (path.startsWith("/api/v1/")) {
      rest = path.slice("/api/v1/".length).split("/");
    } else if (path.startsWith(`/apis/${ARGO_GROUP}/${ARGO_VERSION}/`)) {
      rest = path.slice(`/apis/${ARGO_GROUP}/${ARGO_VERSION}/`.length).split("/");
      group = ARGO_GROUP;
    } else if (path.startsWith(`/apis/${COORDINATION_GROUP}/${COORDINATION_VERSION}/`)) {
      rest = path.slice(`/apis/${COORDINATION_GROUP}/${COORDINATION_VERSION}/`.length).split("/");
      group = COORDINATION_GROUP;
    }
    if (rest) {
      rr = parseResourcePath(group, rest, request.method, params);
      verb = rr.verb;
      resource = rr.subresource ? `${rr.info.plural}/${rr.subresource}` : rr.info.plural;
    }
    ctx.faults.runBefore(verb, resource);
    const injected = ctx.faults.take(verb, resource);
    if (injected) throw injected;
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      status = 200;
      return counted(new Response("ok", { headers: { "content-type": "text/plain" } }), sent);
    }
    const auth = request.headers.get("authorization");
    // Why a missing token passes: kubectl never sends a bearer token over plain HTTP, and
    // the fake has a single identity anyway. A wrong token is still refused.
    if (auth !== null && auth !== `Bearer ${ctx.token}`) {
      throw new ApiError(failureStatus(401, "Unauthorized", "Unauthorized"));
    }
    let response: Response;
    if (rr) {
      if (rr.info.group === ARGO_GROUP && !ctx.argoInstalled()) throw pathNotFound();
      const denied = ctx.authorizer.check({
        user: ctx.user,
        verb: rr.verb,
        resource: rr.info.plural,
        subresource: rr.subresource,
        group: rr.info.group,
        namespace: rr.namespace,
        name: rr.name,
      });
      if (denied) throw denied;
      response = await handleResource(ctx, rr, request, params);
    } else {
      const body = nonResource(ctx, path);
      if (body === undefined) throw pathNotFound();
      response = json(200, body);
    }
    status = response.status;
    return counted(response, sent);
  } catch (error) {
    if (error instanceof ApiError) {
      status = error.code;
      return counted(errorResponse(error), sent);
    }
    ctx.logger.error("Fake API server request failed", { path, error });
    status = 500;
    return counted(
      errorResponse(
        new ApiError(
          failureStatus(500, "InternalError", `Internal error occurred: ${String(error)}`),
        ),
      ),
      sent,
    );
  } finally {
    ctx.requests.add(Object.defineProperty(
      {
        verb,
        resource,
        ...(rr?.namespace !== undefined ? { namespace: rr.namespace } : {}),
        ...(rr?.name !== undefined ? { name: rr.name } : {}),
        method: request.method,
        url: url.pathname + url.search,
        status,
        at,
        ...(request.headers.get("user-agent")
          ? { userAgent: request.headers.get("user-agent")! }
          : {}),
      },
      "bytes",
      { get: () => sent.bytes, enumerable: true },
    ) as RequestRecord);
  }
}
