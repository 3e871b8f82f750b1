/**
 * The images named by Argo Workflows objects: WorkflowTemplates,
 * ClusterWorkflowTemplates and CronWorkflows. Pure functions of the object,
 * shared by the watchers and the offline `images` command, so that both
 * accept and reject exactly the same objects.
 *
 * Every place a template can name an image is read: `container.image`,
 * `script.image`, `containerSet.containers[].image`,
 * `initContainers[].image`, `sidecars[].image`, templates written inline in
 * `steps[][].inline` and `dag.tasks[].inline` (recursively), and
 * `spec.templateDefaults`, merged into each template the way Argo merges it,
 * and `podSpecPatch` (the workflow's, then the template's), a JSON or YAML
 * patch of the pod whose `containers` and `initContainers` replace the
 * images of same-named containers (`main` for a container or script
 * template) or add new ones. A patch whose placeholders cannot be resolved
 * is not known offline and is not read.
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
 * object calls the template. `templateRef` calls into other objects are not
 * followed: each object is read on its own, so no object can make reading
 * another one cost more.
 *
 * A reference that still holds a `{{…}}` placeholder (from `withParam`, step
 * outputs, expressions such as `{{=…}}`, or a parameter without a value) is
 * returned as written, so that the dedupe map rejects it as "templated, not
 * resolvable" instead of guessing.
 *
 * Objects are input from people the operator does not control, so reading
 * one is bounded: past any of the limits below the object is rejected whole
 * with an {@linkcode ObjectLimitError} naming the template, the step and the
 * limit, never truncated silently. Objects Argo itself could not decode (an
 * image that is a number or a map, templates that are not a list, …) are
 * rejected with a `TypeError`.
 *
 * @module
 */
import { parseBoundedYaml } from "./bounded_yaml.ts";
import { ObjectLimitError } from "./object_limit_error.ts";

/**
 * How deep templates written inline inside inline templates may nest. Real
 * workflows nest two or three levels; the walk recurses per level, so this
 * also bounds the stack.
 */
export const MAX_INLINE_DEPTH = 32;
/**
 * The longest string substitution may build, in characters. An image
 * reference is at most a few hundred characters (a 255-character name, a
 * 128-character tag and a sha512 digest), and parameters that feed one are
 * shorter still; 64 KiB leaves room for parameters built from larger text
 * while stopping a parameter that doubles on every call long before it
 * costs memory. A value passed on unchanged is not rebuilt and does not count.
 */
export const MAX_EXPANDED_LENGTH = 64 * 1024;
/**
 * The most items one `withItems` or `withSequence` may expand to when its
 * item is used. A workflow fanning out to more than 10,000 pods from one
 * step is far beyond what Argo runs in practice, and each item may cost a
 * template evaluation. A loop whose item nothing uses is read once, whatever
 * its length.
 */
export const MAX_LOOP_ITEMS = 10_000;
/**
 * The widest `withSequence` `format` width (`%0<width>d`). Go's `fmt` itself
 * refuses widths of a million and more; a width wider than any image
 * reference can only be an attempt to build huge strings.
 */
export const MAX_SEQUENCE_WIDTH = 1024;
/**
 * The most distinct argument sets one template is evaluated with. A loop of
 * {@linkcode MAX_LOOP_ITEMS} items passing each item to a template fits,
 * with room for the template's own defaults and other callers; recursion
 * that changes its arguments on every call (stopped in Argo only by a `when`
 * that cannot be evaluated offline) reaches it.
 */
export const MAX_CALL_BINDINGS = 2 * MAX_LOOP_ITEMS;
/**
 * The most operations (template evaluations, step and loop expansions,
 * calls, parameters bound, placeholders resolved, container entries read)
 * per object. The largest realistic templates take a few thousand, a loop of
 * {@linkcode MAX_LOOP_ITEMS} items passing each to a template about 100,000;
 * 200,000 is a few hundred milliseconds of CPU at worst, spent again on
 * every change to the object, on a single-threaded daemon.
 */
export const MAX_WORK = 200_000;
/**
 * The most characters substitution and formatting may read and write per
 * object. Bounds memory (every stored argument set was written once) and
 * the time spent scanning long strings again and again: 4 Mi characters
 * are at most a few MiB of heap, against the daemon's 192 MiB request.
 */
export const MAX_CHARACTERS = 4 * 1024 * 1024;

/**
 * Counters of the work one evaluation did, checked against {@linkcode MAX_WORK}
 * and {@linkcode MAX_CHARACTERS}. Pass one in `options.work` to read them.
 */
export interface ArgoWork {
  /** Operations done; never more than {@linkcode MAX_WORK}. */
  operations: number;
  /** Characters read and written by substitution; never more than {@linkcode MAX_CHARACTERS}. */
  characters: number;
  /** The longest string substitution built; never more than {@linkcode MAX_EXPANDED_LENGTH}. */
  longest: number;
}

type Obj = Readonly<Record<string, unknown>>;

/** A value known offline, or undefined when it is not. Known values never hold `{{`. */
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
class TemplateState {
  readonly bindings = new Map<string, { real: boolean }>();
  /** True once a binding that is actually used (not just the defaults) reached it. */
  real = false;
  /**
   * Unresolved images found under default-only bindings; reported only if
   * nothing real reached it. Made on the first such image: most templates have none.
   */
  fallbackUnresolved: Set<string> | undefined;
  readonly #name: string | undefined;
  readonly #index: number;
  readonly #path: string;

