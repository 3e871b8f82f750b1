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

/** The longest repository name (registry host and path), as the distribution grammar allows. */
const MAX_NAME_LENGTH = 255;
const ALPHANUMERIC = "[a-z0-9]+";
// Between alphanumerics: one `.` or `_`, two `_`, or any number of `-`.
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = new RegExp(
  `^${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*$`,
);
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])$`,
);
/** A DNS label and a DNS name are at most this long (RFC 1035); longer ones never resolve. */
const MAX_DNS_LABEL = 63;
const MAX_DNS_NAME = 253;
const TAG = /^[\w][\w.-]{0,127}$/;
/**
 * The digest algorithms the OCI image spec registers, with the length of
 * their lowercase hex encoding. Anything else cannot be pulled: containerd
 * and the kubelet refuse unsupported algorithms before asking a registry.
 */
const DIGEST_ALGORITHMS: Readonly<Record<string, number>> = {
  sha256: 64,
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
    digest = checkDigest(digest, fail);
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
    const looksLikeHost = first.includes(".") || first.includes(":") ||
      first.toLowerCase() === "localhost";
    if (looksLikeHost) {
      domain = checkDomain(first, fail);
      path = rest.slice(firstSlash + 1);
    } else if (first !== first.toLowerCase()) {
      // Docker would dial a host named like this; it is far more likely a
      // Docker Hub namespace written in the wrong case, and either way lower
      // case would make it a different image.
      fail(
        `registry host "${first}" has no dot or port and is not localhost; as a Docker Hub namespace it must be lowercase`,
      );
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

/**
 * Checks a registry host (with optional port) and returns it normalised.
 * Host names are DNS names, so they compare without regard to case: they are
 * lowercased, so that `Registry.Example.com` and `registry.example.com` are
 * one registry (IPv6 hex digits likewise).
 */
function checkDomain(domain: string, fail: (reason: string) => never): string {
  let host = domain;
  let port: string | undefined;
  const colon = domain.lastIndexOf(":");
  if (colon !== -1 && colon > domain.lastIndexOf("]")) {
    host = domain.slice(0, colon);
    port = domain.slice(colon + 1);
  }
  if (host.endsWith(".")) {
    fail(`invalid registry host "${domain}": a trailing dot is not allowed in a reference`);
  }
  if (!HOST.test(host)) fail(`invalid registry host "${domain}"`);
  if (!host.startsWith("[")) {
    if (host.length > MAX_DNS_NAME) {
      fail(`invalid registry host "${domain}": longer than ${MAX_DNS_NAME} characters`);
    }
    const labels = host.split(".");
    if (labels.some((label) => label.length > MAX_DNS_LABEL)) {
      fail(`invalid registry host "${domain}": a label is longer than ${MAX_DNS_LABEL} characters`);
    }
    if (labels.length === 4 && labels.every((label) => /^[0-9]+$/.test(label))) {
      if (labels.some((label) => Number(label) > 255)) {
        fail(`invalid registry host "${domain}": not an IPv4 address`);
      }
    }
  }
  if (port !== undefined) {
    if (!/^[0-9]{1,15}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      fail(`invalid registry host "${domain}": port must be a number from 1 to 65535`);
    }
    // "05000" and "5000" are one port; written one way, they stay one image.
    port = String(Number(port));
  }
  host = host.toLowerCase();
  return port === undefined ? host : `${host}:${port}`;
}

/**
 * Checks a digest against the distribution grammar and the algorithms the
 * OCI image spec registers; returns it unchanged.
 */
function checkDigest(digest: string, fail: (reason: string) => never): string {
  const colon = digest.indexOf(":");
  if (colon === -1) fail(`invalid digest "${digest}": expected algorithm:hex`);
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const expected = Object.hasOwn(DIGEST_ALGORITHMS, algorithm)
    ? DIGEST_ALGORITHMS[algorithm]
    : undefined;
  if (expected === undefined) {
    fail(
      `invalid digest "${digest}": unsupported algorithm ${
        JSON.stringify(algorithm)
      }, expected sha256 or sha512`,
    );
  }
  if (!/^[0-9a-fA-F]*$/.test(hex)) fail(`invalid digest "${digest}": not hex digits`);
  if (hex.length !== expected) {
    fail(
      `invalid digest "${digest}": ${algorithm} needs ${expected} hex digits, got ${hex.length}`,
    );
  }
  if (hex !== hex.toLowerCase()) fail(`invalid digest "${digest}": hex digits must be lowercase`);
  return digest;
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

/**
 * Whether `text` is a sha256 content digest as registries name manifests
 * (`sha256:` and 64 lowercase hex digits): the form the tag ledger keeps and
 * publishes. Pure.
 */
export function isSha256Digest(text: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(text);
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
