// A JSON parser and serialiser that lose nothing a redaction should not touch.
//
// `JSON.parse` would turn 1.0 into 1, round integers past 2^53, and move keys that
// look like integers ("10", "2") to the front of their object. The Rust and Python
// builds of this plugin do none of that, so this module keeps what they keep:
// objects are `Map`s (insertion order, whatever the keys), and numbers are
// `JsonNumber`s holding the text they were written with (exponent aside, below).
//
// It accepts exactly what RFC 8259 (and serde_json) accept, including serde_json's
// nesting limit, so that all three builds refuse the same payloads.
//
// Inside a component this parser runs interpreted, about ten times slower than the
// engine's own JSON.parse. `parseNative` uses the engine's parser whenever its
// result provably loses nothing, which is most payloads.

/** A JSON number, kept as the text it was written with. */
export class JsonNumber {
  constructor(text) {
    this.text = text;
  }
}

// serde_json refuses the 128th level of nesting; the other builds follow it.
const MAX_DEPTH = 127;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const EXPONENT = /[eE]([+-]?)/;
const PLAIN_STRING = /"[^"\\\u0000-\u001f]*"/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
// With the u flag a surrogate range matches only surrogates that are not part of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
// A key JSON.parse would move to the front of its object (an array index), or an
// escape that could spell one (\u0030-\u0039) or a lone surrogate.
const MAYBE_INDEX_KEY = /"(?:0|[1-9][0-9]*)"[ \t\n\r]*:/;
const RISKY_ESCAPE = /\\u(?:003[0-9]|[dD][89a-fA-F])/;
// What could be a number token: at the start or after ':', ',' or '[', and before
// ',', ']', '}' or the end. Inside a string it may match too ("12:30, 4"), which
// only costs the fast path; times ("16:00:00") do not.
const STRING_TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"/g;
const NOT_BRACKET = /[^[\]{}]+/g;
const NUMBER_TOKEN = /(?:^|[:,[])[ \t\n\r]*(-?[0-9][0-9.eE+-]*)(?=[ \t\n\r]*(?:[,\]}]|$))/g;

/** Parses JSON text into Maps, arrays, strings, JsonNumbers, booleans and null. */
export function parse(text) {
  const parser = new Parser(text);
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.pos < text.length) parser.fail('trailing characters');
  return value;
}

/**
 * Whether this engine's JSON.parse can tell a reviver a number's source text, and
 * JSON.rawJSON write it back: the component's SpiderMonkey can; Node 20 only with
 * --harmony-json-parse-with-source.
 */
export const ENGINE_KEEPS_NUMBER_TEXT =
  typeof JSON.rawJSON === 'function' &&
  JSON.parse('1.0', (key, value, context) => context?.source) === '1.0';

/**
 * Parses JSON text with the engine's JSON.parse when that gives exactly what
 * `parse` would: no key that JSON.parse would reorder, no lone surrogate, no nesting
 * past the limit, and numbers that keep their text (as JSON.rawJSON values where
 * the engine has them, otherwise by writing no number JavaScript would rewrite).
 * Objects are plain objects. Returns undefined otherwise, and for text that is not
 * JSON (for `parse` to explain). `JSON.stringify` writes the result back as
 * `stringify` would write `parse`'s.
 */
export function parseNative(text) {
  if (MAYBE_INDEX_KEY.test(text) || RISKY_ESCAPE.test(text)) return undefined;
  let value;
  try {
    value = ENGINE_KEEPS_NUMBER_TEXT ? JSON.parse(text, keepNumberText) : JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!ENGINE_KEEPS_NUMBER_TEXT && !numbersKeepTheirText(text)) return undefined;
  return nestsDeeper(text, MAX_DEPTH) ? undefined : value;
}

/** Whether a value is a number `parseNative` kept as raw JSON text. */
export function isRawJson(value) {
  return ENGINE_KEEPS_NUMBER_TEXT && JSON.isRawJSON(value);
}

// A reviver: a number JavaScript would write back differently (1.0, 1e5, a
// 20-digit id) becomes a raw JSON value holding its text.
function keepNumberText(key, value, context) {
  if (typeof value !== 'number') return value;
  const { source } = context;
  if (String(value) === source) return value;
  return JSON.rawJSON(normaliseExponent(source));
}

