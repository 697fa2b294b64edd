// Builds the redact-pii component: node build.mjs OUT.wasm
//
// Uses componentize-js's JavaScript API; its command line (and `jco componentize`)
// could not read the WIT folder on Node 20.

import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}
const outPath = resolve(out);
const here = fileURLToPath(new URL('.', import.meta.url));

const { component } = await componentize({
  sourcePath: resolve(here, 'src/redact-pii.js'),
  witPath: resolve(here, '../../wit/v0.1.0'),
  worldName: 'transformer',
  // Weft gives plugins no WASI capabilities beyond an empty context, and a plugin
  // that imports less links faster and can do less. Without stdio an uncaught
  // exception traps silently, which is why transform() turns bugs into
  // `internal` errors itself.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(outPath, component);
