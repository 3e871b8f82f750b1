/**
 * Who may make nodes pull what: which origins the operator trusts, and which
 * repositories untrusted origins may name (see README "Security").
 *
 * Trusted origins are the operator's own: the `--image` list, objects in the
 * namespaces named by `--trusted-namespaces`, and (with
 * `--trust-cluster-workflow-templates`) ClusterWorkflowTemplates. Their images
 * may be pulled with `--image-pull-secret` credentials and are not limited by
 * `--allowed-repositories`. Every other origin is a tenant's.
 *
 * @module
 */
import { parseReference } from "./reference.ts";

/** Options for {@linkcode TrustPolicy}. */
export interface TrustPolicyOptions {
  /**
   * Namespaces whose objects count as the operator's own
   * (`--trusted-namespaces`). @default {[]}
   */
  trustedNamespaces?: readonly string[];
  /** Whether ClusterWorkflowTemplates count as the operator's own. @default {false} */
  trustClusterScoped?: boolean;
  /**
   * Repository patterns untrusted origins may name (`--allowed-repositories`);
   * empty allows every repository. @default {[]}
   */
  allowedRepositories?: readonly string[];
}

/** Origins that always belong to the operator: prefixes of the static source's origin. */
// `published-trusted`: on a node daemon (`--role=node`), the images the
// aggregator published as trusted (it applied this policy to their origins).
const OPERATOR_SOURCES = new Set(["static", "published-trusted"]);

/**
 * Compiles one repository pattern: `*` matches within one path component,
 * `**` across components, everything else literally. The registry host is
 * compared as a DNS name (case-insensitive); the path as written (references
 * are lowercase).
 *
 * @throws {TypeError} when the pattern is empty or has no registry host.
 */
export function compileRepositoryPattern(pattern: string): RegExp {
  const text = pattern.trim();
  if (text === "") throw new TypeError("Cannot use an empty repository pattern");
  if (text === "**") return /^.*$/;
  if (text.startsWith("/") || /\s/.test(text)) {
    throw new TypeError(
      `Cannot use repository pattern ${
        JSON.stringify(pattern)
      }: expected registry/path such as docker.io/library/* or ghcr.io/my-org/**`,
    );
  }
  const slash = text.indexOf("/");
  const host = slash === -1 ? text : text.slice(0, slash);
  const path = slash === -1 ? "**" : text.slice(slash + 1);
  const glob = (part: string) =>
    part.split(/(\*\*|\*)/).map((piece) =>
      piece === "**" ? ".*" : piece === "*" ? "[^/]*" : piece.replace(/[.+?^${}()|[\]\\]/g, "\\$&")
    ).join("");
  return new RegExp(`^${glob(host.toLowerCase())}/${glob(path)}$`);
}

/**
 * Decides trust per origin and the allow-list per reference. Pure and cheap:
 * the dedupe map asks it for every origin and reference it takes in.
 */
export class TrustPolicy {
  readonly #trustedNamespaces: ReadonlySet<string>;
  readonly #trustClusterScoped: boolean;
  readonly #allowed: readonly RegExp[];
  /** The patterns as given, for messages. */
  readonly allowedRepositories: readonly string[];

  /** @throws {TypeError} when a repository pattern is invalid. */
  constructor(options: TrustPolicyOptions = {}) {
    this.#trustedNamespaces = new Set(options.trustedNamespaces ?? []);
    this.#trustClusterScoped = options.trustClusterScoped ?? false;
    this.allowedRepositories = [...(options.allowedRepositories ?? [])];
    this.#allowed = this.allowedRepositories.map(compileRepositoryPattern);
  }

  /**
   * Whether an origin (`static/--image`, `source/namespace/name`,
   * `source/name`) is the operator's own. Object names cannot contain `/`, so
   * three parts are a namespaced object and two a cluster-scoped one.
   */
  trusted(origin: string): boolean {
    // By the positions of the slashes, not a split: asked once per object applied.
    const first = origin.indexOf("/");
    if (OPERATOR_SOURCES.has(first === -1 ? origin : origin.slice(0, first))) return true;
    if (first === -1) return false;
    const second = origin.indexOf("/", first + 1);
    if (second === -1) return this.#trustClusterScoped;
    if (origin.indexOf("/", second + 1) !== -1) return false;
    return this.#trustedNamespaces.has(origin.slice(first + 1, second));
  }

  /**
   * Whether an untrusted origin may ask for a normalised reference: always
   * with no patterns, else when its repository (`host/path`) matches one.
   */
  allows(ref: string): boolean {
    if (this.#allowed.length === 0) return true;
    let repository: string;
    try {
      const { domain, path } = parseReference(ref);
      repository = `${domain.toLowerCase()}/${path}`;
    } catch {
      return false;
    }
    return this.#allowed.some((pattern) => pattern.test(repository));
  }
}
