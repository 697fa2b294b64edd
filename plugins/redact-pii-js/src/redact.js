// The redaction itself, free of host calls so that `node --test` runs it as it is.
//
// A path is a list of segments separated by dots. Each segment looks up an object
// key; on an array, `*` means every element and a decimal segment means that index.
// A path that leads nowhere is ignored: events of one type do not all carry every
// optional field.

import { JsonNumber, isRawJson, parse, parseNative, stringify } from './json.js';

// How many trailing characters `mask` leaves in clear unless configured otherwise.
const DEFAULT_KEEP_LAST = 4;
// The largest `keep_last` the configuration schema allows.
const MAX_KEEP_LAST = 16;
// What a masked object or array becomes: its shape and size could be personal too.
const REDACTED = '[redacted]';
const DIGITS = /^[0-9]+$/;
const SURROGATE = /[\uD800-\uDFFF]/;
// fatal: invalid UTF-8 is an invalid event, not silently replaced characters.
// ignoreBOM: keep a byte order mark so that it is refused, as the other builds do.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Why the plugin could not handle an event. componentize-js turns an exception
 * that has a `payload` into the `err` case of the export's `result`; the payload is
 * the `plugin-error` variant, `{ tag, val }`.
 */
export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.name = 'PluginError';
    this.payload = { tag, val: message };
  }
}

/**
 * Parses and checks the configuration. Weft validates it against the schema before
 * the plugin runs, but a plugin that silently redacted nothing because of a
 * misspelt key would leak exactly what it exists to hide, so it checks again and
 * names the offending key.
 */
export function parseConfig(json) {
  let fields;
  try {
    fields = parse(json);
  } catch (e) {
    throw new PluginError('invalid-config', `config is not valid JSON: ${e.message}`);
  }
  if (!(fields instanceof Map)) {
    throw new PluginError('invalid-config', 'config must be a JSON object');
  }
  const config = { remove: [], mask: [], keepLast: DEFAULT_KEEP_LAST };
  for (const [key, value] of fields) {
    switch (key) {
      case 'remove':
        config.remove = paths(key, value);
        break;
      case 'mask':
        config.mask = paths(key, value);
        break;
      case 'keep_last':
        config.keepLast = keepLast(value);
        break;
      default:
        throw new PluginError('invalid-config', `unknown config key "${key}"`);
    }
  }
  return config;
}

function paths(key, value) {
  const valid =
    Array.isArray(value) && value.every((path) => typeof path === 'string' && path !== '');
  if (!valid) {
    throw new PluginError(
      'invalid-config',
      `config "${key}" must be an array of non-empty strings`,
    );
  }
  return value;
}

function keepLast(value) {
  // An integer in JSON Schema's sense, as the host's validator sees it: 4.0 is one.
  const n = value instanceof JsonNumber ? Number(value.text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > MAX_KEEP_LAST) {
    throw new PluginError(
      'invalid-config',
      `config "keep_last" must be an integer from 0 to ${MAX_KEEP_LAST}`,
    );
  }
  return n;
}

/**
 * What the transform does to one event, short of the host calls: checks the
 * configuration first (a bad one fails every event, so it is the error to report),
 * then parses and redacts the payload, and returns the body to deliver.
 *
 * `native: false` skips the engine's JSON.parse, so that the tests can run every
 * case through both parsers.
 */
export function redactEvent(eventId, data, configJson, { native = true } = {}) {
  const config = parseConfig(configJson);
  const text = decodePayload(eventId, data);
  const fast = native ? parseNative(text) : undefined;
  if (fast !== undefined) {
    redact(fast, config);
    return JSON.stringify(fast);
  }
  const payload = parsePayload(eventId, text);
  redact(payload, config);
  return stringify(payload);
}

function decodePayload(eventId, data) {
  try {
    return UTF8.decode(data);
  } catch (e) {
    throw invalidPayload(eventId, e);
  }
}

// Anything but JSON can never be redacted: an invalid event, not a transient failure.
function parsePayload(eventId, text) {
  try {
    return parse(text);
  } catch (e) {
    throw invalidPayload(eventId, e);
  }
}

function invalidPayload(eventId, error) {
  return new PluginError(
    'invalid-event',
    `event ${eventId}: data is not valid JSON: ${error.message}`,
  );
}

