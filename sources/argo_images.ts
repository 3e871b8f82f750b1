/**
 * The images named by Argo Workflows objects: WorkflowTemplates,
 * ClusterWorkflowTemplates and CronWorkflows. Pure functions of the object,
 * shared by the watchers and the offline `images` command.
 *
 * Every place a template can name an image is read: `container.image`,
 * `script.image`, `containerSet.containers[].image`,
 * `initContainers[].image`, `sidecars[].image`, templates written inline in
 * `steps[][].inline` and `dag.tasks[].inline` (recursively), and
 * `spec.templateDefaults`, merged into each template the way Argo merges it.
 *
 * `templateDefaults` follows Argo's strategic merge, which keeps each
 * template's type: a default `container.image` fills container templates
 * that name none, a default `script.image` script templates, and default
 * `initContainers`/`sidecars` join every pod template, merged by `name`
 * (the template's own entry wins). Defaults are not merged into
 * `containerSet` containers.
 *
 * Templated references are resolved where the object fixes the value:
 * `{{workflow.parameters.X}}` from `spec.arguments.parameters` (`value`,
 * else `default`), `{{inputs.parameters.X}}` from the template's own
 * `inputs.parameters` (`value`, else `default`) and from the
 * `arguments.parameters` of the steps, DAG tasks and hooks in the object that
 * call it (followed down chains of calls; the entrypoint also receives the
 * workflow's arguments), and `{{item}}`/`{{item.K}}` from a literal
 * `withItems` list or a literal `withSequence`. A template's own defaults
 * always count, since other objects may call it by `templateRef`; a
 * placeholder its defaults leave open is reported only when nothing in the
 * object calls the template.
 *
 * A reference that still holds a `{{…}}` placeholder (from `withParam`, step
 * outputs, expressions such as `{{=…}}`, or a parameter without a value) is
 * returned as written, so that the dedupe map rejects it as "templated, not
 * resolvable" instead of guessing.
 *
 * Work is bounded so that hostile objects cannot exhaust the stack or the
 * CPU: inline nesting ({@linkcode MAX_INLINE_DEPTH}), items per loop,
 * distinct argument sets per template, and evaluations per object.
 *
 * @module
 */

/** How deep templates written inline inside inline templates are followed. */
export const MAX_INLINE_DEPTH = 32;
/** Most distinct parameter bindings evaluated per named template. */
const MAX_BINDINGS = 64;
/** Most `withItems` or `withSequence` items expanded per step or task. */
const MAX_ITEMS = 256;
/** Most template evaluations and step expansions per object, a bound on hostile input. */
const MAX_WORK = 20_000;

type Obj = Readonly<Record<string, unknown>>;

/** A value known offline, or undefined when it is not. */
type Value = string | undefined;

/** The values of a template's declared input parameters, in declaration order. */
type Binding = ReadonlyMap<string, Value>;

/** An element of a `withItems`/`withSequence` expansion; `UNKNOWN` for `withParam`. */
type Item = { readonly value: unknown } | typeof UNKNOWN;
const UNKNOWN: unique symbol = Symbol("unknown item");

/** What a placeholder can see. Outer scopes win, as Argo substitutes outermost first. */
interface Scope {
  readonly globals: ReadonlyMap<string, Value>;
  /** Input bindings of the enclosing templates, outermost first; the last is the template's own. */
  readonly inputs: readonly Binding[];
  /** Items of the enclosing expansions, outermost first. */
  readonly items: readonly Item[];
}

/** Per named (or top-level) template: the bindings seen and the unresolved images of fallbacks. */
interface TemplateState {
  readonly bindings: Map<string, { real: boolean }>;
  /** True once a binding that is actually used (not just the defaults) reached it. */
  real: boolean;
  /** Unresolved images found under default-only bindings; reported only if nothing real reached it. */
  readonly fallbackUnresolved: Set<string>;
}

interface Job {
  readonly template: Obj;
  readonly state: TemplateState;
  readonly binding: Binding;
  readonly real: boolean;
}

function asObject(value: unknown): Obj | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Obj
    : undefined;
}