  constructor(name: string | undefined, index: number, path: string) {
    this.#name = name;
    this.#index = index;
    this.#path = path;
  }

  /** How the template is named in messages; built only when a message needs it. */
  get label(): string {
    return this.#name === undefined
      ? `${this.#path}.templates[${this.#index}]`
      : `template ${quote(this.#name)}`;
  }
}

/**
 * Where the walk is: a text, a template (its state) or a step (the step
 * itself). Steps and templates are named only when a message is built: the
 * walk passes thousands of them that never need a name.
 */
type TrailEntry = string | TemplateState | Obj;

function trailText(entry: TrailEntry): string {
  if (typeof entry === "string") return entry;
  if (entry instanceof TemplateState) return entry.label;
  return `step ${quote(nameOf(entry) ?? "")}`;
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

/** Names a value's type for an error message: "a number", "a map". */
function describe(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  return `a ${typeof value}`;
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

/** A name for messages, cut short: names come from the object. */
function quote(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

/** Texts longer than this are scanned for placeholders once per object, not per evaluation. */
const LONG_TEXT = 1024;

const INPUT_PREFIX = "inputs.parameters.";
const GLOBAL_PREFIX = "workflow.parameters.";

function intOf(value: unknown): number | undefined {
  const text = anyString(value);
  if (text === undefined || !/^\s*-?\d{1,9}\s*$/.test(text)) return undefined;
  return Number(text);
}

const NO_STEPS: readonly Obj[] = [];
const NO_BINDINGS: readonly Binding[] = [];
const NO_ITEMS: readonly Item[] = [];

/** The steps (of every parallel group) and DAG tasks of a template. */
function stepsOf(template: Obj): readonly Obj[] {
  // Most templates run a pod and have neither: read three times per template.
  if (template.steps === undefined && template.dag === undefined) return NO_STEPS;
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

const NO_HOOKS: readonly Obj[] = [];

/**
 * No parameters, bound or passed: shared, since most steps pass none and
 * most templates declare none. Never written to (typed read-only).
 */
const NO_VALUES: ReadonlyMap<string, Value> = new Map();

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

/** How deep inline templates nest in `template`, counting up to `limit + 1` at most. */
function inlineDepth(template: Obj, limit: number): number {
  if (limit < 0) return 0;
  let deepest = 0;
  for (const step of stepsOf(template)) {
    const inner = asObject(step.inline);
    if (inner) deepest = Math.max(deepest, 1 + inlineDepth(inner, limit - 1));
    if (deepest > limit) break;
  }
  return deepest;
}

const ITEM_TAG = /\{\{\s*item\b/;

/**
 * Whether anything under a step (its arguments, hooks, inline templates)
 * reads `{{item…}}`. Iterative, so arbitrarily deep values cannot exhaust
 * the stack. Returns the number of values visited as well, for the budget.
 */
function readsItem(step: Obj): { reads: boolean; visited: number } {
  const stack: unknown[] = [step];
  let visited = 0;
  while (stack.length > 0) {
    const value = stack.pop();
    visited++;
    if (typeof value === "string") {
      if (value.includes("{{") && ITEM_TAG.test(value)) return { reads: true, visited };
    } else if (Array.isArray(value)) {
      for (const element of value) stack.push(element);
    } else if (typeof value === "object" && value !== null) {
      for (const [key, element] of Object.entries(value)) {
        // The loop's own list is not "a use" of its item.
        if (value === step && (key === "withItems" || key === "withSequence")) continue;
        stack.push(element);
      }
    }
  }
  return { reads: false, visited };
}

/** Walks one WorkflowSpec within the limits. */
class Extractor {
  readonly #images = new Set<string>();
  readonly #named = new Map<string, Obj>();
  readonly #states = new Map<Obj, TemplateState>();
  readonly #defaults: Obj | undefined;
  readonly #globalScope: Scope;
  readonly #queue: (Job | undefined)[] = [];
  readonly #fallbacks: Obj[] = [];
  // The caches below are made when first needed: most objects need few of
  // them, and the extractor is made once per object.
  #readsItem?: Map<Obj, boolean>;
  #valueIds?: Map<string, string>;
  /** Long texts known to hold no placeholder. */
  #plain?: Set<string>;
  /** Parsed `podSpecPatch` texts. */
  #patches?: Map<string, Named[]>;
  /** Tokens of `podSpecPatch` read by the YAML parser: the limit is per object. */
  #yamlRead?: { tokens: number };
  readonly #workflowPatch: unknown;
  readonly #work: ArgoWork;
  /** Where the walk is, for messages: `template "a"`, `step "b"`, … */
  readonly #trail: TrailEntry[] = [];
  #next = 0;

  constructor(spec: Obj, path: string, work: ArgoWork) {
    this.#work = work;
    this.#defaults = this.#checkDefaults(spec.templateDefaults, `${path}.templateDefaults`);
    this.#workflowPatch = spec.podSpecPatch;
    const globals = new Map<string, Value>();
    for (const raw of asArray(asObject(spec.arguments)?.parameters)) {
      const parameter = asObject(raw);
      const name = parameter && nameOf(parameter);
      if (name === undefined || globals.has(name)) continue;
      this.#operations(1);
      const value = anyString(parameter!.value) ??
        (isSet(parameter!.valueFrom) ? undefined : anyString(parameter!.default));
      globals.set(name, value === undefined || value.includes("{{") ? undefined : value);
    }
    this.#globalScope = { globals, inputs: NO_BINDINGS, items: NO_ITEMS };

    const templates = spec.templates;
    if (!Array.isArray(templates)) {
      // A workflow that runs a WorkflowTemplate by reference has no templates of its own.
      if (templates === undefined && asObject(spec.workflowTemplateRef)) return;
      throw new TypeError(
        templates === undefined
          ? `${path}.templates is missing`
          : `${path}.templates is ${describe(templates)}, expected a list of templates`,
      );
    }
    for (let i = 0; i < templates.length; i++) {
      const raw = templates[i];
      const template = asObject(raw);
      if (!template) {
        throw new TypeError(`${path}.templates[${i}] is ${describe(raw)}, expected a template`);
      }
      this.#operations(1);
      const name = nameOf(template);
      if (inlineDepth(template, MAX_INLINE_DEPTH) > MAX_INLINE_DEPTH) {
        throw new ObjectLimitError(`inline templates nest deeper than ${MAX_INLINE_DEPTH} levels`, {
          limit: "MAX_INLINE_DEPTH",
          max: MAX_INLINE_DEPTH,
          where: `template ${quote(name ?? "")}`,
        });
      }
      if (name !== undefined && !this.#named.has(name)) this.#named.set(name, template);
    }

    const called = new Set<string>();
    for (const raw of templates) this.#collectCalls(raw as Obj, called, 0);
    const entrypoint = typeof spec.entrypoint === "string" ? spec.entrypoint : undefined;
    if (entrypoint !== undefined) called.add(entrypoint);
    if (typeof spec.onExit === "string") called.add(spec.onExit);
    for (const hook of hooksOf(spec)) {
      if (typeof hook.template === "string") called.add(hook.template);
    }

    for (let i = 0; i < templates.length; i++) {
      const template = templates[i] as Obj;
      const name = nameOf(template);
      this.#states.set(template, new TemplateState(name, i, path));
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
    if (typeof spec.onExit === "string") this.#call(spec.onExit, NO_VALUES, true);
    for (const hook of hooksOf(spec)) {
      if (typeof hook.template === "string") {
        this.#call(hook.template, this.#passedArguments(hook.arguments, this.#globalScope), true);
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
      for (const image of state.fallbackUnresolved ?? []) this.#images.add(image);
    }
    return this.#images;
  }

  // ---- the budget ----

  #where(): string {
    return this.#trail.map(trailText).join(", ");
  }

  #fail(detail: string, limit: string, max: number): never {
    throw new ObjectLimitError(detail, { limit, max, where: this.#where() });
  }

  #invalid(detail: string): never {
    const where = this.#where();
    throw new TypeError(where === "" ? detail : `${where}: ${detail}`);
  }

  #operations(n: number): void {
    // Checked before counting, so that the counters never pass the limits.
    if (this.#work.operations + n > MAX_WORK) {
      this.#fail(`reading the object takes more than ${MAX_WORK} operations`, "MAX_WORK", MAX_WORK);
    }
    this.#work.operations += n;
  }

  #characters(n: number): void {
    if (this.#work.characters + n > MAX_CHARACTERS) {
      this.#fail(
        `substitution reads and writes more than ${MAX_CHARACTERS} characters`,
        "MAX_CHARACTERS",
        MAX_CHARACTERS,
      );
    }
    this.#work.characters += n;
  }

  /** Checks the length of a string substitution is building. */
  #built(length: number): void {
    if (length > MAX_EXPANDED_LENGTH) {
      // Why reject rather than cut: a cut value would be a different value,
      // and an image reference is never this long.
      this.#fail(
        `an expanded string passes ${MAX_EXPANDED_LENGTH} characters`,
        "MAX_EXPANDED_LENGTH",
        MAX_EXPANDED_LENGTH,
      );
    }
    if (length > this.#work.longest) this.#work.longest = length;
  }

  // ---- templating ----

  #itemText(value: unknown): Value {
    let text: string | undefined;
    if (typeof value === "string") text = value;
    else if (typeof value === "number" || typeof value === "boolean") text = String(value);
    else if (typeof value === "object" && value !== null) {
      try {
        text = JSON.stringify(value);
      } catch {
        // Too deep to serialise: not a value anyone could pull anyway.
        return undefined;
      }
      this.#characters(text.length);
      this.#built(text.length);
    }
    if (text === undefined) return undefined;
    this.#characters(text.length);
    return text.includes("{{") ? undefined : text;
  }

  #lookup(tag: string, scope: Scope): Value {
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
      if (tag === "item") return this.#itemText(item.value);
      const fields = asObject(item.value);
      const key = tag.slice("item.".length);
      return fields && Object.hasOwn(fields, key) ? this.#itemText(fields[key]) : undefined;
    }
    return undefined;
  }

  /**
   * Replaces every `{{tag}}` of `text`, or returns undefined when one cannot
   * be resolved (or the result would hold another placeholder). Like Argo's
   * templating, a tag runs from `{{` to the next `}}`. A text that is one
   * placeholder and nothing else gives the value itself: passing a value on
   * builds nothing.
   */
  #substitute(text: string, scope: Scope): Value {
    // A long literal is scanned once: it is the same string on every call,
    // so the map finds it by its cached hash without reading it again.
    if (text.length > LONG_TEXT && this.#plain?.has(text)) return text;
    let open = text.indexOf("{{");
    if (open === -1) {
      if (text.length > LONG_TEXT) {
        this.#characters(text.length);
        (this.#plain ??= new Set()).add(text);
      }
      return text;
    }
    this.#characters(text.length);
    let out = "";
    let done = 0;
    while (open !== -1) {
      this.#operations(1);
      const close = text.indexOf("}}", open + 2);
      if (close === -1) return undefined;
      const value = this.#lookup(text.slice(open + 2, close).trim(), scope);
      if (value === undefined) return undefined;
      if (open === 0 && close + 2 === text.length) return value;
      const length = out.length + (open - done) + value.length;
      this.#built(length);
      this.#characters(length - out.length);
      out += text.slice(done, open) + value;
      done = close + 2;
      open = text.indexOf("{{", done);
    }
    this.#built(out.length + text.length - done);
    out += text.slice(done);
    // Text and values hold no `{{`, but one can form where they meet.
    return out.includes("{{") ? undefined : out;
  }

  /** The value a parameter declares itself (`value`, else `default`), if known. */
  #parameterValue(parameter: Obj, scope: Scope, passed?: ReadonlyMap<string, Value>): Value {
    const name = nameOf(parameter)!;
    const value = anyString(parameter.value);
    if (value !== undefined) return this.#substitute(value, scope);
    if (passed?.has(name)) return passed.get(name);
    // A value read at run time (a ConfigMap, an event, a step's output) is not known offline.
    if (isSet(parameter.valueFrom)) return undefined;
    const fallback = anyString(parameter.default);
    return fallback === undefined ? undefined : this.#substitute(fallback, scope);
  }

  /**
   * Binds a template's declared inputs: its own `value` wins over what a caller
   * passes, which wins over its `default` (Argo's precedence).
   */
  #bindInputs(
    template: Obj,
    passed: ReadonlyMap<string, Value> | undefined,
    scope: Scope,
  ): Binding {
    const parameters = asArray(asObject(template.inputs)?.parameters);
    if (parameters.length === 0) return NO_VALUES;
    const binding = new Map<string, Value>();
    for (const raw of parameters) {
      this.#operations(1);
      const parameter = asObject(raw);
      if (!parameter) continue;
      const name = nameOf(parameter);
      if (name === undefined || binding.has(name)) continue;
      binding.set(name, this.#parameterValue(parameter, scope, passed));
    }
    return binding;
  }

  /** Arguments a step, task or hook passes, evaluated in the caller's scope. */
  #passedArguments(args: unknown, scope: Scope): ReadonlyMap<string, Value> {
    const parameters = asArray(asObject(args)?.parameters);
    if (parameters.length === 0) return NO_VALUES;
    const passed = new Map<string, Value>();
    for (const raw of parameters) {
      this.#operations(1);
      const parameter = asObject(raw);
      if (!parameter) continue;
      const name = nameOf(parameter);
      if (name === undefined || passed.has(name)) continue;
      const value = anyString(parameter.value) ?? anyString(parameter.default);
      if (value !== undefined) passed.set(name, this.#substitute(value, scope));
      else if (isSet(parameter.valueFrom)) passed.set(name, undefined);
    }
    return passed;
  }

  #bindingKey(binding: Binding): string {
    let key = "";
    for (const [name, value] of binding) {
      // Values go in by number: a long value passed on from call to call is
      // one string, hashed once, not copied into every key.
      const ids = this.#valueIds ??= new Map();
      let id = value === undefined ? "-" : ids.get(value);
      if (id === undefined) {
        id = String(ids.size);
        ids.set(value!, id);
      }
      key += `${name}\u0001${id}\u0003`;
    }
    // The key is kept per argument set: what it costs is memory held.
    this.#characters(key.length);
    return key;
  }

  // ---- loops ----

  /** Go `%d`-family formats: `%d`, `%03d`, with literal text around; else undefined. */
  #sequenceFormatter(format: unknown): ((n: number) => string) | undefined {
    if (!isSet(format) || format === "") return (n) => String(n);
    if (typeof format !== "string") return undefined;
    // Read on every evaluation of the step: what it costs counts.
    this.#characters(format.length);
    const match = format.match(/^([^%]*)%(0?)(\d*)d([^%]*)$/);
    if (!match) return undefined;
    const [, before, zero, width, after] = match;
    const size = width === "" ? 0 : Number(width);
    if (size > MAX_SEQUENCE_WIDTH) {
      this.#fail(
        `withSequence format ${quote(format)} is wider than ${MAX_SEQUENCE_WIDTH}`,
        "MAX_SEQUENCE_WIDTH",
        MAX_SEQUENCE_WIDTH,
      );
    }
    return (n) => {
      const digits = String(Math.abs(n));
      const sign = n < 0 ? "-" : "";
      const body = zero === "0" ? sign + digits.padStart(size - sign.length, "0") : (sign + digits)
        .padStart(size, " ");
      const length = before.length + body.length + after.length;
      this.#built(length);
      this.#characters(length);
      return before + body + after;
    };
  }

  #tooManyItems(count: number): never {
    this.#fail(
      `a loop of ${count} items passes ${MAX_LOOP_ITEMS}`,
      "MAX_LOOP_ITEMS",
      MAX_LOOP_ITEMS,
    );
  }

  /** Argo's `withSequence`: `count` (from `start`) or `start`…`end`, inclusive. */
  #sequenceItems(sequence: Obj, used: boolean): Item[] {
    // The format is checked even when nothing reads the item: Argo would build the strings.
    const format = this.#sequenceFormatter(sequence.format);
    const start = isSet(sequence.start) ? intOf(sequence.start) : 0;
    const count = isSet(sequence.count) ? intOf(sequence.count) : undefined;
    const end = isSet(sequence.end) ? intOf(sequence.end) : undefined;
    const literalCount = !isSet(sequence.count) || count !== undefined;
    const literalEnd = !isSet(sequence.end) || end !== undefined;
    if (format === undefined || start === undefined || !literalCount || !literalEnd) {
      return [UNKNOWN];
    }
    if (count === undefined && end === undefined) return [UNKNOWN];
    if (!used) return [UNKNOWN];
    const total = count ?? Math.abs(end! - start) + 1;
    if (total > MAX_LOOP_ITEMS) this.#tooManyItems(total);
    this.#operations(Math.max(total, 0));
    const items: Item[] = [];
    const step = count !== undefined || end! >= start ? 1 : -1;
    for (let i = 0; i < total; i++) items.push({ value: format(start + i * step) });
    return items;
  }

  /** The expansions of a step or task: undefined when it runs once without an item. */
  #expansions(step: Obj): readonly Item[] | undefined {
    const loops = isSet(step.withItems) || isSet(step.withParam) || isSet(step.withSequence);
    if (!loops) return undefined;
    const readsItemOf = this.#readsItem ??= new Map();
    let used = readsItemOf.get(step);
    if (used === undefined) {
      const { reads, visited } = readsItem(step);
      this.#operations(visited);
      used = reads;
      readsItemOf.set(step, used);
    }
    if (isSet(step.withItems)) {
      if (!Array.isArray(step.withItems)) return [UNKNOWN];
      // A loop whose item nothing reads gives the same images on every item.
      if (!used) return [UNKNOWN];
      if (step.withItems.length > MAX_LOOP_ITEMS) this.#tooManyItems(step.withItems.length);
      this.#operations(step.withItems.length);
      return step.withItems.map((value): Item => ({ value }));
    }
    // withParam's list comes from an output at run time: not knowable offline.
    if (isSet(step.withParam)) return [UNKNOWN];
    const sequence = asObject(step.withSequence);
    return sequence ? this.#sequenceItems(sequence, used) : [UNKNOWN];
  }

  // ---- walking ----

  /** Records the names of templates called from `template`, inline ones included. */
  #collectCalls(template: Obj, called: Set<string>, depth: number): void {
    for (const step of stepsOf(template)) {
      this.#operations(1);
      if (typeof step.template === "string") called.add(step.template);
      if (typeof step.onExit === "string") called.add(step.onExit);
      for (const hook of hooksOf(step)) {
        if (typeof hook.template === "string") called.add(hook.template);
      }
      const inline = asObject(step.inline);
      if (inline && depth < MAX_INLINE_DEPTH) this.#collectCalls(inline, called, depth + 1);
    }
  }

  #drain(): void {
    while (this.#next < this.#queue.length) {
      const job = this.#queue[this.#next]!;
      // Done jobs are let go, so that only pending ones hold memory.
      this.#queue[this.#next++] = undefined;
      const scope: Scope = { globals: this.#globalScope.globals, inputs: [job.binding], items: [] };
      this.#trail.push(job.state);
      this.#walk(job.template, scope, job.state, job.real, 0);
      this.#trail.pop();
    }
  }

  #call(name: string, passed: ReadonlyMap<string, Value>, real: boolean): void {
    const template = this.#named.get(name);
    if (template !== undefined) this.#schedule(template, passed, real);
  }

  #schedule(template: Obj, passed: ReadonlyMap<string, Value> | undefined, real: boolean): void {
    this.#operations(1);
    const state = this.#states.get(template)!;
    const binding: Binding = this.#bindInputs(template, passed, this.#globalScope);
    const key = this.#bindingKey(binding);
    const seen = state.bindings.get(key);
    if (seen !== undefined && (seen.real || !real)) return;
    if (seen !== undefined) seen.real = true;
    else {
      if (state.bindings.size >= MAX_CALL_BINDINGS) {
        this.#fail(
          `${state.label} is called with more than ${MAX_CALL_BINDINGS} distinct arguments`,
          "MAX_CALL_BINDINGS",
          MAX_CALL_BINDINGS,
        );
      }
      state.bindings.set(key, { real });
    }
    if (real) state.real = true;
    this.#queue.push({ template, state, binding, real });
  }

  #walk(template: Obj, scope: Scope, state: TemplateState, real: boolean, depth: number): void {
    this.#operations(1);
    for (const entry of this.#imagesOf(template, scope)) {
      this.#emit(entry.image, scope, state, real);
    }
    const steps = stepsOf(template);
    this.#operations(steps.length);
    for (const step of steps) {
      this.#trail.push(step);
      this.#step(step, scope, state, real, depth);
      this.#trail.pop();
    }
  }

  #step(step: Obj, scope: Scope, state: TemplateState, real: boolean, depth: number): void {
    let items: readonly Item[] | undefined = this.#expansions(step);
    // An empty list runs nothing, but the images it names are still read:
    // placeholders that need an item are then reported as written.
    if (items !== undefined && items.length === 0) items = [UNKNOWN];
    const inline = asObject(step.inline);
    // By index, without a one-element list for the usual step that runs once.
    const runs = items === undefined ? 1 : items.length;
    for (let run = 0; run < runs; run++) {
      const item = items === undefined ? undefined : items[run];
      this.#operations(1);
      const stepScope: Scope = item === undefined
        ? scope
        : { ...scope, items: [...scope.items, item] };
      const passed = this.#passedArguments(step.arguments, stepScope);
      if (inline) {
        if (depth < MAX_INLINE_DEPTH) {
          const binding = this.#bindInputs(inline, passed, stepScope);
          const inner: Scope = { ...stepScope, inputs: [...stepScope.inputs, binding] };
          this.#trail.push("inline");
          this.#walk(inline, inner, state, real, depth + 1);
          this.#trail.pop();
        }
      } else if (typeof step.template === "string") {
        this.#call(step.template, passed, real);
      }
      if (typeof step.onExit === "string") this.#call(step.onExit, NO_VALUES, real);
      for (const hook of hooksOf(step)) {
        this.#operations(1);
        if (typeof hook.template === "string") {
          this.#call(hook.template, this.#passedArguments(hook.arguments, stepScope), real);
        }
      }
    }
  }

  #emit(image: string, scope: Scope, state: TemplateState, real: boolean): void {
    this.#operations(1);
    this.#characters(image.length);
    if (!image.includes("{{")) {
      this.#images.add(image);
      return;
    }
    const resolved = this.#substitute(image, scope);
    if (resolved !== undefined && resolved.trim() !== "") this.#images.add(resolved);
    else if (real) this.#images.add(image);
    else (state.fallbackUnresolved ??= new Set()).add(image);
  }

  // ---- where images are ----

  /**
   * `templateDefaults`, checked like a template's fields: Argo merges it into
   * every template, so a default it cannot decode breaks them all.
   */
  #checkDefaults(value: unknown, path: string): Obj | undefined {
    if (!isSet(value)) return undefined;
    const defaults = asObject(value);
    if (!defaults) throw new TypeError(`${path} is ${describe(value)}, expected a template`);
    this.#trail.push(path);
    this.#imageOf(defaults.container, "container");
    this.#imageOf(defaults.script, "script");
    this.#containers(defaults.initContainers, "initContainers");
    this.#containers(defaults.sidecars, "sidecars");
    this.#trail.pop();
    return defaults;
  }

  /**
   * The `image` of a `container` or `script`: undefined when not set, the
   * string otherwise (`""` included, so that it is reported as an empty
   * reference). Anything else Argo could not decode either.
   */
  #imageOf(holder: unknown, field: string, index?: number): { present: boolean; image?: string } {
    if (!isSet(holder)) return ABSENT;
    // The field is named (`sidecars[2]`) only in a message: no text is built per entry read.
    const fields = asObject(holder);
    if (!fields) this.#invalid(`${fieldAt(field, index)} is ${describe(holder)}, expected a map`);
    const image = fields.image;
    if (!isSet(image)) return PRESENT_WITHOUT_IMAGE;
    if (typeof image !== "string") {
      this.#invalid(
        `${fieldAt(field, index)}.image is ${describe(image)}, expected an image reference`,
      );
    }
    return { present: true, image };
  }

  /** The entries of a container list, each checked; `name` and `image` as written. */
  #containers(list: unknown, field: string): { name?: string; image?: string }[] {
    if (!isSet(list)) return [];
    if (!Array.isArray(list)) this.#invalid(`${field} is ${describe(list)}, expected a list`);
    this.#operations(list.length);
    return list.map((raw, i) => {
      const { image } = this.#imageOf(raw, field, i);
      const name = asObject(raw)?.name;
      return { name: typeof name === "string" ? name : undefined, image };
    });
  }

  /**
   * Containers merged with defaults the way a strategic merge patch keyed by
   * `name` merges them: same-named defaults fill in a missing image, other
   * defaults are added.
   */
  #pushMergedContainers(out: Named[], own: unknown, defaults: unknown, field: string): void {
    // Most templates have no such list: nothing to check, merge or add.
    if (!isSet(own) && !isSet(defaults)) return;
    const mine = this.#containers(own, field);
    const theirs = defaults === undefined ? [] : this.#containers(defaults, field);
    const defaultImages = new Map<string, string | undefined>();
    for (const entry of theirs) {
      if (entry.name !== undefined && !defaultImages.has(entry.name)) {
        defaultImages.set(entry.name, entry.image);
      }
    }
    const named = new Set<string>();
    for (const entry of mine) {
      if (entry.name !== undefined) named.add(entry.name);
      const fallback = entry.name === undefined ? undefined : defaultImages.get(entry.name);
      pushImage(out, entry.name, entry.image, fallback);
    }
    for (const entry of theirs) {
      if (entry.name === undefined || !named.has(entry.name)) {
        pushImage(out, entry.name, entry.image);
      }
    }
  }

  /**
   * A `podSpecPatch` with its placeholders resolved, parsed: its
   * `containers` and `initContainers`. Undefined when a placeholder cannot
   * be resolved (the patch is then not known offline, typically resources
   * from a parameter) or when there is no patch.
   */
  #podSpecPatch(raw: unknown, field: string, scope: Scope): Named[] | undefined {
    if (!isSet(raw)) return undefined;
    if (typeof raw !== "string") this.#invalid(`${field} is ${describe(raw)}, expected a string`);
    const text = this.#substitute(raw, scope);
    if (text === undefined) return undefined;
    const patches = this.#patches ??= new Map();
    let parsed = patches.get(text);
    if (parsed === undefined) {
      // Parsed once per distinct text: every evaluation of the template would
      // otherwise parse it again.
      this.#characters(text.length);
      let value: unknown = text.trim() === "" ? {} : parseJson(text);
      if (value === undefined) {
        // Patches are JSON in practice, and JSON.parse is many times faster
        // than the YAML parser, which reads JSON the same (YAML is a superset).
        // What the YAML parser reads is bounded per object, not per text:
        // patches built from many argument sets are distinct texts.
        this.#trail.push(field);
        try {
          value = parseBoundedYaml(text, field, {
            expected: "pod spec",
            budget: this.#yamlRead ??= { tokens: 0 },
          });
        } catch (error) {
          if (error instanceof ObjectLimitError) {
            this.#fail(error.detail, error.limit, error.max);
          }
          this.#trail.pop();
          const message = (error as Error).message.replace(`${field}: invalid YAML: `, "");
          this.#invalid(`${field} is not valid JSON or YAML: ${message}`);
        }
        this.#trail.pop();
      }
      const patch = isSet(value) ? asObject(value) : {};
      if (!patch) this.#invalid(`${field} is ${describe(value)}, expected a pod spec`);
      parsed = [];
      this.#trail.push(field);
      for (const list of ["initContainers", "containers"]) {
        for (const entry of this.#containers(patch[list], list)) {
          if (entry.image !== undefined) parsed.push({ name: entry.name, image: entry.image });
        }
      }
      this.#trail.pop();
      patches.set(text, parsed);
    }
    return parsed;
  }

  /** The images a template names, with `templateDefaults` and `podSpecPatch` merged in. */
  #imagesOf(template: Obj, scope: Scope): readonly Named[] {
    const out: Named[] = [];
    const defaults = this.#defaults;
    const container = this.#imageOf(template.container, "container");
    const script = this.#imageOf(template.script, "script");
    const containerSet = template.containerSet;
    if (isSet(containerSet) && !asObject(containerSet)) {
      this.#invalid(`containerSet is ${describe(containerSet)}, expected a map`);
    }
    // Argo keeps the template's type when merging defaults: a default
    // container image fills container templates, a default script image
    // script templates. Either runs as the pod's `main` container.
    if (container.present) {
      pushImage(out, "main", container.image, asObject(defaults?.container)?.image);
    }
    if (script.present) pushImage(out, "main", script.image, asObject(defaults?.script)?.image);
    // A containerSet keeps its own containers; defaults are not merged into them.
    if (isSet(containerSet)) {
      this.#pushMergedContainers(
        out,
        asObject(containerSet)!.containers,
        undefined,
        "containerSet.containers",
      );
    }
    // Default init containers and sidecars only matter where a pod runs.
    const runsPod = container.present || script.present || isSet(containerSet);
    this.#pushMergedContainers(
      out,
      template.initContainers,
      runsPod ? defaults?.initContainers : undefined,
      "initContainers",
    );
    this.#pushMergedContainers(
      out,
      template.sidecars,
      runsPod ? defaults?.sidecars : undefined,
      "sidecars",
    );
    if (runsPod) {
      // Argo patches the pod with the workflow's podSpecPatch, then the
      // template's (its own, else templateDefaults'): a strategic merge
      // keyed by container name, so a patched name replaces that
      // container's image and a new name adds a container.
      const own = isSet(template.podSpecPatch) ? template.podSpecPatch : defaults?.podSpecPatch;
      const patches = [
        this.#podSpecPatch(this.#workflowPatch, "spec.podSpecPatch", scope),
        this.#podSpecPatch(own, "podSpecPatch", scope),
      ];
      if (patches[0] === undefined && patches[1] === undefined) {
        this.#operations(out.length);
        return out;
      }
      // By name through a map: a patch may list thousands of containers,
      // and a search of the list per entry would cost their square.
      const byName = new Map<string, Named>();
      for (const named of out) {
        if (named.name !== undefined && !byName.has(named.name)) byName.set(named.name, named);
      }
      for (const patch of patches) {
        for (const entry of patch ?? []) {
          const same = entry.name === undefined ? undefined : byName.get(entry.name);
          if (same) same.image = entry.image;
          else {
            const added = { ...entry };
            out.push(added);
            if (added.name !== undefined) byName.set(added.name, added);
          }
        }
      }
    }
    this.#operations(out.length);
    return out;
  }
}

