// Every error code, as Error objects with code, key and backend, async and sync.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';

import { open, registerBackend } from 'tierfs';

import { assertTierfsError, memoryConfig, rejectsWith, tempDir, throwsWith } from './helpers.mjs';

test('ENOENT: a missing key, async and sync', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  for (const call of [() => store.get('no/such'), () => store.stat('no/such'), () => store.getRange('no/such', 0, 1)]) {
    const err = await rejectsWith(call(), 'ENOENT', { key: 'no/such', backend: 'main' });
    assert.equal(err.kind, 'NotFound');
    assert.equal(err.errno, -2);
    assert.match(err.message, /no\/such/);
  }
  throwsWith(() => store.getSync('no/such'), 'ENOENT', { key: 'no/such', backend: 'main' });
  throwsWith(() => store.statSync('no/such'), 'ENOENT', { key: 'no/such' });
  const stream = store.createReadStream('no/such');
  const err = await new Promise((resolve) => stream.on('error', resolve));
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.key, 'no/such');
});

test('EINVAL: invalid keys, ranges, batch ops and configuration', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  for (const bad of ['', 'a//b', '/abs', 'a/../b', 'a/./b', 'nul\0byte', 'x'.repeat(256), 'trailing/']) {
    const err = await rejectsWith(store.put(bad, 'v'), 'EINVAL');
    assert.equal(err.kind, 'InvalidKey');
    assert.equal(err.key, bad);
    throwsWith(() => store.getSync(bad), 'EINVAL', { key: bad });
  }
  await rejectsWith(store.getRange('k', 5, 2), 'EINVAL');
  await rejectsWith(store.getRange('k', -1, 2), 'EINVAL');
  await rejectsWith(store.batch([{ op: 'rename', key: 'a' }]), 'EINVAL');
  await rejectsWith(store.batch([{ op: 'put', key: 'a//b', data: 'x' }]), 'EINVAL');
  await rejectsWith(store.addRule({ principal: 'bob', resource: 'a/', level: 'superuser' }), 'EINVAL');

  const cfg = await rejectsWith(open({ config: { backends: { main: { type: 'memory', colour: 'red' } } } }), 'EINVAL');
  assert.equal(cfg.kind, 'Config');
  assert.equal(cfg.key, undefined, 'absent context is undefined');
  assert.match(cfg.message, /unknown field `colour`/);
  const dir = tempDir(t);
  writeFileSync(`${dir}/bad.toml`, '[backends.main]\ntype = "nfs"\n');
  const file = await rejectsWith(open({ config: `${dir}/bad.toml` }), 'EINVAL');
  assert.match(file.message, /bad\.toml/);
  assert.match(file.message, /unknown backend type `nfs`/);
  await rejectsWith(open({ config: `${dir}/missing.toml` }), 'EINVAL');
  await rejectsWith(open({ config: memoryConfig, root: dir }), 'EINVAL');
});

test('EEXIST: conditional puts and duplicate names', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await store.put('once', 'first', { ifNotExists: true });
  await rejectsWith(store.put('once', 'second', { ifNotExists: true }), 'EEXIST', { key: 'once' });
  throwsWith(() => store.putSync('once', 'third', { ifNotExists: true }), 'EEXIST', { key: 'once' });
  assert.equal((await store.get('once')).toString(), 'first');
  await rejectsWith(store.addBackend('main', { type: 'memory' }), 'EEXIST');
  throwsWith(() => registerBackend('memory', { get() {}, put() {}, delete() {}, stat() {}, list() {} }), 'EEXIST');
});

test('EACCES: refused by the access policy, async and sync', async (t) => {
  const store = await open({
    config: {
      backends: { main: { type: 'memory' } },
      access: { default: 'none', rules: [{ principal: 'alice', resource: '*', level: 'full' }] },
    },
    principal: 'alice',
  });
  t.after(() => store.close());
  await store.put('secret', 'x');
  const bob = store.asPrincipal('bob');
  const err = await rejectsWith(bob.get('secret'), 'EACCES', { key: 'secret' });
  assert.equal(err.kind, 'PermissionDenied');
  throwsWith(() => bob.getSync('secret'), 'EACCES');
  throwsWith(() => bob.putSync('secret', 'y'), 'EACCES');
  await rejectsWith(bob.accessPolicy(), 'EACCES');
});

test('ENOTSUP: a batch across routes, and what a backend cannot do', async (t) => {
  const store = await open({
    config: {
      backends: { main: { type: 'memory' }, scratch: { type: 'memory' } },
      policy: { type: 'always_local', backend: 'main' },
      routes: [{ prefix: 'tmp/', backend: 'scratch' }],
    },
  });
  t.after(() => store.close());
  const err = await rejectsWith(
    store.batch([
      { op: 'put', key: 'a', data: 'x' },
      { op: 'put', key: 'tmp/b', data: 'y' },
    ]),
    'ENOTSUP',
  );
  assert.equal(err.kind, 'Unsupported');
  assert.equal(await store.exists('a'), false, 'nothing applied');
});