/** Present: neither undefined nor null (a YAML `~`). */
function isSet(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Argo's `AnyString`: strings, numbers and booleans all read as strings. */
function anyString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

function nameOf(value: Obj): string | undefined {
  return typeof value.name === "string" ? value.name : undefined;
}

const INPUT_PREFIX = "inputs.parameters.";
const GLOBAL_PREFIX = "workflow.parameters.";

function itemText(value: unknown): Value {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      // Too deep to serialise: not a value anyone could pull anyway.
      return undefined;
    }
  }
  return undefined;
}

function lookup(tag: string, scope: Scope): Value {
  if (tag.startsWith(INPUT_PREFIX)) {
    const name = tag.slice(INPUT_PREFIX.length);
    for (const binding of scope.inputs) {
      if (binding.has(name)) return binding.get(name);
    }
    return undefined;
  }
  if (tag.startsWith(GLOBAL_PREFIX)) {
    return scope.globals.get(tag.slice(GLOBAL_PREFIX.length));
  }
  if (tag === "item" || tag.startsWith("item.")) {
    const item = scope.items[0];
    if (item === undefined || item === UNKNOWN) return undefined;
    if (tag === "item") return itemText(item.value);
    const fields = asObject(item.value);
    const key = tag.slice("item.".length);
    return fields && Object.hasOwn(fields, key) ? itemText(fields[key]) : undefined;
  }
  return undefined;
}

/**
 * Replaces every `{{tag}}` of `text`, or returns undefined when one cannot be
 * resolved (or resolves to another placeholder). Like Argo's templating, a tag
 * runs from `{{` to the next `}}`.
 */
function substitute(text: string, scope: Scope): Value {
  let open = text.indexOf("{{");
  if (open === -1) return text;
  let out = "";
  let done = 0;
  while (open !== -1) {
    const close = text.indexOf("}}", open + 2);
    if (close === -1) return undefined;
    const value = lookup(text.slice(open + 2, close).trim(), scope);
    if (value === undefined || value.includes("{{")) return undefined;
    out += text.slice(done, open) + value;
    done = close + 2;
    open = text.indexOf("{{", done);
  }
  return out + text.slice(done);
}

/** The value a parameter declares itself (`value`, else `default`), if known. */
function parameterValue(parameter: Obj, scope: Scope, passed?: ReadonlyMap<string, Value>) {
  const name = nameOf(parameter)!;
  const value = anyString(parameter.value);
  if (value !== undefined) return substitute(value, scope);
  if (passed?.has(name)) return passed.get(name);
  // A value read at run time (a ConfigMap, an event, a step's output) is not known offline.
  if (isSet(parameter.valueFrom)) return undefined;
  const fallback = anyString(parameter.default);
  return fallback === undefined ? undefined : substitute(fallback, scope);
}

/**
 * Binds a template's declared inputs: its own `value` wins over what a caller
 * passes, which wins over its `default` (Argo's precedence).
 */
function bindInputs(template: Obj, passed: ReadonlyMap<string, Value> | undefined, scope: Scope) {
  const binding = new Map<string, Value>();
  for (const raw of asArray(asObject(template.inputs)?.parameters)) {
    const parameter = asObject(raw);
    if (!parameter) continue;
    const name = nameOf(parameter);
    if (name === undefined || binding.has(name)) continue;
    binding.set(name, parameterValue(parameter, scope, passed));
  }
  return binding;
}

/** Arguments a step, task or hook passes, evaluated in the caller's scope. */
function passedArguments(args: unknown, scope: Scope): Map<string, Value> {
  const passed = new Map<string, Value>();
  for (const raw of asArray(asObject(args)?.parameters)) {
    const parameter = asObject(raw);
    if (!parameter) continue;
    const name = nameOf(parameter);
    if (name === undefined || passed.has(name)) continue;
    const value = anyString(parameter.value) ?? anyString(parameter.default);
    if (value !== undefined) passed.set(name, substitute(value, scope));
    else if (isSet(parameter.valueFrom)) passed.set(name, undefined);
  }
  return passed;
}

