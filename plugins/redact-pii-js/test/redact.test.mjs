// Runs the table of cases shared with the Rust and Python builds
// (../redact-pii/cases.json) against the pure redaction logic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ENGINE_KEEPS_NUMBER_TEXT, parse, parseNative, stringify } from '../src/json.js';
import { PluginError, maskText, redactEvent } from '../src/redact.js';
import { PLUGIN_INFO } from '../src/plugin-info.js';

const SHARED = new URL('../../redact-pii/', import.meta.url);
// Read with the plugin's own parser: JSON.parse would reorder numeric-looking keys
// and rewrite numbers, the very things the table checks.
const table = parse(readFileSync(new URL('cases.json', SHARED), 'utf8'));
const encoder = new TextEncoder();

function configJson(row) {
  if (row.has('config_text')) return row.get('config_text');
  return row.has('config') ? stringify(row.get('config')) : '{}';
}

function inputBytes(row) {
  if (row.has('input_text')) return encoder.encode(row.get('input_text'));
  if (row.has('input_bytes')) {
    return Uint8Array.from(row.get('input_bytes'), (byte) => Number(byte.text));
  }
  return encoder.encode(stringify(row.get('input')));
}

function checkError(error, expected) {
  assert.ok(error instanceof PluginError, `expected a PluginError, got ${error}`);
  assert.equal(error.payload.tag, expected.get('kind'));
  if (expected.has('message')) assert.equal(error.payload.val, expected.get('message'));
  if (expected.has('starts_with')) {
    const prefix = expected.get('starts_with');
    assert.ok(error.payload.val.startsWith(prefix), `${error.payload.val} starts with ${prefix}`);
  }
  return true;
}

// Every case runs through both parsers: the engine's, used when it loses nothing,
// and ./json.js's own.
for (const native of [true, false]) {
  for (const row of table.get('cases')) {
    test(`${row.get('name')} (${native ? 'JSON.parse' : 'own parser'})`, () => {
      const eventId = table.get('event_id');
      const run = () => redactEvent(eventId, inputBytes(row), configJson(row), { native });
      if (row.has('error')) {
        assert.throws(run, (error) => checkError(error, row.get('error')));
      } else {
        const expected = row.has('expected_text')
          ? row.get('expected_text')
          : stringify(row.get('expected'));
        assert.equal(run(), expected);
      }
    });
  }
}

test('the engine parses payloads whose text it writes back unchanged', () => {
  assert.deepEqual(parseNative('{"a":[1,2.5,"x"],"t":"2025-11-29T16:00:00+08:00"}'), {
    a: [1, 2.5, 'x'],
    t: '2025-11-29T16:00:00+08:00',
  });
  assert.deepEqual(parseNative('{"__proto__":1}'), JSON.parse('{"__proto__":1}'));
});

test('the own parser takes payloads the engine would reorder or accept wrongly', () => {
  const reordered = ['{"b":1,"10":2}', '{"\\u0031":1}'];
  const unchecked = ['{"a":"\\ud800"}', '['.repeat(128) + ']'.repeat(128), '{"a":'];
  for (const text of [...reordered, ...unchecked]) {
    assert.equal(parseNative(text), undefined, text);
  }
});

test('numbers JavaScript would rewrite keep their text, or go to the own parser', () => {
  for (const text of ['{"a":1.0}', '[1e+5]', '-0', '[12345678901234567890]']) {
    const value = parseNative(text);
    if (ENGINE_KEEPS_NUMBER_TEXT) {
      assert.equal(JSON.stringify(value), text);
    } else {
      assert.equal(value, undefined, text);
    }
  }
});

// The component's engine keeps number text (JSON.rawJSON); Node 20 does only behind
// a flag. Run this file again in such a Node, unless this one is.
const AGAIN = 'every case again where the engine keeps number text';
test(AGAIN, { skip: ENGINE_KEEPS_NUMBER_TEXT }, () => {
  // Without NODE_TEST_CONTEXT the child reports failures in its exit status instead
  // of to this test runner.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const file = fileURLToPath(import.meta.url);
  const run = spawnSync(process.execPath, ['--harmony-json-parse-with-source', file], {
    encoding: 'utf8',
    env,
  });
  assert.equal(run.status, 0, run.stdout + run.stderr);
});

test('masks by code point', () => {
  assert.equal(maskText('4111111111111111', 4), '************1111');
  assert.equal(maskText('😀😀😀abc', 4), '**😀abc');
  assert.equal(maskText('abc', 0), '***');
  assert.equal(maskText('', 4), '');
});

test('describe reports the canonical schema, serialised as the Rust build does', () => {
  const canonical = readFileSync(new URL('config.schema.json', SHARED), 'utf8');
  assert.equal(PLUGIN_INFO.configSchema, stringify(parse(canonical)));
  assert.equal(PLUGIN_INFO.name, 'redact-pii');
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));
  assert.equal(PLUGIN_INFO.version, manifest.version);
});
