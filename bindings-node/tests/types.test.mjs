// The TypeScript declarations: `tsc --noEmit` over an example script that
// uses the whole API, with typescript and @types/node installed next to the
// package (the test stage's project installs both).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

test('the declarations type-check an example using the whole API (tsc --noEmit)', () => {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc');
  } catch {
    assert.fail('typescript is not installed next to the tests; run `npm install typescript @types/node`');
  }
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '-p', join(here, 'types', 'tsconfig.json')], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
});