function bindingKey(binding: Binding): string {
  let key = "";
  for (const [name, value] of binding) {
    key += `${name}\u0001${value === undefined ? "\u0002" : value}\u0003`;
  }
  return key;
}

function intOf(value: unknown): number | undefined {
  const text = anyString(value);
  if (text === undefined || !/^\s*-?\d{1,9}\s*$/.test(text)) return undefined;
  return Number(text);
}

/** Go `%d`-family formats: `%d`, `%03d`, with literal text around; else undefined. */
function sequenceFormatter(format: unknown): ((n: number) => string) | undefined {
  if (!isSet(format) || format === "") return (n) => String(n);
  if (typeof format !== "string") return undefined;
  const match = format.match(/^([^%]*)%(0?)(\d*)d([^%]*)$/);
  if (!match) return undefined;
  const [, before, zero, width, after] = match;
  const size = width === "" ? 0 : Number(width);
  return (n) => {
    const digits = String(Math.abs(n));
    const sign = n < 0 ? "-" : "";
    const body = zero === "0" ? sign + digits.padStart(size - sign.length, "0") : (sign + digits)
      .padStart(size, " ");
    return before + body + after;
  };
}

/** Argo's `withSequence`: `count` (from `start`) or `start`…`end`, inclusive. */
function sequenceItems(sequence: Obj): Item[] {
  const format = sequenceFormatter(sequence.format);
  const start = isSet(sequence.start) ? intOf(sequence.start) : 0;
  const count = isSet(sequence.count) ? intOf(sequence.count) : undefined;
  const end = isSet(sequence.end) ? intOf(sequence.end) : undefined;
  const literalCount = !isSet(sequence.count) || count !== undefined;
  const literalEnd = !isSet(sequence.end) || end !== undefined;
  if (format === undefined || start === undefined || !literalCount || !literalEnd) {
    return [UNKNOWN];
  }
  const numbers: number[] = [];
  if (count !== undefined) {
    for (let i = 0; i < count && i < MAX_ITEMS; i++) numbers.push(start + i);
  } else if (end !== undefined) {
    const step = end >= start ? 1 : -1;
    for (let n = start; numbers.length < MAX_ITEMS; n += step) {
      numbers.push(n);
      if (n === end) break;
    }
  } else {
    return [UNKNOWN];
  }
  const items: Item[] = numbers.map((n) => ({ value: format(n) }));
  const total = count ?? (end === undefined ? 0 : Math.abs(end - start) + 1);
  if (total > MAX_ITEMS) items.push(UNKNOWN);
  return items;
}

/** The expansions of a step or task: undefined when it runs once without an item. */
function expansions(step: Obj): readonly Item[] | undefined {
  if (isSet(step.withItems)) {
    if (!Array.isArray(step.withItems)) return [UNKNOWN];
    const items: Item[] = [];
    for (let i = 0; i < step.withItems.length && i < MAX_ITEMS; i++) {
      items.push({ value: step.withItems[i] });
    }
    // Beyond the bound, placeholders that use the item are reported as written.
    if (step.withItems.length > MAX_ITEMS) items.push(UNKNOWN);
    return items;
  }
  // withParam's list comes from an output at run time: not knowable offline.
  if (isSet(step.withParam)) return [UNKNOWN];
  const sequence = asObject(step.withSequence);
  if (sequence) return sequenceItems(sequence);
  return undefined;
}

function pushImage(out: string[], own: unknown, fallback?: unknown): void {
  if (typeof own === "string" && own !== "") out.push(own);
  else if (typeof fallback === "string" && fallback !== "") out.push(fallback);
}

/**
 * Containers merged with defaults the way a strategic merge patch keyed by
 * `name` merges them: same-named defaults fill in a missing image, other
 * defaults are added.
 */
