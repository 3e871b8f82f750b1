/**
 * The error of an object rejected whole because reading its images would pass
 * one of the hard limits that keep every object's cost bounded.
 *
 * @module
 */

/** Where and why {@linkcode ObjectLimitError} was thrown. */
export interface ObjectLimitDetail {
  /** The name of the limit's constant, such as `MAX_EXPANDED_LENGTH`. */
  readonly limit: string;
  /** The limit's value. */
  readonly max: number;
  /** Where in the object it happened: `template "a", step "b"`; empty for the whole object. */
  readonly where?: string;
  /** The object, as `Kind "namespace/name"`, once known. */
  readonly object?: string;
}

/**
 * An object rejected whole because reading it would pass a limit (expanded
 * string length, loop items, argument sets per template, total work, nesting
 * depth, value size). Thrown by the extraction functions
 * (`imagesFromWorkflowTemplate`, `imagesFromConfigMap`, …) and caught by the
 * watched sources, which log it, emit a Warning Event and keep the object's
 * last good images, and by the `images` command, which reports it as an error.
 *
 * It is a `RangeError`: the input is well formed but too large to read.
 *
 * @example
 * ```ts
 * new ObjectLimitError("an expanded string passes 65536 characters", {
 *   limit: "MAX_EXPANDED_LENGTH",
 *   max: 65536,
 *   where: 'template "grow", step "again"',
 *   object: 'WorkflowTemplate "ci/grow"',
 * }).message;
 * // 'WorkflowTemplate "ci/grow": template "grow", step "again": an expanded string passes
 * //  65536 characters (limit MAX_EXPANDED_LENGTH = 65536)'
 * ```
 */
export class ObjectLimitError extends RangeError {
  override readonly name = "ObjectLimitError";
  /** The name of the limit's constant, such as `MAX_EXPANDED_LENGTH`. */
  readonly limit: string;
  /** The limit's value. */
  readonly max: number;
  /** Where in the object it happened; empty for the whole object. */
  readonly where: string;
  /** The object, as `Kind "namespace/name"`, or undefined while unknown. */
  readonly object?: string;
  /** What passed the limit, without the object and place. */
  readonly detail: string;

  constructor(detail: string, options: ObjectLimitDetail) {
    const where = options.where ?? "";
    const prefix = [options.object, where].filter((part) => part !== undefined && part !== "")
      .join(": ");
    super(
      `${prefix === "" ? "" : `${prefix}: `}${detail} (limit ${options.limit} = ${options.max})`,
    );
    this.detail = detail;
    this.limit = options.limit;
    this.max = options.max;
    this.where = where;
    this.object = options.object;
  }

  /** The same error, naming the object it concerns. */
  forObject(object: string): ObjectLimitError {
    return new ObjectLimitError(this.detail, {
      limit: this.limit,
      max: this.max,
      where: this.where,
      object,
    });
  }
}
