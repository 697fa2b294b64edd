// Builds the plugin into a WebAssembly component: node build.mjs OUT.wasm
//
// Uses componentize-js's JavaScript API; its command line (and `jco componentize`)
// could not read the WIT folder on Node 20.

import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The Weft plugin contract. This path works inside the Weft repository; in a
// project of your own, copy the repository's wit/ folder next to this file and
// point at 'wit/v0.1.0'.
const WIT = '../../../wit/v0.1.0';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}
const here = fileURLToPath(new URL('.', import.meta.url));

const { component } = await componentize({
  sourcePath: resolve(here, 'src/plugin.js'),
  witPath: resolve(here, WIT),
  worldName: 'transformer',
  // Weft gives plugins no files, sockets, clocks or randomness, so leave out the
  // engine features that need them: the component imports only the Weft contract.
  // The price: an exception that escapes an export traps without a message, which
  // is why plugin.js reports its errors as `plugin-error`s.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(resolve(out), component);
