/**
 * image-cache-daemon: the entry point. Parses the configuration, owns the one
 * AbortSignal of the process lifetime (fired on SIGTERM/SIGINT) and runs the
 * daemon or the `images` command.
 *
 * @module
 */
// First: npm code must see only the permitted environment before it loads
// (see docs/PERMISSIONS.md).
import "./permissions/install_process_env.ts";
import {
  type Config,
  type DaemonIdentity,
  helpText,
  loadConfig,
  readEnv,
  requireAggregatorIdentity,
  requireDaemonIdentity,
} from "./config/config.ts";
import { VERSION } from "./config/version.ts";
import { watchParent } from "./operate/parent_watch.ts";
import { realClock } from "./time/clock.ts";
import { createLogger } from "./log/logger.ts";
import { loadKubeConfig } from "./kube/client.ts";
import { runDaemon } from "./daemon.ts";
import type { ServedParts } from "./operate/parts.ts";
import { DaemonMetrics } from "./operate/metrics.ts";
import { operationsListeners, serveOperations } from "./operate/server.ts";

const encoder = new TextEncoder();

/** Longest graceful shutdown after SIGTERM/SIGINT. */
const SHUTDOWN_DEADLINE_MS = 9_000;

/** Writes command output (not logs) to standard output. */
export function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
}

/** Writes a message for humans to standard error. */
export function printError(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
}

/** The process entry: returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  // The `images` command has flags of its own: dispatch before the daemon's parser.
  if (args[0] === "images") {
    // Loaded only for this command: the daemon roles that do not watch the
    // sources never load YAML or the Argo extraction.
    const { denoImagesIo, runImagesCommand } = await import("./cli/images_command.ts");
    return await runImagesCommand(args.slice(1), denoImagesIo());
  }
  let config: Config;
  let positionals: readonly string[];
  try {
    ({ config, positionals } = loadConfig(args));
  } catch (error) {
    printError(`image-cache-daemon: ${(error as Error).message}`);
    return 2;
  }
  if (config.help) {
    print(helpText());
    return 0;
  }
  if (config.version) {
    print(`image-cache-daemon ${VERSION}`);
    return 0;
  }
  if (positionals.length > 0) {
    printError(
      `image-cache-daemon: unknown command ${JSON.stringify(positionals[0])}: see --help`,
    );
    return 2;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  let kubeConfig;
  // An aggregator pulls for no node.
  let identity: Pick<DaemonIdentity, "namespace"> & { readonly node?: string };
  try {
    if (config.role === "aggregator") {
      const aggregator = requireAggregatorIdentity(config);
      identity = { namespace: aggregator.namespace };
    } else identity = requireDaemonIdentity(config);
    kubeConfig = loadKubeConfig({ kubeconfig: config.kubeconfig, env: readEnv });
  } catch (error) {
    printError(`image-cache-daemon: ${(error as Error).message}`);
    return 2;
  }
  const controller = new AbortController();
  let signals = 0;
  const stop = () => {
    signals++;
    if (signals > 1) {
      // A second signal means "now": skip the clean-up.
      log.warn("Second signal, exiting at once");
      Deno.exit(130);
    }
    log.info("Shutting down");
    controller.abort();
    // The kubelet kills the pod after its grace period (15 s in the
    // manifests); leave on our own before that, cleanly logged. Pull pods
    // still left are deleted by the next start (and by the garbage collector
    // through their ownerReference).
    const deadline = setTimeout(() => {
      log.error("Shutdown did not finish in time; exiting", { afterMs: SHUTDOWN_DEADLINE_MS });
      Deno.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    Deno.unrefTimer(deadline);
  };
  const metrics = new DaemonMetrics({ version: VERSION });
  let parts: ServedParts | undefined;
  const servers: ReturnType<typeof serveOperations>[] = [];
  const wanted = operationsListeners(config.metricsBindAddress, config.statusBindAddress);
  for (const { flag, address, paths } of wanted) {
    try {
      servers.push(serveOperations({
        ...address,
        paths,
        parts: () => parts,
        metrics,
        log,
        node: identity.node,
        pullTimeoutMs: config.pullTimeoutMs,
        signal: controller.signal,
      }));
    } catch (error) {
      controller.abort();
      printError(`image-cache-daemon: ${flag}: cannot listen: ${(error as Error).message}`);
      return 2;
    }
  }
  for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, stop);
  // Started through npx, a SIGTERM to npx never reaches this process: its
  // parent's exit is the only sign (see operate/parent_watch.ts).
  void watchParent((info) => {
    log.info("Parent process exited", { parent: info.parent });
    stop();
  }, { clock: realClock, signal: controller.signal });
  try {
    await runDaemon(
      config,
      {
        kubeConfig,
        log,
        metrics,
        onStarted: (p) => parts = p,
        onAggregatorStarted: (p) => parts = p,
      },
      controller.signal,
    );
    return 0;
  } catch (error) {
    // Configuration errors were reported before this point; anything here
    // (an unreachable CRI socket, a bug) is a failure of the running daemon.
    log.error("Daemon failed", { error });
    return 1;
  } finally {
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.removeSignalListener(sig, stop);
    controller.abort();
    await Promise.all(servers.map((server) => server.finished));
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
