/**
 * Kubernetes label selectors in their string form, with the full syntax:
 * `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`.
 *
 * @module
 */

/** One requirement of a selector. */
export interface Requirement {
  readonly key: string;
  readonly operator:
    | "="
    | "!="
    | "in"
    | "notin"
    | "exists"
    | "!"
    | ">"
    | "<";
  readonly values: readonly string[];
}

const KEY =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * Parses a label selector. The empty string selects everything.
 *
 * @throws {TypeError} naming the part that is wrong.
 */
export function parseLabelSelector(text: string): Requirement[] {
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot parse label selector ${JSON.stringify(text)}: ${why}`,
    );
  };
  const checkKey = (key: string) => {
    if (!KEY.test(key)) fail(`invalid label key "${key}"`);
  };
  const checkValue = (value: string) => {
    if (!VALUE.test(value)) fail(`invalid label value "${value}"`);
  };
  if (text.trim() === "") return [];
  const requirements: Requirement[] = [];
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim();
    if (part === "") fail("empty requirement");
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+)\s+(in|notin)\s*\((.*)\)$/))) {
      const [, key, op, list] = m;
      checkKey(key);
      const values = list.split(",").map((v) => v.trim());
      values.forEach(checkValue);
      requirements.push({
        key,
        operator: op as "in" | "notin",
        values,
      });
    } else if ((m = part.match(/^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/))) {
      const [, key, op, value] = m;
      checkKey(key);
      if (op === ">" || op === "<") {
        if (!/^-?\d+$/.test(value)) fail(`"${op}" needs an integer`);
      } else {
        checkValue(value);
      }
      requirements.push({
        key,
        operator: op === "==" ? "=" : op as "=" | "!=" | ">" | "<",
        values: [value],
      });
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      checkKey(m[1]);
      requirements.push({ key: m[1], operator: "!", values: [] });
    } else if (/^\S+$/.test(part)) {
      checkKey(part);
      requirements.push({ key: part, operator: "exists", values: [] });
    } else {
      fail(`cannot understand "${part}"`);
    }
  }
  return requirements;
}

/** Whether `labels` satisfy every requirement. */
export function matchesLabels(
  requirements: readonly Requirement[],
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const value = l[r.key];
    switch (r.operator) {
      case "=":
        return has && value === r.values[0];
      case "!=":
        return !has || value !== r.values[0];
      case "in":
        return has && r.values.includes(value);
      case "notin":
        return !has || !r.values.includes(value);
      case "exists":
        return has;
      case "!":
        return !has;
      case ">":
        return has && /^-?\d+$/.test(value) &&
          Number(value) > Number(r.values[0]);
      case "<":
        return has && /^-?\d+$/.test(value) &&
          Number(value) < Number(r.values[0]);
    }
  });
}

/** Parses `selector` and returns a predicate over label maps. */
export function labelMatcher(
  selector: string,
): (labels: Readonly<Record<string, string>> | undefined) => boolean {
  const requirements = parseLabelSelector(selector);
  return (labels) => matchesLabels(requirements, labels);
}