function pushMergedContainers(out: string[], own: unknown, defaults: unknown): void {
  const hasDefaults = Array.isArray(defaults) && defaults.length > 0;
  if (!hasDefaults) {
    for (const raw of asArray(own)) {
      const container = asObject(raw);
      if (container) pushImage(out, container.image);
    }
    return;
  }
  const defaultImages = new Map<string, unknown>();
  for (const raw of asArray(defaults)) {
    const container = asObject(raw);
    const name = container && nameOf(container);
    if (name !== undefined && !defaultImages.has(name)) defaultImages.set(name, container!.image);
  }
  const named = new Set<string>();
  for (const raw of asArray(own)) {
    const container = asObject(raw);
    if (!container) continue;
    const name = nameOf(container);
    if (name !== undefined) named.add(name);
    pushImage(out, container.image, name === undefined ? undefined : defaultImages.get(name));
  }
  for (const raw of asArray(defaults)) {
    const container = asObject(raw);
    if (!container) continue;
    const name = nameOf(container);
    if (name === undefined || !named.has(name)) pushImage(out, container.image);
  }
}

/** Walks one WorkflowSpec. */
class Extractor {
  readonly #images = new Set<string>();
  readonly #named = new Map<string, Obj>();
  readonly #states = new Map<Obj, TemplateState>();
  readonly #defaults: Obj | undefined;
  readonly #globalScope: Scope;
  readonly #queue: Job[] = [];
  readonly #fallbacks: Obj[] = [];
  #next = 0;
  #work = 0;

  constructor(spec: Obj) {
    this.#defaults = asObject(spec.templateDefaults);
    const globals = new Map<string, Value>();
    for (const raw of asArray(asObject(spec.arguments)?.parameters)) {
      const parameter = asObject(raw);
      const name = parameter && nameOf(parameter);
      if (name === undefined || globals.has(name)) continue;
      const value = anyString(parameter!.value) ??
        (isSet(parameter!.valueFrom) ? undefined : anyString(parameter!.default));
      globals.set(name, value === undefined || value.includes("{{") ? undefined : value);
    }
    this.#globalScope = { globals, inputs: [], items: [] };

    const templates: Obj[] = [];
    for (const raw of asArray(spec.templates)) {
      const template = asObject(raw);
      if (!template) continue;
      templates.push(template);
      const name = nameOf(template);
      if (name !== undefined && !this.#named.has(name)) this.#named.set(name, template);
    }

    const called = new Set<string>();
    for (const template of templates) this.#collectCalls(template, called, 0);
    const entrypoint = typeof spec.entrypoint === "string" ? spec.entrypoint : undefined;
    if (entrypoint !== undefined) called.add(entrypoint);
    if (typeof spec.onExit === "string") called.add(spec.onExit);
    for (const hook of hooksOf(spec)) {
      if (typeof hook.template === "string") called.add(hook.template);
    }

    for (const template of templates) {
      const name = nameOf(template);
      const isCalled = name !== undefined && called.has(name) &&
        this.#named.get(name) === template;
      // A template nothing in the object calls runs with its own defaults
      // (submitted directly or called by reference), so those are real. One
      // that is called also gets its defaults, but placeholders they leave
      // open are the callers' to report; they are evaluated last, so that
      // the common case (defaults equal to what a caller passes) is walked once.
      if (isCalled) this.#fallbacks.push(template);
      else this.#schedule(template, undefined, true);
    }
    if (entrypoint !== undefined) {
      // Argo passes the workflow's arguments to the entrypoint's inputs.
      this.#call(entrypoint, globals, true);
    }
    if (typeof spec.onExit === "string") this.#call(spec.onExit, new Map(), true);
    for (const hook of hooksOf(spec)) {
      if (typeof hook.template === "string") {
        this.#call(hook.template, passedArguments(hook.arguments, this.#globalScope), true);
      }
    }
  }

  /** Evaluates everything scheduled and returns the images. */
  run(): Set<string> {
    this.#drain();
    for (const template of this.#fallbacks) this.#schedule(template, undefined, false);
    this.#drain();
    for (const state of this.#states.values()) {
      if (state.real) continue;
      for (const image of state.fallbackUnresolved) this.#images.add(image);
    }
    return this.#images;
  }

  #drain(): void {
    while (this.#next < this.#queue.length && this.#work < MAX_WORK) {
      const job = this.#queue[this.#next++];
      const scope: Scope = { globals: this.#globalScope.globals, inputs: [job.binding], items: [] };
      this.#walk(job.template, scope, job.state, job.real, 0);
    }
  }

  /** Records the names of templates called from `template`, inline ones included. */
  #collectCalls(template: Obj, called: Set<string>, depth: number): void {
    for (const step of stepsOf(template)) {
      if (typeof step.template === "string") called.add(step.template);
      if (typeof step.onExit === "string") called.add(step.onExit);
      for (const hook of hooksOf(step)) {
        if (typeof hook.template === "string") called.add(hook.template);
      }
      const inline = asObject(step.inline);
      if (inline && depth < MAX_INLINE_DEPTH) this.#collectCalls(inline, called, depth + 1);
    }
  }

  #stateOf(template: Obj): TemplateState {
    let state = this.#states.get(template);
    if (state === undefined) {
      state = { bindings: new Map(), real: false, fallbackUnresolved: new Set() };
      this.#states.set(template, state);
    }
    return state;
  }

