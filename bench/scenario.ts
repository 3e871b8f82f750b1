/**
 * The shape every benchmark scenario shares.
 *
 * @module
 */

/** Options every scenario takes. */
export interface ScenarioOptions {
  /** The small run CI can afford. */
  readonly quick: boolean;
  /** Extra Deno flags for daemon child processes (e.g. `--cpu-prof`). */
  readonly denoFlags?: string[];
}

/** One scenario's result: printed as one JSON line. */
export type ScenarioResult = Record<string, unknown> & {
  readonly scenario: string;
  /** Whether every target of the scenario was met (absent when it has none, or was skipped). */
  readonly met?: boolean;
};
