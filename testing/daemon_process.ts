/**
 * Runs the daemon as a separate process with exactly the production
 * permission set (`-P=daemon` from deno.json). By default it runs the shipped
 * artifact, the bundle in `dist/` (`deno task build`), so what ships is what
 * is tested: importing this module builds it once if it is missing or older
 * than its sources (parallel test files share one build).
 *
 * @module
 */
import { ensureBuilt, ENTRY } from "../build/bundle.ts";

await ensureBuilt();

/** The shipped artifact, the default entry. */
export const BUNDLE_ENTRY = ENTRY;

const ROOT = new URL("../", import.meta.url);

/** Options for {@linkcode runDaemonProcess} and {@linkcode spawnDaemon}. */
export interface DaemonProcessOptions {
  /** Environment for the process; nothing else is inherited but PATH and HOME. */
  env?: Record<string, string>;
  /** Extra Deno flags after `-P=daemon` (for example `--allow-read=<kubeconfig>`). */
  denoFlags?: string[];
  /** Entry point relative to `cwd`. @default {BUNDLE_ENTRY} */
  entry?: string;
  /** Working directory, where `-P=daemon` finds deno.json. @default {the repository root} */
  cwd?: string | URL;
}

function command(args: readonly string[], options: DaemonProcessOptions): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=daemon",
      "--quiet",
      ...(options.denoFlags ?? []),
      options.entry ?? BUNDLE_ENTRY,
      ...args,
    ],
    cwd: options.cwd ?? ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      // Deno's caches: the child must reuse the npm packages already fetched.
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      NO_COLOR: "1",
      ...options.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the daemon to completion and returns its exit code and output. */
export async function runDaemonProcess(
  args: readonly string[],
  options: DaemonProcessOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await command(args, options).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Starts the daemon and returns the child process (caller must kill and await it). */
export function spawnDaemon(
  args: readonly string[],
  options: DaemonProcessOptions = {},
): Deno.ChildProcess {
  return command(args, options).spawn();
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a daemon's metrics
 * listener (a shared machine may run other daemons on the default 8080).
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
