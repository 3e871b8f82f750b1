/**
 * The PATCH formats kube-apiserver accepts: JSON Patch (RFC 6902), JSON
 * Merge Patch (RFC 7386), and strategic merge patch: a merge patch in which
 * the lists a resource declares with a merge key (a Node's
 * `status.conditions`, by `type`) are merged item by item, and every other
 * list is replaced (as the real server does for lists without
 * `patchStrategy: merge`, such as `spec.taints`).
 *
 * @module
 */

/** A PATCH content type the fake understands. */
export type PatchType = "json" | "merge" | "strategic";

/** Maps a Content-Type header to a patch type, or undefined when unsupported. */
export function patchTypeOf(contentType: string | null): PatchType | undefined {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  switch (type) {
    case "application/json-patch+json":
      return "json";
    case "application/merge-patch+json":
      return "merge";
    case "application/strategic-merge-patch+json":
      return "strategic";
    default:
      return undefined;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Applies an RFC 7386 merge patch; returns a new value, never mutates `target`. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete result[key];
    } else {
      result[key] = mergePatch(result[key], value);
    }
  }
  return result;
}

/**
 * Applies a strategic merge patch. `mergeKeys` maps a dotted path
 * (`status.conditions`) to the key its items merge by; an item of such a
 * list in the patch replaces fields of the item with the same key (or is
 * appended), and `{"$patch": "delete", type: X}` removes it. Other lists are
 * replaced. Returns a new value.
 */
export function strategicMergePatch(
  target: unknown,
  patch: unknown,
  mergeKeys: Readonly<Record<string, string>> = {},
  path = "",
): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    const at = path === "" ? key : `${path}.${key}`;
    const mergeKey = mergeKeys[at];
    if (value === null) {
      delete result[key];
    } else if (mergeKey !== undefined && Array.isArray(value)) {
      const items = Array.isArray(result[key]) ? [...result[key] as unknown[]] : [];
      for (const item of value) {
        if (!isPlainObject(item) || item[mergeKey] === undefined) {
          throw new TypeError(`${at}: every item needs its merge key "${mergeKey}"`);
        }
        const index = items.findIndex((old) =>
          isPlainObject(old) && old[mergeKey] === item[mergeKey]
        );
        if (item["$patch"] === "delete") {
          if (index >= 0) items.splice(index, 1);
        } else if (index >= 0) {
          items[index] = strategicMergePatch(items[index], item, mergeKeys, `${at}[]`);
        } else {
          items.push(strategicMergePatch(undefined, item, mergeKeys, `${at}[]`));
        }
      }
      result[key] = items;
    } else {
      result[key] = strategicMergePatch(result[key], value, mergeKeys, at);
    }
  }
  return result;
}

/** Whether two JSON values are equal (objects by keys, not key order). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length &&
      keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return a === b;
}

/** One RFC 6902 operation. */
export interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new TypeError(`Invalid JSON pointer "${pointer}"`);
  return pointer.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function parentOf(
  doc: unknown,
  tokens: string[],
  pointer: string,
): { parent: Record<string, unknown> | unknown[]; key: string } {
  let current = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(current)) current = current[Number(token)];
    else if (isPlainObject(current)) current = current[token];
    else current = undefined;
    if (current === undefined) {
      throw new TypeError(`Path "${pointer}" does not exist`);
    }
  }
  if (!Array.isArray(current) && !isPlainObject(current)) {
    throw new TypeError(`Path "${pointer}" does not exist`);
  }
  return { parent: current, key: tokens[tokens.length - 1] };
}

function getAt(doc: unknown, pointer: string): unknown {
  let current = doc;
  for (const token of parsePointer(pointer)) {
    if (Array.isArray(current)) current = current[Number(token)];
    else if (isPlainObject(current)) current = current[token];
    else current = undefined;
    if (current === undefined) throw new TypeError(`Path "${pointer}" does not exist`);
  }
  return current;
}

function arrayIndex(parent: unknown[], key: string, pointer: string, forInsert: boolean): number {
  if (forInsert && key === "-") return parent.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw new TypeError(`Invalid array index in "${pointer}"`);
  const index = Number(key);
  if (index > parent.length || (!forInsert && index === parent.length)) {
    throw new TypeError(`Array index out of range in "${pointer}"`);
  }
  return index;
}

function removeAt(doc: unknown, pointer: string): unknown {
  const { parent, key } = parentOf(doc, parsePointer(pointer), pointer);
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, key, pointer, false);
    return parent.splice(index, 1)[0];
  }
  if (!Object.hasOwn(parent, key)) throw new TypeError(`Path "${pointer}" does not exist`);
  const old = parent[key];
  delete parent[key];
  return old;
}

function addAt(doc: unknown, pointer: string, value: unknown): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, pointer, true), 0, value);
  else parent[key] = value;
  return doc;
}

/**
 * Applies an RFC 6902 JSON Patch; returns a new document.
 *
 * @throws {TypeError} when an operation cannot apply or a `test` fails.
 */
export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new TypeError("A JSON patch must be an array");
  let doc = structuredClone(target);
  for (const raw of operations as JsonPatchOperation[]) {
    if (!isPlainObject(raw) || typeof raw.path !== "string") {
      throw new TypeError(`Invalid JSON patch operation ${JSON.stringify(raw)}`);
    }
    switch (raw.op) {
      case "add":
        doc = addAt(doc, raw.path, structuredClone(raw.value));
        break;
      case "remove":
        removeAt(doc, raw.path);
        break;
      case "replace": {
        if (raw.path === "") {
          doc = structuredClone(raw.value);
          break;
        }
        const { parent, key } = parentOf(doc, parsePointer(raw.path), raw.path);
        if (Array.isArray(parent)) parent[arrayIndex(parent, key, raw.path, false)] = raw.value;
        else if (Object.hasOwn(parent, key)) parent[key] = structuredClone(raw.value);
        else throw new TypeError(`Path "${raw.path}" does not exist`);
        break;
      }
      case "move": {
        const value = removeAt(doc, raw.from ?? "");
        doc = addAt(doc, raw.path, value);
        break;
      }
      case "copy":
        doc = addAt(doc, raw.path, structuredClone(getAt(doc, raw.from ?? "")));
        break;
      case "test":
        // Deep equality, as RFC 6902 says: object key order does not count.
        if (!jsonEqual(getAt(doc, raw.path), raw.value)) {
          throw new TypeError(`Test operation failed at "${raw.path}"`);
        }
        break;
      default:
        throw new TypeError(`Unknown JSON patch operation "${String(raw.op)}"`);
    }
  }
  return doc;
}
