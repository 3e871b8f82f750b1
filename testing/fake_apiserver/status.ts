/**
 * `Status` bodies and the error type that carries them, shaped exactly like
 * kube-apiserver's so clients branch on `code` and `reason` as they would in
 * a real cluster.
 *
 * @module
 */
import { qualifiedKind, qualifiedResource, type ResourceInfo } from "./resources.ts";

/** One cause inside `details.causes`. */
export interface StatusCause {
  readonly reason?: string;
  readonly message?: string;
  readonly field?: string;
}

/** `details` of a Status. */
export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly uid?: string;
  readonly causes?: readonly StatusCause[];
  readonly retryAfterSeconds?: number;
}

/** A `meta/v1 Status` object. */
export interface StatusBody {
  readonly kind: "Status";
  readonly apiVersion: "v1";
  readonly metadata: Record<string, never>;
  readonly status: "Failure" | "Success";
  readonly message?: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code: number;
}

/** Builds a failure Status. */
export function failureStatus(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
): StatusBody {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** An API call failed; `body` is the Status the server answers with. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** HTTP status code. */
  readonly code: number;
  /** The Status body. */
  readonly body: StatusBody;
  /** Extra response headers (Retry-After). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(body: StatusBody, headers: Record<string, string> = {}) {
    super(body.message ?? body.reason ?? `HTTP ${body.code}`);
    this.code = body.code;
    this.body = body;
    this.headers = headers;
  }
}

function resourceDetails(info: ResourceInfo, name?: string): StatusDetails {
  return {
    ...(name !== undefined ? { name } : {}),
    ...(info.group ? { group: info.group } : {}),
    kind: info.plural,
  };
}

/** 404 `configmaps "x" not found`. */
export function notFound(info: ResourceInfo, name: string): ApiError {
  return new ApiError(
    failureStatus(
      404,
      "NotFound",
      `${qualifiedResource(info)} "${name}" not found`,
      resourceDetails(info, name),
    ),
  );
}

/** 409 `configmaps "x" already exists`. */
export function alreadyExists(info: ResourceInfo, name: string): ApiError {
  return new ApiError(
    failureStatus(
      409,
      "AlreadyExists",
      `${qualifiedResource(info)} "${name}" already exists`,
      resourceDetails(info, name),
    ),
  );
}

/** 409 Conflict for a stale resourceVersion or a failed precondition. */
export function conflict(info: ResourceInfo, name: string, why?: string): ApiError {
  return new ApiError(
    failureStatus(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualifiedResource(info)} "${name}": ${
        why ??
          "the object has been modified; please apply your changes to the latest version and try again"
      }`,
      resourceDetails(info, name),
    ),
  );
}

/** One field error of a 422 Invalid answer. */
export interface FieldError {
  /** `metadata.name` */
  readonly field: string;
  /** `FieldValueInvalid`, `FieldValueRequired`… */
  readonly type: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden";
  /** The offending value, for Invalid. */
  readonly value?: unknown;
  /** Why. */
  readonly detail: string;
}

function fieldErrorText(error: FieldError): string {
  switch (error.type) {
    case "FieldValueInvalid":
      return `Invalid value: ${JSON.stringify(error.value)}: ${error.detail}`;
    case "FieldValueRequired":
      return `Required value${error.detail ? `: ${error.detail}` : ""}`;
    case "FieldValueForbidden":
      return `Forbidden: ${error.detail}`;
  }
}

/** 422 `ConfigMap "x" is invalid: metadata.name: Invalid value: …`. */
export function invalid(info: ResourceInfo, name: string, errors: readonly FieldError[]): ApiError {
  const parts = errors.map((e) => `${e.field}: ${fieldErrorText(e)}`);
  const summary = parts.length === 1 ? parts[0] : `[${parts.join(", ")}]`;
  return new ApiError(
    failureStatus(422, "Invalid", `${qualifiedKind(info)} "${name}" is invalid: ${summary}`, {
      name,
      ...(info.group ? { group: info.group } : {}),
      kind: info.kind,
      causes: errors.map((e) => ({
        reason: e.type,
        message: fieldErrorText(e),
        field: e.field,
      })),
    }),
  );
}

/** 400 BadRequest. */
export function badRequest(message: string): ApiError {
  return new ApiError(failureStatus(400, "BadRequest", message));
}

/** 410 Expired, as for a too old resourceVersion or continue token. */
export function expired(message: string): ApiError {
  return new ApiError(failureStatus(410, "Expired", message));
}

/**
 * 504 for a list at a resourceVersion newer than any the server has seen, as
 * kube-apiserver answers once its wait for the watch cache times out.
 */
export function tooLargeResourceVersion(wanted: number, current: number): ApiError {
  return new ApiError(
    failureStatus(504, "Timeout", `Too large resource version: ${wanted}, current: ${current}`, {
      causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
      retryAfterSeconds: 1,
    }),
    { "retry-after": "1" },
  );
}

/** 404 for a path the server does not serve (as for a missing CRD). */
export function pathNotFound(): ApiError {
  return new ApiError(
    failureStatus(404, "NotFound", "the server could not find the requested resource", {}),
  );
}