/** `field`, or its entry `field[index]`, for a message. */
function fieldAt(field: string, index: number | undefined): string {
  return index === undefined ? field : `${field}[${index}]`;
}

const ABSENT: { present: boolean; image?: string } = Object.freeze({ present: false });
const PRESENT_WITHOUT_IMAGE: { present: boolean; image?: string } = Object.freeze({
  present: true,
});

/** A JSON value, or undefined when the text is not JSON (nor `null`). */
function parseJson(text: string): unknown {
  if (!/^\s*[[{]/.test(text)) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A pod's container as far as images go. */
interface Named {
  readonly name?: string;
  image: string;
}

/**
 * Adds the template's own image, else the default's. An empty image with no
 * default is added as `""`, so that it is reported as an empty reference
 * instead of vanishing. Defaults' types were checked when they were read.
 */
function pushImage(
  out: Named[],
  name: string | undefined,
  own: string | undefined,
  fallback?: unknown,
): void {
  if (own !== undefined && own !== "") out.push({ name, image: own });
  else if (typeof fallback === "string" && fallback !== "") out.push({ name, image: fallback });
  else if (own !== undefined) out.push({ name, image: own });
}

/** Options for {@linkcode imagesFromWorkflowSpec}. */
export interface WorkflowSpecOptions {
  /** Where the spec sits in its object, for messages. @default {"spec"} */
  readonly path?: string;
  /**
   * Counters to add this evaluation's work to; they hold what was done even
   * when the evaluation throws.
   */
  readonly work?: ArgoWork;
}

/**
 * Images named by a WorkflowSpec: the `spec` of a WorkflowTemplate or a
 * ClusterWorkflowTemplate, a CronWorkflow's `spec.workflowSpec`, or a
 * Workflow's `spec`. Pure. References whose placeholders cannot be resolved
 * are returned as written, `{{…}}` included; an image written as `""` is
 * returned as `""`, so that it is reported.
 *
 * @example
 * ```ts
 * imagesFromWorkflowSpec({
 *   arguments: { parameters: [{ name: "tag", value: "3.20" }] },
 *   templates: [{ name: "main", container: { image: "alpine:{{workflow.parameters.tag}}" } }],
 * }); // Set { "alpine:3.20" }
 * ```
 *
 * @throws {TypeError} when the spec is not one Argo could decode: missing,
 * `templates` missing or not a list, a template that is not a map, an image
 * that is not a string, a container list that is not a list, …
 * @throws {ObjectLimitError} when reading it would pass one of the limits
 * ({@linkcode MAX_EXPANDED_LENGTH}, {@linkcode MAX_LOOP_ITEMS},
 * {@linkcode MAX_SEQUENCE_WIDTH}, {@linkcode MAX_CALL_BINDINGS},
 * {@linkcode MAX_WORK}, {@linkcode MAX_CHARACTERS}, {@linkcode MAX_INLINE_DEPTH}), or
 * when a `podSpecPatch` read as YAML passes `MAX_YAML_TOKENS` (per object),
 * `MAX_YAML_DEPTH` or `MAX_ALIASES` (see `bounded_yaml.ts`).
 * Nothing else is thrown.
 */
export function imagesFromWorkflowSpec(
  spec: unknown,
  options: WorkflowSpecOptions = {},
): Set<string> {
  const path = options.path ?? "spec";
  const fields = asObject(spec);
  if (!fields) {
    throw new TypeError(
      isSet(spec) ? `${path} is ${describe(spec)}, expected a map` : `${path} is missing`,
    );
  }
  const work = options.work ?? { operations: 0, characters: 0, longest: 0 };
  return new Extractor(fields, path, work).run();
}

/** `Kind "namespace/name"`, as messages name an object. */
function objectLabel(kind: string, obj: unknown): string {
  const meta = asObject(asObject(obj)?.metadata);
  const name = typeof meta?.name === "string" ? meta.name : "";
  const namespace = typeof meta?.namespace === "string" ? meta.namespace : "";
  return `${kind} ${JSON.stringify(namespace === "" ? name : `${namespace}/${name}`)}`;
}

/** Options for {@linkcode imagesFromWorkflowTemplate} and the other kinds. */
export interface ArgoObjectOptions {
  /** Counters to add this evaluation's work to. */
  readonly work?: ArgoWork;
}

/** Reads one kind of object through the spec `specOf` picks, naming the object in any error. */
function objectReader(
  kind: string,
  specOf: (o: Obj | undefined) => { value: unknown; path: string },
): (obj: unknown, options?: ArgoObjectOptions) => Set<string> {
  return (obj, options = {}) => {
    const { value, path } = specOf(asObject(obj));
    try {
      return imagesFromWorkflowSpec(value, { path, work: options.work });
    } catch (error) {
      const label = objectLabel(kind, obj);
      if (error instanceof ObjectLimitError) throw error.forObject(label);
      if (error instanceof TypeError) throw new TypeError(`${label}: ${error.message}`);
      throw error;
    }
  };
}

const topSpec = (o: Obj | undefined) => ({ value: o?.spec, path: "spec" });

/**
 * Images named by a WorkflowTemplate, read from its `spec`. Pure.
 *
 * @throws {TypeError} or {@linkcode ObjectLimitError} as
 * {@linkcode imagesFromWorkflowSpec}, the message starting with
 * `WorkflowTemplate "namespace/name": `.
 */
export const imagesFromWorkflowTemplate: (obj: unknown, options?: ArgoObjectOptions) => Set<
  string
> = objectReader("WorkflowTemplate", topSpec);

/**
 * Images named by a ClusterWorkflowTemplate, read from its `spec`. Pure.
 *
 * @throws {TypeError} or {@linkcode ObjectLimitError} as
 * {@linkcode imagesFromWorkflowSpec}, naming the object.
 */
export const imagesFromClusterWorkflowTemplate: (
  obj: unknown,
  options?: ArgoObjectOptions,
) => Set<string> = objectReader("ClusterWorkflowTemplate", topSpec);

/**
 * Images named by a CronWorkflow, read from its `spec.workflowSpec`. Pure.
 *
 * @throws {TypeError} or {@linkcode ObjectLimitError} as
 * {@linkcode imagesFromWorkflowSpec}, naming the object.
 */
export const imagesFromCronWorkflow: (obj: unknown, options?: ArgoObjectOptions) => Set<string> =
  objectReader("CronWorkflow", (o) => {
    const spec = asObject(o?.spec);
    return spec
      ? { value: spec.workflowSpec, path: "spec.workflowSpec" }
      : { value: o?.spec, path: "spec" };
  });
