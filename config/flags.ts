/**
 * A small pflag-compatible command-line parser: `--name=value`,
 * `--name value`, boolean `--name`/`--name=false`, repeatable flags, `-h`.
 *
 * @module
 */

/** How one flag is declared. */
export interface FlagSpec {
  /** Long name without dashes. */
  readonly name: string;
  /** Single-letter short name, if any. */
  readonly short?: string;
  /** Value kind. */
  readonly type: "string" | "bool" | "strings";
  /** Default shown in the help text. */
  readonly default?: string;
  /** Environment variable used when the flag is not given. */
  readonly env?: string;
  /** One line of help. */
  readonly help: string;
  /** Placeholder for the value in the help text. */
  readonly metavar?: string;
}

/** Raw parsed values: strings for string and bool flags, arrays for repeatable ones. */
export type RawFlags = Record<string, string | string[]>;

/** Options for {@linkcode parseFlags}. */
export interface ParseFlagsOptions {
  /**
   * Refuse a word after a boolean flag given without `=` (pflag would take
   * the word as a positional), naming the flag. For commands that take no
   * positionals after their flags. @default {false}
   */
  strictBooleans?: boolean;
}

/** The result of {@linkcode parseFlags}. */
export interface ParsedArgs {
  readonly flags: RawFlags;
  readonly positionals: string[];
}

/**
 * Parses `args` against `specs`. Only flags actually given appear in the
 * result; defaults and environment fallbacks are applied by the config
 * schema.
 *
 * @throws {TypeError} for unknown flags, missing values, and invalid booleans,
 * naming the flag.
 */
export function parseFlags(
  args: readonly string[],
  specs: readonly FlagSpec[],
  options: ParseFlagsOptions = {},
): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(
    specs.filter((s) => s.short).map((s) => [s.short!, s]),
  );
  const flags: RawFlags = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let value: string | undefined;
    let shown: string;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      value = eq === -1 ? undefined : arg.slice(eq + 1);
      spec = byName.get(name);
      shown = `--${name}`;
    } else if (arg.startsWith("-") && arg.length > 1) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(1) : arg.slice(1, eq);
      value = eq === -1 ? undefined : arg.slice(eq + 1);
      spec = byShort.get(name);
      shown = `-${name}`;
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec === undefined) {
      throw new TypeError(`Unknown flag ${shown}: see --help for the flags`);
    }
    if (spec.type === "bool") {
      const next = args[i + 1];
      if (
        options.strictBooleans && value === undefined && next !== undefined &&
        !next.startsWith("-")
      ) {
        // pflag would set the flag and take the word as a positional, so
        // `--watch-configmaps false` would mean true. No command here takes
        // positionals after flags: name the flag instead.
        const kind = parseBool(next) === undefined ? "is not true or false; " : "";
        throw new TypeError(
          `--${spec.name} ${
            JSON.stringify(next)
          }: ${kind}a boolean flag takes its value after "=", such as --${spec.name}=false`,
        );
      }
      value ??= "true";
      const normalized = parseBool(value);
      if (normalized === undefined) {
        throw new TypeError(
          `--${spec.name} ${JSON.stringify(value)}: expected true or false`,
        );
      }
      flags[spec.name] = String(normalized);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= args.length) {
        throw new TypeError(`--${spec.name}: missing value`);
      }
      value = args[++i];
    }
    if (spec.type === "strings") {
      const list = (flags[spec.name] as string[] | undefined) ?? [];
      list.push(value);
      flags[spec.name] = list;
    } else {
      flags[spec.name] = value;
    }
  }
  return { flags, positionals };
}

/** Go's `strconv.ParseBool`, which pflag uses. */
export function parseBool(value: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return undefined;
}

/** Renders the help text for `specs`. */
export function formatHelp(
  usage: string,
  specs: readonly FlagSpec[],
): string {
  const rows = specs.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${
      s.type === "bool" ? "" : ` ${s.metavar ?? (s.type === "strings" ? "strings" : "string")}`
    }`;
    let help = s.help;
    if (s.default !== undefined && s.default !== "") {
      help += ` (default ${s.type === "bool" ? s.default : JSON.stringify(s.default)})`;
    }
    if (s.env) help += ` [env ${s.env}]`;
    return [names, help] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length)) + 3;
  return `${usage}\n\nFlags:\n${rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`).join("\n")}\n`;
}
