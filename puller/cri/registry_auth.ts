/**
 * Registry credentials from image pull secrets (`kubernetes.io/dockerconfigjson`
 * and the older `kubernetes.io/dockercfg`), matched to an image by registry host
 * the way the kubelet matches them.
 *
 * @module
 */

import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { DEFAULT_DOMAIN, parseReference } from "../../images/reference.ts";
import { apiMessage } from "../../kube/client.ts";
import type { Logger } from "../../log/logger.ts";
import type { AuthConfig } from "./client.ts";

export type { AuthConfig };

/** Names under which Docker Hub appears in docker config files. */
const DOCKER_HUB_ALIASES = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64(text: string, what: string): string {
  const clean = text.replace(/\s+/g, "");
  if (clean.length % 4 === 1 || !BASE64.test(clean)) {
    throw new TypeError(`Cannot decode ${what}: not base64`);
  }
  const bytes = Uint8Array.from(atob(clean), (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/**
 * Turns a key of a docker config's `auths` into `host` or `host/path`:
 * `https://index.docker.io/v1/` → `docker.io`, `http://reg:5000/team/` →
 * `reg:5000/team`.
 */
export function normalizeRegistryKey(key: string): string {
  let rest = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  rest = rest.replace(/\/+$/, "");
  const slash = rest.indexOf("/");
  let host = (slash === -1 ? rest : rest.slice(0, slash)).toLowerCase();
  let path = slash === -1 ? "" : rest.slice(slash + 1);
  if (DOCKER_HUB_ALIASES.has(host)) {
    host = DEFAULT_DOMAIN;
    // `https://index.docker.io/v1/` names the API version, not a repository.
    if (/^v[12]$/.test(path)) path = "";
  }
  return path === "" ? host : `${host}/${path}`;
}

interface DockerConfigEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

function optionalString(value: unknown, key: string, field: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") {
    throw new TypeError(`Cannot parse docker config entry "${key}": "${field}" is not a string`);
  }
  return value;
}

function toAuthConfig(key: string, entry: DockerConfigEntry): AuthConfig {
  let username = optionalString(entry.username, key, "username");
  let password = optionalString(entry.password, key, "password");
  const auth = optionalString(entry.auth, key, "auth");
  if (auth !== undefined && username === undefined) {
    const decoded = decodeBase64(auth, `the "auth" of docker config entry "${key}"`);
    const colon = decoded.indexOf(":");
    if (colon === -1) {
      throw new TypeError(
        `Cannot parse docker config entry "${key}": "auth" is not base64 of "user:password"`,
      );
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  // No serverAddress, as the kubelet sends none: containerd would compare it,
  // parsed as a URL, with the endpoint host (registry-1.docker.io for
  // docker.io, or a mirror) and silently drop the credentials. The match by
  // registry host is made here, before the pull, by authForImage().
  const config: {
    -readonly [K in keyof AuthConfig]: AuthConfig[K];
  } = {};
  if (username !== undefined) config.username = username;
  if (password !== undefined) config.password = password;
  const identityToken = optionalString(entry.identitytoken, key, "identitytoken");
  if (identityToken !== undefined) config.identityToken = identityToken;
  const registryToken = optionalString(entry.registrytoken, key, "registrytoken");
  if (registryToken !== undefined) config.registryToken = registryToken;
  return config;
}

/**
 * Parses the data of an image pull secret into credentials keyed by registry
 * (`host` or `host/path`, see {@linkcode normalizeRegistryKey}).
 *
 * `data` is the secret's `.dockerconfigjson` (or `.dockercfg`) value as it
 * appears in `Secret.data`, i.e. base64; a value that is already JSON (as in
 * `stringData`) is accepted too. Both `{"auths": {host: entry}}` and the
 * older `{host: entry}` shapes are read; an entry holds `auth`
 * (`base64("user:password")`) or `username`/`password`, and optionally
 * `identitytoken`/`registrytoken`.
 *
 * @throws {TypeError} when the data is not base64, not JSON, or an entry is malformed.
 */
export function parseDockerConfigJson(data: string): Map<string, AuthConfig> {
  const text = data.trim().startsWith("{") ? data : decodeBase64(data, "image pull secret data");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TypeError("Cannot parse image pull secret data: not JSON", { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TypeError("Cannot parse image pull secret data: not a JSON object");
  }
  const root = parsed as Record<string, unknown>;
  const auths = "auths" in root ? root.auths : root;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new TypeError('Cannot parse image pull secret data: "auths" is not an object');
  }
  const result = new Map<string, AuthConfig>();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new TypeError(`Cannot parse docker config entry "${key}": not an object`);
    }
    const registry = normalizeRegistryKey(key);
    const config = toAuthConfig(key, entry as DockerConfigEntry);
    // The first spelling of a registry wins, as in the kubelet's keyring.
    if (!result.has(registry)) result.set(registry, config);
  }
  return result;
}

/**
 * Picks the credentials for `ref` from the parsed pull secrets, in the order
 * the secrets are given. A key matches when its host equals the image's
 * registry host (Docker Hub spelled any of its ways) and its path, if any, is
 * a whole-component prefix of the image's repository. The most specific
 * (longest path) match wins; among equals, the earlier secret.
 *
 * @returns the credentials, or `undefined` when none match or `ref` cannot be parsed.
 */
export function authForImage(
  ref: string,
  auths: readonly ReadonlyMap<string, AuthConfig>[],
): AuthConfig | undefined {
  let image;
  try {
    image = parseReference(ref);
  } catch {
    return undefined;
  }
  const host = image.domain.toLowerCase();
  let best: AuthConfig | undefined;
  let bestLength = -1;
  for (const secret of auths) {
    for (const [key, config] of secret) {
      const slash = key.indexOf("/");
      const keyHost = slash === -1 ? key : key.slice(0, slash);
      const keyPath = slash === -1 ? "" : key.slice(slash + 1);
      if (keyHost !== host) continue;
      if (keyPath !== "" && image.path !== keyPath && !image.path.startsWith(`${keyPath}/`)) {
        continue;
      }
      if (keyPath.length > bestLength) {
        best = config;
        bestLength = keyPath.length;
      }
    }
  }
  return best;
}

/** Options for {@linkcode readPullSecretAuth}. */
export interface ReadPullSecretAuthOptions {
  kubeConfig: KubeConfig;
  /** The daemon's namespace, where the secrets are read. */
  namespace: string;
  /** `--image-pull-secret` names, in order of preference. */
  secrets: readonly string[];
  log: Logger;
}

/**
 * Reads the image pull secrets once, for the CRI strategy, which must hand
 * credentials to the runtime itself (pull pods only name the secrets, and the
 * kubelet reads them). A secret that cannot be read or parsed is logged at
 * error and left out.
 *
 * @returns the lookup of credentials for a reference ({@linkcode authForImage}).
 */
export async function readPullSecretAuth(
  options: ReadPullSecretAuthOptions,
): Promise<(ref: string) => AuthConfig | undefined> {
  const { kubeConfig, namespace, secrets, log } = options;
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const auths: Map<string, AuthConfig>[] = [];
  for (const name of secrets) {
    try {
      const secret = await api.readNamespacedSecret({ name, namespace });
      const data = secret.data?.[".dockerconfigjson"] ?? secret.data?.[".dockercfg"];
      if (data === undefined) throw new TypeError("it has no .dockerconfigjson key");
      auths.push(parseDockerConfigJson(data));
    } catch (error) {
      // Why absorb: public images still pull; the failures name the registry.
      log.error("Cannot read image pull secret; pulls that need it will fail", {
        secret: name,
        error: error instanceof TypeError ? error.message : apiMessage(error),
      });
    }
  }
  return (ref) => authForImage(ref, auths);
}
