// A Weft transform that wraps each event's payload in an envelope saying which
// event it is:
//
//   {"event": "sales_order.created", "id": "evt_2KqJ7vT9mWcXbR4sLpN8dFh3Ya", "data": {"order": {}}}
//
// Start your own plugin from here: rename it in package.json and describe(), then
// change transform().
//
// componentize-js maps the `transformer` world of weft:plugin@0.1.0 onto this
// module:
// - the world's exports are the module's exported functions, `describe` and
//   `transform`;
// - records are plain objects with camelCase fields (`event.eventType`,
//   `event.data` is a Uint8Array, `event.occurredAt` a BigInt); an `option` is a
//   value or null;
// - returning a value is the `ok` case of a `result`; throwing an error whose
//   `payload` is a `plugin-error`, `{ tag: 'invalid-event', val: 'why' }`, is its
//   `err` case (see `pluginError` below);
// - the host's functions are imported from 'weft:plugin/host@0.1.0':
//     import { config, log } from 'weft:plugin/host@0.1.0';
//     const settings = JSON.parse(config());
//     log('info', 'wrapped the payload');

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export function describe() {
  return {
    name: 'envelope',
    version: '0.1.0',
    description: "Wraps the payload with the event's type and id",
    // A JSON Schema for the plugin's configuration; {} accepts any (none is used).
    configSchema: '{}',
  };
}

export function transform(event) {
  const data = payloadJson(event);
  // The payload goes in as published, not through JSON.stringify(JSON.parse(...)),
  // which would rewrite some numbers (1450.0 becomes 1450) and move keys that look
  // like integers to the front. To reshape a payload, parse it and build the body
  // you need with JSON.stringify.
  const type = JSON.stringify(event.eventType);
  const id = JSON.stringify(event.id);
  const body = `{"event":${type},"id":${id},"data":${data}}`;
  return [
    {
      method: null, // the endpoint's method (POST unless configured otherwise)
      url: null, // the endpoint's URL
      headers: [['content-type', 'application/json']],
      body: encoder.encode(body),
    },
  ];
}

// The payload's JSON text. A payload that is not JSON fails as an invalid event:
// Weft dead-letters it instead of retrying something that can never succeed.
function payloadJson(event) {
  try {
    const text = decoder.decode(event.data);
    JSON.parse(text);
    return text.trim();
  } catch (e) {
    throw pluginError('invalid-event', `${event.eventType} payload of ${event.id}: ${e.message}`);
  }
}

function pluginError(tag, message) {
  return Object.assign(new Error(message), { payload: { tag, val: message } });
}