/**
 * Applies every removal, then every mask, in the order configured. Objects are
 * Maps (from ./json.js's `parse`) or plain objects (from `parseNative`).
 */
export function redact(payload, config) {
  for (const path of config.remove) remove(payload, path);
  for (const path of config.mask) mask(payload, path, config.keepLast);
}

// Deletes the field at `path`. Removing array elements shifts the ones after them,
// as deleting from a list does; `*` as the last segment empties the array.
function remove(root, path) {
  const segments = path.split('.');
  const last = segments.pop();
  forEachValue(root, segments, 0, (parent) => {
    if (Array.isArray(parent)) {
      if (last === '*') {
        parent.length = 0;
      } else {
        const i = index(last);
        if (i < parent.length) parent.splice(i, 1);
      }
    } else if (parent instanceof Map) {
      parent.delete(last);
    } else if (isPlainObject(parent) && Object.hasOwn(parent, last)) {
      delete parent[last];
    }
  });
}

function mask(root, path, keepLast) {
  const segments = path.split('.');
  const last = segments.pop();
  forEachValue(root, segments, 0, (parent) => {
    if (Array.isArray(parent)) {
      if (last === '*') {
        for (let i = 0; i < parent.length; i++) parent[i] = masked(parent[i], keepLast);
      } else {
        const i = index(last);
        if (i < parent.length) parent[i] = masked(parent[i], keepLast);
      }
    } else if (parent instanceof Map) {
      if (parent.has(last)) parent.set(last, masked(parent.get(last), keepLast));
    } else if (isPlainObject(parent) && Object.hasOwn(parent, last)) {
      const value = masked(parent[last], keepLast);
      if (last === '__proto__') {
        // Assigning would set the prototype instead of the field.
        Object.defineProperty(parent, last, { value, writable: true, enumerable: true });
      } else {
        parent[last] = value;
      }
    }
  });
}

// Calls `visit` with every value that `segments` (from `from` on) lead to from
// `value`: none, one, or one per element where a segment is `*`. Recursion rather
// than lists of intermediate values: this runs interpreted, once per element.
function forEachValue(value, segments, from, visit) {
  if (from === segments.length) {
    visit(value);
    return;
  }
  const segment = segments[from];
  if (Array.isArray(value)) {
    if (segment === '*') {
      for (const item of value) forEachValue(item, segments, from + 1, visit);
    } else {
      const i = index(segment);
      if (i < value.length) forEachValue(value[i], segments, from + 1, visit);
    }
  } else if (value instanceof Map) {
    if (value.has(segment)) forEachValue(value.get(segment), segments, from + 1, visit);
  } else if (isPlainObject(value) && Object.hasOwn(value, segment)) {
    // Own keys only: "toString" is not a field of every object.
    forEachValue(value[segment], segments, from + 1, visit);
  }
}

function isPlainObject(value) {
  return (
    value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype
  );
}

// The array index a segment names (ASCII digits only), or Infinity, which is past
// the end of every array, so that a segment that is no index is simply not found.
function index(segment) {
  return DIGITS.test(segment) ? Number(segment) : Infinity;
}

function masked(value, keepLast) {
  if (value === null) return null;
  if (typeof value === 'string') return maskText(value, keepLast);
  // A plain number from parseNative is written as the payload wrote it: otherwise
  // parseNative would have kept it as raw JSON, or not parsed the payload at all.
  if (typeof value === 'boolean' || typeof value === 'number') {
    return maskText(String(value), keepLast);
  }
  if (value instanceof JsonNumber) return maskText(value.text, keepLast);
  if (isRawJson(value)) return maskText(value.rawJSON, keepLast);
  return REDACTED;
}

/**
 * Replaces all but the last `keepLast` code points of `text` with `*`. A text no
 * longer than `keepLast` is hidden whole, or masking would reveal it entirely.
 */
export function maskText(text, keepLast) {
  // Code points, not UTF-16 units; only text with surrogate pairs needs splitting,
  // which is slow here.
  const chars = SURROGATE.test(text) ? Array.from(text) : text;
  const count = chars.length;
  if (count <= keepLast) return '*'.repeat(count);
  const kept = chars.slice(count - keepLast);
  return '*'.repeat(count - keepLast) + (Array.isArray(kept) ? kept.join('') : kept);
}
