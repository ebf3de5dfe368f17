// Shared helpers of the tierfs package tests (not a test file itself).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory, removed when the test ends. */
export function tempDir(t, name = 'tierfs-test-') {
  const dir = mkdtempSync(join(tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A configuration object with one memory backend named `main`. */
export const memoryConfig = { backends: { main: { type: 'memory' } } };

/** Asserts that `err` is a TierFS error with `code`, and returns it. */
export function assertTierfsError(err, code, { key, backend } = {}) {
  assert.ok(err instanceof Error, `expected an Error, got ${err}`);
  assert.equal(err.code, code, `code of: ${err.message}`);
  assert.ok(err.message.startsWith(`${code}: `), err.message);
  assert.equal(typeof err.errno, 'number');
  assert.ok(err.errno < 0);
  assert.equal(typeof err.kind, 'string');
  assert.equal(typeof err.retryable, 'boolean');
  if (key !== undefined) assert.equal(err.key, key);
  if (backend !== undefined) assert.equal(err.backend, backend);
  return err;
}

/** Awaits `promise`, which must reject with a TierFS error of `code`. */
export async function rejectsWith(promise, code, context) {
  let caught;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a rejection with ${code}`);
  return assertTierfsError(caught, code, context);
}

/** Calls `fn`, which must throw a TierFS error of `code`. */
export function throwsWith(fn, code, context) {
  let caught;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a throw with ${code}`);
  return assertTierfsError(caught, code, context);
}
