/**
 * A view of `process.env` for npm code that matches Deno's env allow-list.
 *
 * Why: `@kubernetes/client-node` pulls in `debug`, which enumerates the whole
 * environment when it loads (`Object.keys(process.env)`), and `undici`/`ws`
 * probe variables of their own. Under an allow-list Deno throws `NotCapable`
 * at the first of those, so the daemon would need `--allow-env` for every
 * variable, secrets in the operator's shell included. Instead, npm code sees
 * an environment that holds only the variables Deno lets this process read;
 * anything else reads as unset, as if it were not there. Writes stay in this
 * view and never reach the real environment (the daemon starts no process
 * that could inherit them). Deno's own `Deno.env` is left as it is.
 *
 * @module
 */

/** How the view asks whether a variable may be read. */
export type EnvPermitted = (name: string) => boolean;

/** Asks Deno, without prompting, whether `name` may be read. */
function envPermitted(name: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

/**
 * Builds the view.
 *
 * @param real the real `process.env`
 * @param names the variables enumeration may list (those the daemon reads);
 * a name is listed only when it is permitted and set
 * @param permitted whether a variable may be read
 */
export function permittedEnvView(
  real: Record<string, string | undefined>,
  names: readonly string[],
  permitted: EnvPermitted = envPermitted,
): Record<string, string | undefined> {
  const written = new Map<string, string | undefined>();
  const read = (name: string): string | undefined => {
    if (written.has(name)) return written.get(name);
    return permitted(name) ? real[name] : undefined;
  };
  // The target is a plain object, never `real`: a Proxy checks its traps
  // against the target, and asking the real env for its keys is exactly the
  // enumeration that Deno refuses.
  return new Proxy({} as Record<string, string | undefined>, {
    get: (_target, key) => typeof key === "string" ? read(key) : undefined,
    has: (_target, key) => typeof key === "string" && read(key) !== undefined,
    set: (_target, key, value) => {
      if (typeof key === "string") written.set(key, String(value));
      return true;
    },
    deleteProperty: (_target, key) => {
      if (typeof key === "string") written.set(key, undefined);
      return true;
    },
    ownKeys: () =>
      [...new Set([...names, ...written.keys()])].filter((name) => read(name) !== undefined),
    getOwnPropertyDescriptor: (_target, key) => {
      if (typeof key !== "string") return undefined;
      const value = read(key);
      return value === undefined
        ? undefined
        : { value, enumerable: true, configurable: true, writable: true };
    },
  });
}

/** The variables the daemon reads (deno.json's `daemon` set lists the same). */
export const DAEMON_ENV: readonly string[] = [
  "NODE_NAME",
  "POD_NAME",
  "POD_NAMESPACE",
  "POD_UID",
  "KUBECONFIG",
  "KUBERNETES_SERVICE_PORT",
];

/** A `process`-like object whose `env` can be replaced. */
export interface ProcessLike {
  env: Record<string, string | undefined>;
}

/**
 * Replaces `process.env` with the view, unless the whole environment may be
 * read anyway (`-A`, `--allow-env`): then nothing changes.
 *
 * @returns true when the view was installed
 */
export function installPermittedEnv(
  process: ProcessLike,
  names: readonly string[] = DAEMON_ENV,
  permitted: EnvPermitted = envPermitted,
  fullyPermitted: () => boolean = () =>
    Deno.permissions.querySync({ name: "env" }).state === "granted",
): boolean {
  if (fullyPermitted()) return false;
  process.env = permittedEnvView(process.env, names, permitted);
  return true;
}
