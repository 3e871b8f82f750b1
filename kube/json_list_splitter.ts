/**
 * An incremental splitter for Kubernetes list responses: fed the bytes of
 * `{"kind":…,"metadata":{…},"items":[{…},{…},…]}` as they arrive, it hands
 * over the text of each element of `items` on its own, and keeps the rest of
 * the object (with `items` emptied) for the end.
 *
 * Why: parsing a whole list page at once holds the page's text and its whole
 * object tree in memory together (for 500 WorkflowTemplates, ~4 MB of text and
 * several times that as objects); split, only one element's text and tree
 * exist at a time, and the caller reduces each to what it needs before the
 * next is parsed.
 *
 * The splitter only finds boundaries; `JSON.parse` still validates every
 * element and the remaining object, so malformed input is always an error.
 * It works on UTF-8 bytes: the bytes it looks for (quotes, backslashes,
 * brackets, commas, colons) never occur inside a multi-byte character, so a
 * chunk may end anywhere, even inside a character or an escape sequence.
 *
 * @module
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Options for {@linkcode JsonListSplitter}. */
export interface JsonListSplitterOptions {
  /** The top-level field whose array is split. @default {"items"} */
  field?: string;
  /**
   * Largest element, in bytes: a longer one is an error, not unbounded
   * buffering. Kubernetes objects are at most ~1.5 MB (etcd's limit).
   * @default {33554432}
   */
  maxItemBytes?: number;
  /** Largest remainder of the object outside the array, in bytes. @default {1048576} */
  maxRestBytes?: number;
  /**
   * Called once, as the array opens, with the object read so far (its fields
   * before the array, the array empty) as JSON text: what a list says before
   * its items (a Kubernetes list's `metadata` with its continue token comes
   * first), known before the items have arrived.
   */
  onArrayStart?: (before: string) => void;
  /**
   * When given, each element's UTF-8 bytes go here instead of its decoded
   * text to `onItem` (for a caller that parses elsewhere). The array is a
   * view valid only during the call: copy what must outlive it.
   */
  onItemBytes?: (bytes: Uint8Array) => void;
}

/**
 * Splits one JSON object's array field into its elements as the bytes arrive.
 *
 * ```ts
 * const splitter = new JsonListSplitter((text) => handle(JSON.parse(text)));
 * for await (const chunk of body) splitter.push(chunk);
 * const list = JSON.parse(splitter.end()); // { metadata, items: [] }
 * ```
 */
export class JsonListSplitter {
  readonly #onItem: (text: string) => void;
  readonly #field: string;
  readonly #fieldBytes: Uint8Array;
  readonly #maxItemBytes: number;
  readonly #maxRestBytes: number;
  readonly #onArrayStart?: (before: string) => void;
  readonly #onItemBytes?: (bytes: Uint8Array) => void;
  // Not fatal: invalid UTF-8 becomes U+FFFD, as in `Response.text()`.
  readonly #decoder = new TextDecoder();

  /** Open objects and arrays. */
  #depth = 0;
  /** Whether anything but whitespace has been seen; and whether the top value closed. */
  #started = false;
  #closed = false;
  #inString = false;
  /** The previous chunk ended inside a string on an unpaired backslash. */
  #escape = false;
  /** A string at depth 1 (maybe a key) is being read. */
  #keyOpen = false;
  /** Start (in the current chunk) of that string's bytes, or -1. */
  #keyStart = -1;
  /** Bytes of the last string read at depth 1, if short enough to be the field's name. */
  #lastString: Uint8Array | undefined;
  /** Bytes so far of the string at depth 1 being read; undefined once too long. */
  #keyParts: Uint8Array[] | undefined = [];
  #keyBytes = 0;
  /** The last string at depth 1 was followed by a colon: it is a key. */
  #key: "field" | "other" | undefined;
  #stringWasKeyCandidate = false;
  /** Inside the field's array (at depth 2). */
  #inItems = false;
  #sawItems = false;
  /** In the array: an element is being read, and where it began in this chunk (-1: earlier). */
  #capturing = false;
  #itemStart = -1;
  #itemParts: Uint8Array[] = [];
  #itemBytes = 0;
  /** In the array: a comma was read and an element must follow. */
  #needElement = false;
  /** The bytes of the object outside the array. */
  #rest: Uint8Array[] = [];
  #restBytes = 0;

  /**
   * @param onItem called with each element's text, in order, as soon as the
   *   bytes after it show that it is complete.
   */
  constructor(onItem: (text: string) => void, options: JsonListSplitterOptions = {}) {
    this.#onItem = onItem;
    this.#field = options.field ?? "items";
    this.#fieldBytes = new TextEncoder().encode(this.#field);
    this.#maxItemBytes = options.maxItemBytes ?? 32 * 1024 * 1024;
    this.#maxRestBytes = options.maxRestBytes ?? 1024 * 1024;
    this.#onArrayStart = options.onArrayStart;
    this.#onItemBytes = options.onItemBytes;
  }

