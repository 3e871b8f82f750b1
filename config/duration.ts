/**
 * Go duration strings (`15m0s`, `1h30m`, `90s`, `500ms`, `0`), as Go's
 * `time.ParseDuration` accepts them.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const WHOLE = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * Parses a Go duration into milliseconds. `0` (without unit) is allowed, as
 * in Go.
 *
 * @throws {RangeError} when the text is not a Go duration.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "0" || trimmed === "+0" || trimmed === "-0") return 0;
  if (!WHOLE.test(trimmed)) {
    throw new RangeError(
      `Cannot parse duration ${JSON.stringify(text)}: expected a Go duration such as 15m or 1h30m`,
    );
  }
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(PART)) {
    total += Number(amount) * UNIT_MS[unit];
  }
  return trimmed.startsWith("-") ? -total : total;
}

/** Formats milliseconds the way Go prints a `time.Duration` (`1h30m0s`, `500ms`, `0s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${+rest.toFixed(6)}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = +(rest / 1000).toFixed(9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
