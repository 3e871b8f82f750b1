/**
 * image-cache-daemon: the entry point. Parses the configuration, wires the
 * sources to the dedupe map and the map to the node puller, and owns the one
 * AbortSignal of the process lifetime.
 *
 * @module
 */
import { type Config, helpText, loadConfig, requireDaemonIdentity } from "./config/config.ts";
import { VERSION } from "./config/version.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { DesiredImages } from "./images/desired_images.ts";
import { StaticSource } from "./sources/static.ts";
import type { Source } from "./sources/source.ts";

const encoder = new TextEncoder();

/** Writes command output (not logs) to standard output. */
export function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
}

function printError(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
}

/** Runs the daemon until `signal` aborts. */
export async function runDaemon(
  config: Config,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  requireDaemonIdentity(config);
  const desired = new DesiredImages();
  const sources: Source[] = [
    new StaticSource({ images: config.images, sink: desired, log }),
  ];
  log.info("Starting image-cache-daemon", {
    version: VERSION,
    node: config.nodeName,
    sources: sources.map((s) => s.name),
  });
  await Promise.all(sources.map((s) => s.synced));
  log.info("All sources synced", { images: desired.size });
  await Promise.all(sources.map((s) => s.run(signal)));
  log.info("Stopped");
}

/** The process entry: returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
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
  const controller = new AbortController();
  const stop = () => controller.abort();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, stop);
  }
  try {
    await runDaemon(config, log, controller.signal);
    return 0;
  } catch (error) {
    if (error instanceof TypeError && !controller.signal.aborted) {
      printError(`image-cache-daemon: ${error.message}`);
      return 2;
    }
    log.error("Daemon failed", { error });
    return 1;
  } finally {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.removeSignalListener(sig, stop);
    }
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