  /**
   * Reads the next bytes, calling `onItem` for every element they complete.
   *
   * @throws {SyntaxError} when the bytes cannot be a JSON object, or a limit is passed.
   */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    // Where the current run of bytes that belongs to the remainder began.
    let restStart = this.#inItems ? -1 : 0;
    if (this.#capturing) this.#itemStart = 0;
    if (this.#keyOpen) this.#keyStart = 0;
    while (i < n) {
      if (this.#inString) {
        i = this.#scanString(chunk, i);
        continue;
      }
      if (this.#capturing && this.#depth > 2) {
        // Most bytes are inside an element: a tight loop until it closes.
        i = this.#skipInElement(chunk, i);
        continue;
      }
      const b = chunk[i];
      if (isSpace(b)) {
        i++;
        continue;
      }
      if (this.#closed) throw new SyntaxError("Unexpected data after the end of the JSON object");
      if (!this.#started) {
        if (b !== OPEN_BRACE) throw new SyntaxError("Expected a JSON object");
        this.#started = true;
      }
      const depth = this.#depth;
      if (this.#inItems && depth === 2) {
        if (b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE) {
          if (this.#capturing) this.#emit(chunk, i);
          else if (b === COMMA || this.#needElement) {
            throw new SyntaxError(`Missing element in the "${this.#field}" array`);
          }
          if (b === COMMA) {
            this.#needElement = true;
            i++;
            continue;
          }
          if (b === CLOSE_BRACE) {
            throw new SyntaxError(`Unterminated "${this.#field}" array`);
          }
          // The array's end: the remainder resumes with its closing bracket.
          this.#inItems = false;
          this.#depth = 1;
          restStart = i;
          i++;
          continue;
        }
        if (!this.#capturing) {
          this.#capturing = true;
          this.#needElement = false;
          this.#itemStart = i;
          this.#itemBytes = 0;
        }
      }
      if (b === QUOTE) {
        this.#inString = true;
        if (depth === 1) {
          this.#key = undefined;
          this.#keyOpen = true;
          this.#keyStart = i + 1;
          this.#keyParts = [];
          this.#keyBytes = 0;
          this.#stringWasKeyCandidate = true;
        }
        i++;
        continue;
      }
      if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (depth === 1 && b === OPEN_BRACKET && this.#key === "field") {
          if (this.#sawItems) {
            throw new SyntaxError(`Duplicate "${this.#field}" field`);
          }
          // The array's contents leave the remainder: it keeps `[` and `]`.
          this.#sawItems = true;
          this.#inItems = true;
          this.#needElement = false;
          this.#addRest(chunk, restStart, i + 1);
          restStart = -1;
          if (this.#onArrayStart) {
            // The bytes so far end with `[`: closing the array and the object
            // makes them a JSON object of the fields read so far.
            const so = new TextDecoder().decode(concat(this.#rest, this.#restBytes));
            this.#onArrayStart(`${so}]}`);
          }
        }
        this.#key = undefined;
        this.#depth = depth + 1;
        i++;
        continue;
      }
      if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (depth === 0) throw new SyntaxError(`Unexpected "${String.fromCharCode(b)}"`);
        this.#depth = depth - 1;
        if (this.#depth === 0) this.#closed = true;
        i++;
        continue;
      }
      if (depth === 1) {
        if (b === COLON && this.#stringWasKeyCandidate) {
          this.#key = this.#isField() ? "field" : "other";
        } else if (b !== COLON) {
          this.#key = undefined;
        }
        this.#stringWasKeyCandidate = false;
      }
      i++;
    }
    if (this.#capturing) this.#keepItem(chunk, this.#itemStart, n);
    if (restStart >= 0) this.#addRest(chunk, restStart, n);
    if (this.#keyOpen) this.#keepKey(chunk, this.#keyStart, n);
    this.#itemStart = -1;
    this.#keyStart = -1;
  }

  /**
   * Ends the input and returns the object without the array's elements (the
   * array itself stays, empty), as JSON text.
   *
   * @throws {SyntaxError} when the input ended before the object did.
   */
  end(): string {
    if (!this.#closed || this.#inString) {
      throw new SyntaxError("Unexpected end of JSON input");
    }
    const text = this.#decoder.decode(concat(this.#rest, this.#restBytes));
    this.#rest = [];
    return text;
  }

  /**
   * Reads bytes inside an element (depth above 2, not in a string) from `i`
   * until the element's last bracket closes or the chunk ends; returns where
   * to continue. Only quotes and brackets matter there (`JSON.parse` checks
   * the rest), so this is the general loop without the top-level cases.
   */
  #skipInElement(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    let depth = this.#depth;
    while (i < n) {
      const b = chunk[i];
      if (b === QUOTE) {
        // A string without escapes ends at the next quote; otherwise (or at
        // the chunk's end) the general string scanner takes over.
        let j = i + 1;
        while (j < n) {
          const c = chunk[j];
          if (c === QUOTE || c === BACKSLASH) break;
          j++;
        }
        if (j < n && chunk[j] === QUOTE) {
          i = j + 1;
          continue;
        }
        this.#depth = depth;
        this.#inString = true;
        return i + 1;
      }
      if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        depth--;
        if (depth === 2) {
          this.#depth = depth;
          return i + 1;
        }
      }
      i++;
    }
    this.#depth = depth;
    return i;
  }

  /** Reads string bytes from `i`; returns where to continue. */
  #scanString(chunk: Uint8Array, i: number): number {
    if (this.#escape) {
      this.#escape = false;
      i++;
      if (i >= chunk.length) return i;
    }
    let from = i;
    while (true) {
      const q = chunk.indexOf(QUOTE, from);
      if (q === -1) {
        // No closing quote in this chunk: does it end on an unpaired backslash?
        let k = chunk.length - 1;
        while (k >= i && chunk[k] === BACKSLASH) k--;
        this.#escape = (chunk.length - 1 - k) % 2 === 1;
        return chunk.length;
      }
      let k = q - 1;
      while (k >= i && chunk[k] === BACKSLASH) k--;
      if ((q - 1 - k) % 2 === 1) {
        // An escaped quote: still inside the string.
        from = q + 1;
        continue;
      }
      this.#inString = false;
      if (this.#keyOpen) {
        this.#keepKey(chunk, this.#keyStart, q);
        this.#lastString = this.#takeKey();
        this.#keyOpen = false;
        this.#keyStart = -1;
      }
      return q + 1;
    }
  }

  #keepKey(chunk: Uint8Array, from: number, to: number): void {
    if (!this.#keyParts) return;
    this.#keyBytes += to - from;
    // Only a string short enough to be the field's name (even fully escaped) is kept.
    if (this.#keyBytes > 6 * this.#fieldBytes.length) this.#keyParts = undefined;
    else this.#keyParts.push(chunk.slice(from, to));
  }

  #takeKey(): Uint8Array | undefined {
    const parts = this.#keyParts;
    this.#keyParts = [];
    return parts ? concat(parts, this.#keyBytes) : undefined;
  }

  /** Whether the last string read at depth 1 names the field. */
  #isField(): boolean {
    const s = this.#lastString;
    if (!s) return false;
    if (!s.includes(BACKSLASH)) {
      return s.length === this.#fieldBytes.length && s.every((b, k) => b === this.#fieldBytes[k]);
    }
    // An escaped name (`"\u0069tems"`) is the same key to JSON.parse.
    try {
      return JSON.parse(`"${this.#decoder.decode(s)}"`) === this.#field;
    } catch {
      return false;
    }
  }

  #keepItem(chunk: Uint8Array, from: number, to: number): void {
    if (to <= from) return;
    this.#itemBytes += to - from;
    if (this.#itemBytes > this.#maxItemBytes) {
      throw new SyntaxError(
        `An element of "${this.#field}" is longer than ${this.#maxItemBytes} bytes`,
      );
    }
    // A copy: the chunk itself is not kept alive by a slice of it.
    this.#itemParts.push(chunk.slice(from, to));
  }

  #emit(chunk: Uint8Array, end: number): void {
    let bytes: Uint8Array;
    if (this.#itemParts.length === 0) {
      if (end - this.#itemStart > this.#maxItemBytes) this.#keepItem(chunk, this.#itemStart, end);
      bytes = chunk.subarray(this.#itemStart, end);
    } else {
      this.#keepItem(chunk, Math.max(this.#itemStart, 0), end);
      bytes = concat(this.#itemParts, this.#itemBytes);
    }
    this.#itemParts = [];
    this.#itemBytes = 0;
    this.#capturing = false;
    this.#itemStart = -1;
    if (this.#onItemBytes) this.#onItemBytes(bytes);
    else this.#onItem(this.#decoder.decode(bytes));
  }

  #addRest(chunk: Uint8Array, from: number, to: number): void {
    if (from < 0 || to <= from) return;
    this.#restBytes += to - from;
    if (this.#restBytes > this.#maxRestBytes) {
      throw new SyntaxError(
        `The JSON object outside "${this.#field}" is longer than ${this.#maxRestBytes} bytes`,
      );
    }
    this.#rest.push(chunk.slice(from, to));
  }
}