// Whether every number in the text is written as JavaScript writes it back
// (1.0, 1e5, -0 and 20-digit integers are not).
function numbersKeepTheirText(text) {
  NUMBER_TOKEN.lastIndex = 0;
  for (let match; (match = NUMBER_TOKEN.exec(text)) !== null; ) {
    if (String(Number(match[1])) !== match[1]) return false;
  }
  return true;
}

// Whether valid JSON text nests objects and arrays more than `levels` deep. Two
// native regex passes leave only the brackets outside strings; walking those is
// much cheaper than walking the parsed value.
function nestsDeeper(text, levels) {
  const brackets = text.replace(STRING_TOKEN, '').replace(NOT_BRACKET, '');
  let depth = 0;
  for (let i = 0; i < brackets.length; i++) {
    const c = brackets.charCodeAt(i);
    depth += c === 0x5b || c === 0x7b ? 1 : -1;
    if (depth > levels) return true;
  }
  return false;
}

/** Serialises a parsed value as compact JSON, escaping strings as serde_json does. */
export function stringify(value) {
  return write(value);
}

// serde_json writes an exponent as e+N or e-N whatever the input said (1E5 is 1e+5),
// the one liberty it takes with a number's text; the other builds take it too.
function normaliseExponent(text) {
  return text.replace(EXPONENT, (_, sign) => `e${sign || '+'}`);
}

class Parser {
  constructor(text) {
    this.text = text;
    this.pos = 0;
  }

  fail(problem) {
    throw new SyntaxError(`${problem} at position ${this.pos}`);
  }

  skipWhitespace() {
    const { text } = this;
    let pos = this.pos;
    for (; pos < text.length; pos++) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    }
    this.pos = pos;
  }

  value(depth) {
    this.skipWhitespace();
    switch (this.text[this.pos]) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case undefined:
        return this.fail('unexpected end of input');
      default:
        return this.number();
    }
  }

  object(depth) {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    const fields = new Map();
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return fields;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      fields.set(key, this.value(depth));
      if (this.endOfList('}')) return fields;
    }
  }

  array(depth) {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    const items = [];
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return items;
    }
    for (;;) {
      items.push(this.value(depth));
      if (this.endOfList(']')) return items;
    }
  }

  /** After an element: true at the closing bracket, false after a comma. */
  endOfList(close) {
    this.skipWhitespace();
    const c = this.text[this.pos++];
    if (c === close) return true;
    if (c !== ',') this.fail(`expected ',' or '${close}'`);
    return false;
  }

  string() {
    const { text } = this;
    // Most strings have no escapes: one native regex match finds their end.
    PLAIN_STRING.lastIndex = this.pos;
    if (PLAIN_STRING.test(text)) {
      const value = text.slice(this.pos + 1, PLAIN_STRING.lastIndex - 1);
      this.pos = PLAIN_STRING.lastIndex;
      return value;
    }
    STRING.lastIndex = this.pos;
    if (!STRING.test(text)) this.fail('invalid string');
    // The token is valid JSON: let the engine decode its escapes.
    const value = JSON.parse(text.slice(this.pos, STRING.lastIndex));
    if (LONE_SURROGATE.test(value)) this.fail('lone surrogate in string');
    this.pos = STRING.lastIndex;
    return value;
  }

  number() {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) this.fail('expected a value');
    this.pos += match[0].length;
    return new JsonNumber(normaliseExponent(match[0]));
  }

  literal(word, value) {
    if (!this.text.startsWith(word, this.pos)) this.fail('expected a value');
    this.pos += word.length;
    return value;
  }
}

function write(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') {
    // JSON.stringify escapes exactly what serde_json and Python's json escape.
    return JSON.stringify(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof JsonNumber) return value.text;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += write(value[i]);
    }
    return out + ']';
  }
  if (value instanceof Map) {
    let out = '';
    for (const [key, item] of value) {
      out += `,${JSON.stringify(key)}:${write(item)}`;
    }
    return `{${out.slice(1)}}`;
  }
  throw new TypeError(`cannot serialise ${typeof value} as JSON`);
}