  #call(name: string, passed: ReadonlyMap<string, Value>, real: boolean): void {
    const template = this.#named.get(name);
    if (template !== undefined) this.#schedule(template, passed, real);
  }

  #schedule(template: Obj, passed: ReadonlyMap<string, Value> | undefined, real: boolean): void {
    const state = this.#stateOf(template);
    let binding: Binding = bindInputs(template, passed, this.#globalScope);
    let key = bindingKey(binding);
    if (!state.bindings.has(key) && state.bindings.size >= MAX_BINDINGS) {
      // Too many distinct values: report the placeholders as written instead.
      binding = new Map([...binding.keys()].map((name) => [name, undefined]));
      key = bindingKey(binding);
    }
    const seen = state.bindings.get(key);
    if (seen !== undefined && (seen.real || !real)) return;
    if (seen !== undefined) seen.real = true;
    else state.bindings.set(key, { real });
    if (real) state.real = true;
    this.#queue.push({ template, state, binding, real });
  }

  #walk(template: Obj, scope: Scope, state: TemplateState, real: boolean, depth: number): void {
    if (++this.#work > MAX_WORK) return;
    for (const image of this.#imagesOf(template)) this.#emit(image, scope, state, real);
    for (const step of stepsOf(template)) this.#step(step, scope, state, real, depth);
  }

  #step(step: Obj, scope: Scope, state: TemplateState, real: boolean, depth: number): void {
    let items: readonly Item[] | undefined = expansions(step);
    // An empty list runs nothing, but the images it names are still read:
    // placeholders that need an item are then reported as written.
    if (items !== undefined && items.length === 0) items = [UNKNOWN];
    const scopes = items === undefined
      ? [scope]
      : items.map((item): Scope => ({ ...scope, items: [...scope.items, item] }));
    const inline = asObject(step.inline);
    for (const stepScope of scopes) {
      if (++this.#work > MAX_WORK) return;
      const passed = passedArguments(step.arguments, stepScope);
      if (inline) {
        if (depth < MAX_INLINE_DEPTH) {
          const binding = bindInputs(inline, passed, stepScope);
          const inner: Scope = { ...stepScope, inputs: [...stepScope.inputs, binding] };
          this.#walk(inline, inner, state, real, depth + 1);
        }
      } else if (typeof step.template === "string") {
        this.#call(step.template, passed, real);
      }
      if (typeof step.onExit === "string") this.#call(step.onExit, new Map(), real);
      for (const hook of hooksOf(step)) {
        if (typeof hook.template === "string") {
          this.#call(hook.template, passedArguments(hook.arguments, stepScope), real);
        }
      }
    }
  }

  #emit(image: string, scope: Scope, state: TemplateState, real: boolean): void {
    if (!image.includes("{{")) {
      this.#images.add(image);
      return;
    }
    const resolved = substitute(image, scope);
    if (resolved !== undefined && resolved.trim() !== "") this.#images.add(resolved);
    else if (real) this.#images.add(image);
    else state.fallbackUnresolved.add(image);
  }

  /** The images a template names, with `templateDefaults` merged in. */
  #imagesOf(template: Obj): string[] {
    const out: string[] = [];
    const defaults = this.#defaults;
    const container = asObject(template.container);
    const script = asObject(template.script);
    const containerSet = asObject(template.containerSet);
    // Argo keeps the template's type when merging defaults: a default
    // container image fills container templates, a default script image
    // script templates.
    if (container) pushImage(out, container.image, asObject(defaults?.container)?.image);
    if (script) pushImage(out, script.image, asObject(defaults?.script)?.image);
    // A containerSet keeps its own containers; defaults are not merged into them.
    if (containerSet) pushMergedContainers(out, containerSet.containers, undefined);
    // Default init containers and sidecars only matter where a pod runs.
    const runsPod = container !== undefined || script !== undefined || containerSet !== undefined;
    pushMergedContainers(out, template.initContainers, runsPod ? defaults?.initContainers : []);
    pushMergedContainers(out, template.sidecars, runsPod ? defaults?.sidecars : []);
    return out;
  }
}