test('EIO: a closed store, and a backend failing at I/O', async (t) => {
  const store = await open({ config: memoryConfig });
  await store.close();
  const err = await rejectsWith(store.get('k'), 'EIO');
  assert.equal(err.kind, 'Unavailable');
  throwsWith(() => store.getSync('k'), 'EIO');

  registerBackend('errors-flaky', {
    async get() {
      throw new Error('disk on fire');
    },
    async put() {
      throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    },
    async delete() {},
    async stat() {
      throw Object.assign(new Error('gone'), { code: 'ENOENT' });
    },
    async list() {
      return [];
    },
  });
  const flaky = await open({
    config: { backends: { flaky: { type: 'errors-flaky' } }, health: { retries: 0 } },
  });
  // close() flushes first, and the backend, now marked unhealthy, refuses that with EIO too.
  t.after(() => flaky.close().catch((err) => assert.equal(err.code, 'EIO')));
  await rejectsWith(flaky.stat('k'), 'ENOENT', { key: 'k', backend: 'flaky' });
  const io = await rejectsWith(flaky.get('k'), 'EIO', { key: 'k', backend: 'flaky' });
  assert.match(io.message, /disk on fire/);
  assert.equal(io.operation, 'get');
  // The backend is now marked unhealthy: calls fail fast, still with EIO.
  const fast = await rejectsWith(flaky.put('k', 'v'), 'EIO', { key: 'k', backend: 'flaky' });
  assert.equal(fast.retryable, true);
});

/** A store on a fresh 8 MiB tmpfs, closed and unmounted after the test. */
async function storeOnSmallDisk(t) {
  if (process.getuid() !== 0) {
    assert.notEqual(process.env.CI, 'true', 'mounting a tmpfs needs root, which CI=true requires');
    t.skip('mounting a tmpfs needs root');
    return null;
  }
  const disk = mkdtempSync(join(tmpdir(), 'tierfs-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', disk]);
  const root = join(disk, 'store');
  const store = await open({ root }).catch((e) => {
    execFileSync('umount', [disk]);
    throw e;
  });
  // One hook, in order: close the store, unmount, remove the mount point.
  let reopened = null;
  t.after(async () => {
    await store.close();
    if (reopened) await reopened.close();
    execFileSync('umount', [disk]);
    rmSync(disk, { recursive: true });
  });
  return { store, reopen: async () => { await store.close(); reopened = await open({ root }); return reopened; } };
}

test('ENOSPC: a full device fails writes (put and streams) and the store keeps serving', async (t) => {
  const found = await storeOnSmallDisk(t);
  if (!found) return;
  const { store } = found;
  await store.put('small', 'kept');
  const err = await rejectsWith(store.put('big', Buffer.alloc(16 << 20, 1)), 'ENOSPC', { key: 'big' });
  assert.equal(err.kind, 'Unavailable');
  assert.equal(err.errno, -28);
  assert.match(err.message, /No space left/);
  const chunks = Array.from({ length: 16 }, () => Buffer.alloc(1 << 20, 2));
  await assert.rejects(pipeline(Readable.from(chunks), store.createWriteStream('streamed')), (e) => {
    assertTierfsError(e, 'ENOSPC', { key: 'streamed' });
    return true;
  });
  assert.equal(await store.exists('big'), false);
  assert.equal(await store.exists('streamed'), false);
  assert.equal((await store.get('small')).toString(), 'kept');
  await store.put('after', Buffer.alloc(4 << 20, 3));
});

test('ENOSPC: a database filled by small values recovers without reopening', async (t) => {
  const found = await storeOnSmallDisk(t);
  if (!found) return;
  const { store } = found;
  const value = Buffer.alloc(100_000, 7);
  const written = [];
  let failure = null;
  for (let i = 0; i < 200 && !failure; i++) {
    const key = `small/${String(i).padStart(3, '0')}`;
    try {
      await store.put(key, value);
      written.push(key);
    } catch (e) {
      failure = e;
    }
  }
  assert.ok(failure, '20 MB of small values fit an 8 MiB device');
  assertTierfsError(failure, 'ENOSPC', {});
  assert.ok(written.length > 10, `only ${written.length} values fit`);
  // Reads of what was acknowledged go on at once.
  for (const key of written) assert.ok((await store.get(key)).equals(value), key);
  // Deleting frees space; writes then work again, in the same store.
  for (const key of written.slice(0, written.length / 2)) await store.delete(key);
  await store.put('small/after', value);
  assert.ok((await store.get('small/after')).equals(value));
  const again = await found.reopen();
  for (const key of written.slice(Math.ceil(written.length / 2))) {
    assert.ok((await again.get(key)).equals(value), key);
  }
  assert.equal(await again.exists(written[0]), false);
});
