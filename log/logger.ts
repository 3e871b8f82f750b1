/**
 * The one structured logger. Every line is a JSON object with `ts`, `level`,
 * `msg` and camelCase fields (or a readable text line with `--log-format=text`).
 *
 * @module
 */

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Output formats. */
export const LOG_FORMATS = ["json", "text"] as const;
/** An output format. */
export type LogFormat = typeof LOG_FORMATS[number];

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger. Messages are constant; detail goes into fields. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Least severe level written. @default {"info"} */
  level?: LogLevel;
  /** Output format. @default {"json"} */
  format?: LogFormat;
  /** Where lines go. @default {writes to standard error} */
  write?: (line: string) => void;
  /** Clock for `ts`. @default {() => new Date()} */
  now?: () => Date;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += Deno.stderr.writeSync(bytes.subarray(written));
  }
}

function serialize(value: unknown): unknown {
  if (value instanceof Error) {
    return value.cause === undefined
      ? value.message
      : `${value.message}: ${String(serialize(value.cause))}`;
  }
  if (value instanceof Set) return [...value];
  if (value instanceof Map) return Object.fromEntries(value);
  return value;
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LOG_LEVELS.indexOf(options.level ?? "info");
  const format = options.format ?? "json";
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());

  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (LOG_LEVELS.indexOf(level) < min) return;
      const all: LogFields = { ...base, ...fields };
      if (format === "json") {
        const line: LogFields = { ts: now().toISOString(), level, msg };
        for (const [key, value] of Object.entries(all)) {
          if (value !== undefined) line[key] = serialize(value);
        }
        write(JSON.stringify(line));
      } else {
        const parts = Object.entries(all)
          .filter(([, value]) => value !== undefined)
          .map(([key, value]) => {
            const v = serialize(value);
            return `${key}=${typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v)}`;
          });
        write(
          `${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${
            parts.length ? " " + parts.join(" ") : ""
          }`,
        );
      }
    };
    return {
      debug: (msg, fields) => emit("debug", msg, fields),
      info: (msg, fields) => emit("info", msg, fields),
      warn: (msg, fields) => emit("warn", msg, fields),
      error: (msg, fields) => emit("error", msg, fields),
      with: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

/** A logger that writes nothing, for tests that do not look at logs. */
export const nullLogger: Logger = createLogger({ write: () => {} });

/** A logger that records lines as parsed objects, for tests that assert on logs. */
export function recordingLogger(
  level: LogLevel = "debug",
): Logger & { lines: LogFields[] } {
  const lines: LogFields[] = [];
  const logger = createLogger({ level, write: (line) => lines.push(JSON.parse(line)) });
  return Object.assign(logger, { lines });
}