const NO_HOOKS: readonly Obj[] = [];

/** The lifecycle hooks (`hooks`: name → hook) of a workflow, step or task. */
function hooksOf(holder: Obj): readonly Obj[] {
  const hooks = asObject(holder.hooks);
  if (hooks === undefined) return NO_HOOKS;
  const out: Obj[] = [];
  for (const hook of Object.values(hooks)) {
    const fields = asObject(hook);
    if (fields) out.push(fields);
  }
  return out;
}

/** The steps (of every parallel group) and DAG tasks of a template. */
function stepsOf(template: Obj): Obj[] {
  const out: Obj[] = [];
  for (const group of asArray(template.steps)) {
    // Each element of `steps` is a list of steps run in parallel; a bare step is read too.
    if (Array.isArray(group)) {
      for (const raw of group) {
        const step = asObject(raw);
        if (step) out.push(step);
      }
    } else {
      const step = asObject(group);
      if (step) out.push(step);
    }
  }
  for (const raw of asArray(asObject(template.dag)?.tasks)) {
    const task = asObject(raw);
    if (task) out.push(task);
  }
  return out;
}

/**
 * Images named by a WorkflowSpec: the `spec` of a WorkflowTemplate or a
 * ClusterWorkflowTemplate, a CronWorkflow's `spec.workflowSpec`, or a
 * Workflow's `spec`.
 *
 * Pure and total: malformed input (missing fields, wrong types, non-string
 * images) yields what can be read and never throws. References whose
 * placeholders cannot be resolved are returned as written, `{{…}}` included.
 *
 * @example
 * ```ts
 * imagesFromWorkflowSpec({
 *   arguments: { parameters: [{ name: "tag", value: "3.20" }] },
 *   templates: [{ name: "main", container: { image: "alpine:{{workflow.parameters.tag}}" } }],
 * }); // Set { "alpine:3.20" }
 * ```
 */
export function imagesFromWorkflowSpec(spec: unknown): Set<string> {
  const fields = asObject(spec);
  if (!fields) return new Set();
  return new Extractor(fields).run();
}

/** Images named by a WorkflowTemplate, read from its `spec`. Pure; never throws. */
export function imagesFromWorkflowTemplate(obj: unknown): Set<string> {
  return imagesFromWorkflowSpec(asObject(obj)?.spec);
}

/** Images named by a ClusterWorkflowTemplate, read from its `spec`. Pure; never throws. */
export function imagesFromClusterWorkflowTemplate(obj: unknown): Set<string> {
  return imagesFromWorkflowSpec(asObject(obj)?.spec);
}

/** Images named by a CronWorkflow, read from its `spec.workflowSpec`. Pure; never throws. */
export function imagesFromCronWorkflow(obj: unknown): Set<string> {
  return imagesFromWorkflowSpec(asObject(asObject(obj)?.spec)?.workflowSpec);
}
