// The component's entry point: the `transformer` world of weft:plugin@0.1.0.
//
// componentize-js maps the world onto this module: world-level exports are
// exported functions (`describe`, `transform`), records are objects with
// camelCase fields, the imported `host` interface is the module
// 'weft:plugin/host@0.1.0', and returning a value is the `ok` case of a `result`
// while throwing an error with a `payload` is its `err` case.

import { config } from 'weft:plugin/host@0.1.0';
import { PLUGIN_INFO } from './plugin-info.js';
import { PluginError, redactEvent } from './redact.js';

const encoder = new TextEncoder();

export function describe() {
  return PLUGIN_INFO;
}

export function transform(event) {
  try {
    const body = encoder.encode(redactEvent(event.id, event.data, config()));
    return [{ method: null, url: null, headers: [['content-type', 'application/json']], body }];
  } catch (e) {
    if (e instanceof PluginError) throw e;
    // A bug. Without this it would be an opaque trap: the component is built
    // without stdio, so nothing else would say what went wrong.
    throw new PluginError('internal', String(e));
  }
}
