/**
 * Container image references: parsing and normalisation following the
 * distribution reference grammar (the grammar Docker, containerd and the
 * kubelet share).
 *
 * @module
 */

/** The registry assumed when a reference names none. */
export const DEFAULT_DOMAIN = "docker.io";
/** The tag assumed when a reference has neither tag nor digest. */
const DEFAULT_TAG = "latest";

const MAX_NAME_LENGTH = 255;
const ALPHANUMERIC = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = new RegExp(
  `^${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*$`,
);
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const KNOWN_DIGEST_LENGTHS: Readonly<Record<string, number>> = {
  sha256: 64,
  sha384: 96,
  sha512: 128,
};

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host, with port when given: `docker.io`, `localhost:5000`. */
  readonly domain: string;
  /** Repository path inside the registry: `library/alpine`. */
  readonly path: string;
  /** Tag, if any. `latest` is filled in when neither tag nor digest is given. */
  readonly tag?: string;
  /** Content digest, if any: `sha256:…`. */
  readonly digest?: string;
}

/**
 * Parses an image reference and fills in the defaults Docker applies:
 * `docker.io` as domain, `library/` for single-component Docker Hub names,
 * and the `latest` tag when neither tag nor digest is given.
 *
 * @throws {TypeError} with a message that says what is wrong, for example
 * `Cannot parse image reference "Alpine": repository name must be lowercase`.
 */
export function parseReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new TypeError(
      `Cannot parse image reference ${JSON.stringify(input)}: ${reason}`,
    );
  };
  if (typeof input !== "string") fail("not a string");
  const text = input.trim();
  if (text === "") fail("empty reference");
  if (text.includes("{{") || text.includes("}}")) {
    fail("templated, not resolvable");
  }
  if (/\s/.test(text)) fail("contains white space");

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`invalid digest "${digest}"`);
    const [algorithm, hex] = digest.split(":");
    const expected = KNOWN_DIGEST_LENGTHS[algorithm];
    if (expected !== undefined && hex.length !== expected) {
      fail(
        `invalid digest "${digest}": ${algorithm} needs ${expected} hex digits, got ${hex.length}`,
      );
    }
    if (expected !== undefined && hex !== hex.toLowerCase()) {
      fail(`invalid digest "${digest}": hex digits must be lowercase`);
    }
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`invalid tag "${tag}"`);
  }
  if (rest === "") fail("missing repository name");

  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const firstSlash = rest.indexOf("/");
  if (firstSlash !== -1) {
    const first = rest.slice(0, firstSlash);
    // Docker's rule: the first component is a registry when it looks like a
    // host (has a dot or port, is localhost) or is not a valid lowercase
    // path component.
    if (
      first.includes(".") || first.includes(":") || first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      domain = first;
      path = rest.slice(firstSlash + 1);
      if (!DOMAIN.test(domain)) fail(`invalid registry host "${domain}"`);
    }
  }
  if (domain === "index.docker.io") domain = DEFAULT_DOMAIN;
  if (path === "") fail("missing repository name");
  if (path !== path.toLowerCase()) fail("repository name must be lowercase");
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      fail(`invalid path component "${component}"`);
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  if (`${domain}/${path}`.length > MAX_NAME_LENGTH) {
    fail(`repository name longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { domain, path, tag, digest };
}

/** Formats a parsed reference in its fully qualified form. */
export function formatReference(ref: ImageReference): string {
  let out = `${ref.domain}/${ref.path}`;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/**
 * Normalises a reference to its fully qualified form:
 * `alpine` → `docker.io/library/alpine:latest`.
 *
 * @throws {TypeError} when the reference cannot be parsed.
 */
export function normalizeReference(input: string): string {
  return formatReference(parseReference(input));
}

/** The outcome of {@linkcode tryNormalizeReference}. */
export type NormalizeResult =
  | { readonly ok: true; readonly ref: string }
  | { readonly ok: false; readonly reason: string };

/** Like {@linkcode normalizeReference}, but returns the reason instead of throwing. */
export function tryNormalizeReference(input: unknown): NormalizeResult {
  if (typeof input !== "string") {
    return {
      ok: false,
      reason: `Cannot parse image reference ${
        JSON.stringify(input) ?? String(input)
      }: not a string`,
    };
  }
  try {
    return { ok: true, ref: normalizeReference(input) };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** Whether a (normalised or raw) reference is pinned by digest. */
export function isDigestPinned(ref: string): boolean {
  return ref.includes("@");
}

/** The registry host of a reference, after normalisation. */
export function registryHost(ref: string): string {
  return parseReference(ref).domain;
}
