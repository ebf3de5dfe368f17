// The Store API, async and sync, from ESM and CommonJS.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import tierfsDefault, { open, Store, backendTypes } from 'tierfs';

import { assertTierfsError, memoryConfig, rejectsWith, tempDir } from './helpers.mjs';

const require = createRequire(import.meta.url);

test('ESM and CommonJS entries are the same module', () => {
  const cjs = require('tierfs');
  assert.equal(cjs.open, open);
  assert.equal(cjs.Store, Store);
  assert.equal(tierfsDefault.open, open);
  assert.deepEqual(backendTypes().filter((t) => t === 'local' || t === 'memory'), ['local', 'memory']);
});

test('put, get, getRange, stat, exists, delete', async (t) => {
  const store = await open({ config: memoryConfig, principal: 'alice' });
  t.after(() => store.close());
  assert.ok(store instanceof Store);
  assert.equal(store.principal, 'alice');

  const stat = await store.put('docs/a.txt', 'hello world', { metadata: { lang: 'en' } });
  assert.equal(stat.key, 'docs/a.txt');
  assert.equal(stat.size, 11);
  assert.ok(stat.modified instanceof Date);
  assert.equal(typeof stat.version, 'string');
  assert.deepEqual(stat.metadata, { lang: 'en' });

  const value = await store.get('docs/a.txt');
  assert.ok(Buffer.isBuffer(value));
  assert.equal(value.toString(), 'hello world');
  assert.equal((await store.getRange('docs/a.txt', 6, 11)).toString(), 'world');
  assert.equal((await store.getRange('docs/a.txt', 6)).toString(), 'world');
  assert.equal((await store.getRange('docs/a.txt', 6, 1000)).toString(), 'world', 'clamped to the size');
  assert.equal((await store.getRange('docs/a.txt', 50, 60)).length, 0);

  const s = await store.stat('docs/a.txt');
  assert.equal(s.size, 11);
  assert.deepEqual(s.metadata, { lang: 'en' });
  assert.equal(s.version, stat.version);
  assert.equal(await store.exists('docs/a.txt'), true);
  assert.equal(await store.exists('docs/b.txt'), false);

  const again = await store.put('docs/a.txt', 'changed');
  assert.notEqual(again.version, stat.version);
  assert.deepEqual(again.metadata, {}, 'put replaces the metadata whole');

  await store.delete('docs/a.txt');
  assert.equal(await store.exists('docs/a.txt'), false);
  await store.delete('docs/a.txt'); // deleting a missing key succeeds
});

test('put takes Buffers, typed arrays, ArrayBuffers and strings, and copies them', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const buf = Buffer.from('abc');
  await store.put('k/buffer', buf);
  buf.fill(0x7a); // the stored value is a copy
  assert.equal((await store.get('k/buffer')).toString(), 'abc');

  const big = Buffer.alloc(1 << 20, 1); // copied off the JavaScript thread
  await store.put('k/big', big);
  big.fill(2);
  assert.ok((await store.get('k/big')).every((b) => b === 1));

  const bytes = new Uint8Array([0, 1, 2, 3, 4, 5]).subarray(2, 5);
  await store.put('k/u8', bytes);
  assert.deepEqual([...(await store.get('k/u8'))], [2, 3, 4]);
  await store.put('k/ab', new Uint16Array([0x0102]).buffer);
  assert.equal((await store.get('k/ab')).length, 2);
  await store.put('k/str', 'héllo');
  assert.equal((await store.get('k/str')).toString('utf8'), 'héllo');
  await store.put('k/empty', '');
  assert.equal((await store.get('k/empty')).length, 0);

  const got = await store.get('k/str');
  got.fill(0); // a returned buffer belongs to the caller
  assert.equal((await store.get('k/str')).toString('utf8'), 'héllo');

  await assert.rejects(store.put('k/x', 42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(store.get(7), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
});

test('list streams children and subtrees page by page', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  for (const k of ['a/1', 'a/2', 'a/sub/3', 'a/sub/deep/4', 'b']) await store.put(k, k);

  const children = [];
  for await (const e of store.list('a/')) children.push(`${e.kind}:${e.key}`);
  assert.deepEqual(children, ['object:a/1', 'object:a/2', 'prefix:a/sub/']);

  const tree = [];
  for await (const e of store.list('a/', { recursive: true })) tree.push(e.key);
  assert.deepEqual(tree, ['a/1', 'a/2', 'a/sub/3', 'a/sub/deep/4']);

  const top = [];
  for await (const e of store.list()) top.push(e.key);
  assert.deepEqual(top, ['a/', 'b']);

  for (let i = 0; i < 250; i++) await store.put(`many/${String(i).padStart(3, '0')}`, 'x');
  const keys = [];
  for await (const e of store.list('many/', { pageSize: 7 })) {
    assert.equal(e.kind, 'object');
    assert.equal(e.size, 1);
    assert.ok(e.modified instanceof Date);
    keys.push(e.key);
  }
  assert.equal(keys.length, 250);
  assert.deepEqual(keys, [...keys].sort());

  // Breaking out of the loop early is fine.
  let seen = 0;
  for await (const e of store.list('many/', { pageSize: 10 })) {
    assert.ok(e.key);
    if (++seen === 3) break;
  }
  assert.equal(seen, 3);
});

test('batch applies every operation or none', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await store.put('b/old', 'old');
  await store.batch([
    { op: 'put', key: 'b/1', data: 'one', metadata: { n: '1' } },
    { op: 'put', key: 'b/2', data: Buffer.from('two') },
    { op: 'delete', key: 'b/old' },
  ]);
  assert.equal((await store.get('b/1')).toString(), 'one');
  assert.deepEqual((await store.stat('b/1')).metadata, { n: '1' });
  assert.equal(await store.exists('b/old'), false);

  await assert.rejects(
    store.batch([
      { op: 'put', key: 'b/3', data: 'three' },
      { op: 'put', key: 'b/1', data: 'again', ifNotExists: true },
    ]),
    { code: 'EEXIST' },
  );
  assert.equal(await store.exists('b/3'), false, 'nothing of a failed batch is applied');
  await store.batch([]);
});

test('rename moves value and metadata', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await store.put('r/from', 'v', { metadata: { m: 'x' } });
  await store.rename('r/from', 'r/to');
  assert.equal(await store.exists('r/from'), false);
  assert.equal((await store.get('r/to')).toString(), 'v');
  assert.deepEqual((await store.stat('r/to')).metadata, { m: 'x' });
});

test('setMetadata changes the map and keeps the value', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const put = await store.put('m/a', 'value', { metadata: { owner: 'alice', draft: '1' } });
  const s = await store.setMetadata('m/a', { set: { owner: 'bob' }, remove: ['draft'], ifVersion: put.version });
  assert.deepEqual([s.size, s.metadata], [5, { owner: 'bob' }]);
  assert.deepEqual((await store.stat('m/a')).metadata, { owner: 'bob' });
  assert.equal((await store.get('m/a')).toString(), 'value');
  assert.deepEqual((await store.setMetadata('m/a', { set: { x: 'y' }, replace: true })).metadata, { x: 'y' });
  const stale = await rejectsWith(store.setMetadata('m/a', { set: { late: '1' }, ifVersion: put.version }), 'ESTALE');
  assert.equal(stale.kind, 'Conflict');
  assert.equal(stale.key, 'm/a');
  await rejectsWith(store.setMetadata('m/missing', { set: { a: 'b' } }), 'ENOENT');
  await assert.rejects(store.setMetadata('m/a', { set: { a: 1 } }), TypeError);
  await assert.rejects(store.setMetadata('m/a', { remove: 'draft' }), TypeError);
});

test('writeRange and patch change part of a value', async (t) => {
  const local = { backends: { main: { type: 'local', path: tempDir(t) } } };
  for (const config of [memoryConfig, local]) {
    const store = await open({ config });
    t.after(() => store.close());
    await store.put('p/log', 'hello world');
    assert.equal((await store.writeRange('p/log', 6, 'there')).size, 11);
    assert.equal((await store.writeRange('p/log', 14, new Uint8Array([33]))).size, 15);
    assert.equal((await store.get('p/log')).toString('latin1'), 'hello there\0\0\0!');
    const big = Buffer.alloc(1 << 20, 7);
    const put = await store.put('p/db', big);
    const s = await store.patch('p/db', {
      writes: [[4096, Buffer.alloc(4096, 1)], [big.length, 'tail']],
      metadata: { v: '2' },
      ifVersion: put.version,
    });
    assert.deepEqual([s.size, s.metadata], [big.length + 4, { v: '2' }]);
    const got = await store.get('p/db');
    assert.ok(got.subarray(4096, 8192).equals(Buffer.alloc(4096, 1)));
    assert.ok(got.subarray(8192, big.length).equals(big.subarray(8192)));
    assert.equal(got.subarray(big.length).toString(), 'tail');
    assert.equal((await store.patch('p/db', { length: 3 })).size, 3);
    assert.ok((await store.get('p/db')).equals(Buffer.from([7, 7, 7])));
    await rejectsWith(store.patch('p/db', { writes: [[0, 'x']], ifVersion: put.version }), 'ESTALE');
    await rejectsWith(store.writeRange('p/missing', 0, 'x'), 'ENOENT');
    await assert.rejects(store.writeRange('p/db', -1, 'x'), RangeError);
    await assert.rejects(store.patch('p/db', { writes: [['0', 'x']] }), RangeError);
    await assert.rejects(store.patch('p/db', { writes: [[0]] }), TypeError);
    assert.ok((await store.get('p/db')).equals(Buffer.from([7, 7, 7])));
  }
});

test('sync twins', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const stat = store.putSync('s/a', 'sync value', { metadata: { k: 'v' } });
  assert.equal(stat.size, 10);
  assert.equal(store.getSync('s/a').toString(), 'sync value');
  assert.equal(store.statSync('s/a').size, 10);
  assert.deepEqual(store.statSync('s/a').metadata, { k: 'v' });
  assert.equal(store.existsSync('s/a'), true);
  store.putSync('s/d/b', new Uint8Array([1]));
  assert.deepEqual(
    store.listSync('s/').map((e) => `${e.kind}:${e.key}`),
    ['object:s/a', 'prefix:s/d/'],
  );
  assert.deepEqual(
    store.listSync('s/', { recursive: true }).map((e) => e.key),
    ['s/a', 's/d/b'],
  );
  store.deleteSync('s/a');
  assert.equal(store.existsSync('s/a'), false);
  assert.equal(await store.exists('s/d/b'), true, 'sync and async calls see the same store');
});

test('the embedded default store persists in its root across close and reopen', async (t) => {
  const root = tempDir(t);
  const store = await open({ root });
  await store.put('notes/today.txt', 'persisted');
  await store.close();
  await store.close(); // closing twice is harmless

  const again = await open({ root });
  t.after(() => again.close());
  assert.equal((await again.get('notes/today.txt')).toString(), 'persisted');
});

test('a configuration file routes prefixes to backends', async (t) => {
  const dir = tempDir(t);
  const { writeFileSync } = await import('node:fs');
  const file = `${dir}/tierfs.toml`;
  writeFileSync(
    file,
    `[backends.main]\ntype = "local"\npath = "data"\n\n[backends.scratch]\ntype = "memory"\n\n` +
      `[policy]\ntype = "always_local"\nbackend = "main"\n\n[[routes]]\nprefix = "tmp/"\nbackend = "scratch"\n`,
  );
  const store = await open({ config: file });
  t.after(() => store.close());
  await store.put('tmp/x', 'scratch');
  await store.put('keep/y', 'kept');
  const m = store.metrics();
  assert.equal(m.backends.scratch.put.count, 1);
  assert.equal(m.backends.main.put.count, 1);
  assert.equal(store.explain('read', 'tmp/x').route.backends[0], 'scratch');
  assert.match(store.metricsPrometheus(), /tierfs_operations_total\{backend="scratch",op="put"\} 1/);
});

test('backends are added and removed at run time', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const dir = tempDir(t);
  await store.addBackend('archive', { type: 'local', path: dir });
  await store.addBackend('scratch', { type: 'memory' });
  await assert.rejects(store.addBackend('scratch', { type: 'memory' }), { code: 'EEXIST' });
  await store.removeBackend('scratch');
  await assert.rejects(store.removeBackend('scratch'), { code: 'ENOENT' });
  await assert.rejects(store.addBackend('bad', { type: 'nfs' }), (err) => {
    assert.equal(err.code, 'EINVAL');
    assert.match(err.message, /registered types are: .*local.*memory/);
    return true;
  });
});

test('explicit resource management closes the store', async () => {
  const store = await open({ config: memoryConfig });
  if (typeof Symbol.asyncDispose === 'symbol') {
    await store[Symbol.asyncDispose]();
    await assert.rejects(store.get('x'), { code: 'EIO' });
  } else {
    await store.close();
  }
});

test('values in process memory are answered in place, like any other call', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await store.put('k', 'v');
  // An answer found at once still settles the promise after this turn.
  let settled = false;
  const pending = store.get('k').then((v) => {
    settled = true;
    return v.toString();
  });
  assert.equal(settled, false);
  assert.equal(await pending, 'v');
  // The same errors as the runtime path, with key and backend.
  await rejectsWith(store.get('missing'), 'ENOENT', { key: 'missing', backend: 'main' });
  await rejectsWith(store.put('k', 'w', { ifNotExists: true }), 'EEXIST', { key: 'k', backend: 'main' });
  assert.equal((await store.get('k')).toString(), 'v');
  // Counted as every call is.
  const gets = store.metrics().backends.main.get;
  assert.equal(gets.count, 3);
  assert.equal(gets.errors, 1);
});

test('a sharded store spreads keys and explains their owners', async (t) => {
  const dir = tempDir(t);
  const backends = {};
  for (const d of ['d0', 'd1', 'd2']) backends[d] = { type: 'local', path: `${dir}/${d}` };
  const store = await open({ config: { backends, policy: { type: 'sharded', backends: ['d0', 'd1', 'd2'] } } });
  t.after(() => store.close());
  for (let i = 0; i < 30; i++) await store.put(`k/${i}`, String(i));
  for (let i = 0; i < 30; i++) assert.equal((await store.get(`k/${i}`)).toString(), String(i));
  const owners = new Set();
  for (let i = 0; i < 30; i++) owners.add(store.explain('read', `k/${i}`).placement.split(' ')[2]);
  assert.deepEqual([...owners].sort(), ['d0', 'd1', 'd2']);
});

/** A store from a configuration file: `local` (the default route), `ram` (memory) and class `fast` on `nvme`. */
async function classedStore(t) {
  const dir = tempDir(t);
  const { writeFileSync } = await import('node:fs');
  const file = `${dir}/tierfs.toml`;
  writeFileSync(
    file,
    `[backends.local]\ntype = "local"\npath = "data"\n\n[backends.ram]\ntype = "memory"\n\n` +
      `[backends.nvme]\ntype = "local"\npath = "fast"\n\n` +
      `[policy]\ntype = "always_local"\nbackend = "local"\n\n[classes.fast]\nbackend = "nvme"\n`,
  );
  const store = await open({ config: file });
  t.after(() => store.close());
  return store;
}

/** Waits until the data of `key` has stopped moving, and returns its class. */
async function settledClass(store, key) {
  for (let i = 0; i < 500; i++) {
    const info = await store.storageClass(key);
    if (!info.moving) return info;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`${key} is still moving after 10 s`);
}

test('storage classes: put and setStorageClass keep a key in a class, later writes keep it', async (t) => {
  const store = await classedStore(t);
  assert.deepEqual(await store.storageClass('tmp/a'), {
    storageClass: null,
    inheritedFrom: null,
    backends: ['local'],
    moving: false,
  });

  const stat = await store.put('tmp/a', 'short-lived', { storageClass: 'cache_only' });
  assert.equal(stat.size, 11);
  assert.deepEqual(await store.storageClass('tmp/a'), {
    storageClass: 'cache_only',
    inheritedFrom: null,
    backends: ['ram'],
    moving: false,
  });
  assert.equal(store.metrics().backends.ram.put.count, 1);

  // A write naming no class keeps the key's.
  await store.put('tmp/a', 'rewritten', { metadata: { n: '2' } });
  const info = await store.storageClass('tmp/a');
  assert.equal(info.storageClass, 'cache_only');
  assert.deepEqual(info.backends, ['ram']);
  assert.equal((await store.get('tmp/a')).toString(), 'rewritten');
  assert.equal(store.metrics().backends.ram.put.count, 2);
  // So does the sync twin, and it can name a class too.
  store.putSync('tmp/a', 'sync');
  assert.equal((await store.storageClass('tmp/a')).storageClass, 'cache_only');
  store.putSync('tmp/b', 'sync', { storageClass: 'fast' });
  assert.deepEqual((await store.storageClass('tmp/b')).backends, ['nvme']);
  // stat and statSync report the class and where the key is.
  const b = await store.stat('tmp/b');
  assert.equal(b.storageClass, 'fast');
  assert.deepEqual(b.backends, ['nvme']);
  assert.deepEqual(
    [store.statSync('tmp/a').storageClass, store.statSync('tmp/a').backends],
    ['cache_only', ['ram']],
  );

  // Taking the class off moves the value back to its route, in the background.
  await store.setStorageClass('tmp/a', null);
  const back = await settledClass(store, 'tmp/a');
  assert.deepEqual(back, { storageClass: null, inheritedFrom: null, backends: ['local'], moving: false });
  assert.equal((await store.get('tmp/a')).toString(), 'sync');
  assert.deepEqual((await store.stat('tmp/a')).metadata, {});

  // A key need not exist to be given a class; its first write lands there.
  await store.setStorageClass('tmp/c', 'fast');
  assert.equal((await store.storageClass('tmp/c')).storageClass, 'fast');
  await store.put('tmp/c', 'c');
  assert.equal(store.metrics().backends.nvme.put.count, 2);
  await store.setStorageClass('tmp/c', 'cache_only');
  assert.deepEqual((await settledClass(store, 'tmp/c')).backends, ['ram']);
  assert.equal((await store.get('tmp/c')).toString(), 'c');
});

test('storage classes: setPrefixClass and prefixClass', async (t) => {
  const store = await classedStore(t);
  assert.equal(store.prefixClass('logs/'), null);
  await store.put('logs/old.log', 'before');
  await store.setPrefixClass('logs/', 'fast');
  assert.equal(store.prefixClass('logs/'), 'fast');
  assert.equal(store.prefixClass('logs/2026/'), 'fast', 'inherited by deeper prefixes');
  assert.equal(store.prefixClass('other/'), null);

  await store.put('logs/app.log', 'started\n');
  // `moving` holds for every key below while the prefix's keys move.
  assert.deepEqual(await settledClass(store, 'logs/app.log'), {
    storageClass: 'fast',
    inheritedFrom: 'logs/',
    backends: ['nvme'],
    moving: false,
  });
  assert.match(store.explain('read', 'logs/app.log').storageClass, /`fast` \(inherited from `logs\/`\): on nvme/);
  assert.equal(store.explain('read', 'other/x').storageClass, null);
  await store.put('logs/2026/jan.log', 'jan');
  assert.equal((await store.storageClass('logs/2026/jan.log')).inheritedFrom, 'logs/');
  // A key existing before moves there too, and stays readable.
  const old = await settledClass(store, 'logs/old.log');
  assert.deepEqual([old.storageClass, old.inheritedFrom, old.backends], ['fast', 'logs/', ['nvme']]);
  assert.equal((await store.get('logs/old.log')).toString(), 'before');
  // A key's own class wins over its prefix's.
  await store.put('logs/tmp.log', 'x', { storageClass: 'cache_only' });
  const own = await store.storageClass('logs/tmp.log');
  assert.deepEqual([own.storageClass, own.inheritedFrom, own.backends], ['cache_only', null, ['ram']]);
  const keys = [];
  for await (const e of store.list('logs/', { recursive: true })) keys.push(e.key);
  assert.deepEqual(keys, ['logs/2026/jan.log', 'logs/app.log', 'logs/old.log', 'logs/tmp.log']);

  await store.setPrefixClass('logs/', null);
  assert.equal(store.prefixClass('logs/'), null);
  await rejectsWith(store.setPrefixClass('logs', 'fast'), 'EINVAL');
  await rejectsWith(store.setPrefixClass('x/', 'nope'), 'EINVAL');
  await rejectsWith(store.setPrefixClass('x/', 'distributed'), 'ENOTSUP');
  assert.equal(store.prefixClass('x/'), null);
});

test('storage classes: an unknown or unavailable class is refused before anything is written', async (t) => {
  const store = await classedStore(t);
  await rejectsWith(store.put('bad/unknown', 'x', { storageClass: 'nope' }), 'EINVAL');
  await rejectsWith(store.get('bad/unknown'), 'ENOENT');
  // `distributed` needs a durable backend shared with other hosts (s3): none here.
  await rejectsWith(store.put('bad/dist', 'x', { storageClass: 'distributed' }), 'ENOTSUP');
  await rejectsWith(store.put('bad/big', Buffer.alloc(1 << 20), { storageClass: 'distributed' }), 'ENOTSUP');
  await rejectsWith(store.get('bad/dist'), 'ENOENT');
  await rejectsWith(store.get('bad/big'), 'ENOENT');
  assert.equal((await store.storageClass('bad/dist')).storageClass, null, 'no class recorded either');
  assert.throws(() => store.putSync('bad/sync', 'x', { storageClass: 'distributed' }), { code: 'ENOTSUP' });
  assert.equal(await store.exists('bad/sync'), false);
  await rejectsWith(store.setStorageClass('bad/dist', 'distributed'), 'ENOTSUP');
  await rejectsWith(store.setStorageClass('bad/dist', 'nope'), 'EINVAL');

  // Wrong types are programmer errors.
  const typeErr = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
  await assert.rejects(store.put('bad/t', 'x', { storageClass: 42 }), typeErr);
  assert.throws(() => store.putSync('bad/t', 'x', { storageClass: ['fast'] }), typeErr);
  assert.throws(() => store.createWriteStream('bad/t', { storageClass: {} }), typeErr);
  await assert.rejects(store.setStorageClass('bad/t', 7), typeErr);
  await assert.rejects(store.setStorageClass('bad/t'), typeErr, 'null, not undefined, takes a class off');
  await assert.rejects(store.setPrefixClass('bad/', false), typeErr);
  await assert.rejects(store.storageClass(1), typeErr);
  assert.throws(() => store.prefixClass(null), typeErr);
  assert.equal(await store.exists('bad/t'), false);
});

test('storage classes: a write stream names a class', async (t) => {
  const { pipeline } = await import('node:stream/promises');
  const { Readable } = await import('node:stream');
  const store = await classedStore(t);
  const chunks = [Buffer.alloc(300 * 1024, 1), Buffer.alloc(900 * 1024, 2)];
  const out = store.createWriteStream('streams/s.bin', { storageClass: 'cache_only', metadata: { m: '1' } });
  await pipeline(Readable.from(chunks), out);
  assert.equal(out.stat.size, 1200 * 1024);
  assert.deepEqual(await store.storageClass('streams/s.bin'), {
    storageClass: 'cache_only',
    inheritedFrom: null,
    backends: ['ram'],
    moving: false,
  });
  assert.ok((await store.get('streams/s.bin')).equals(Buffer.concat(chunks)));

  // A class nobody provides fails the stream, and nothing is written.
  const refused = store.createWriteStream('streams/d.bin', { storageClass: 'distributed' });
  const err = await pipeline(Readable.from([Buffer.from('x')]), refused).then(
    () => assert.fail('the stream should fail'),
    (e) => e,
  );
  assertTierfsError(err, 'ENOTSUP');
  await rejectsWith(store.get('streams/d.bin'), 'ENOENT');
});

test('quotas: a write past one rejects with EDQUOT and writes nothing; explain shows the usage', async (t) => {
  const dir = tempDir(t);
  const { writeFileSync } = await import('node:fs');
  const file = `${dir}/tierfs.toml`;
  writeFileSync(
    file,
    `[backends.local]\ntype = "local"\npath = "data"\n\n` +
      `[[quotas]]\nprefix = "q/"\nmax_bytes = 100\nmax_keys = 2\n`,
  );
  const store = await open({ config: file });
  t.after(() => store.close());
  await store.put('q/a', Buffer.alloc(60));
  await rejectsWith(store.put('q/b', Buffer.alloc(50)), 'EDQUOT');
  await rejectsWith(store.stat('q/b'), 'ENOENT');
  await store.put('q/b', Buffer.alloc(40));
  await rejectsWith(store.put('q/c', 'x'), 'EDQUOT');
  await store.put('elsewhere', Buffer.alloc(500));
  assert.deepEqual(store.explain('write', 'q/c').quota, {
    prefix: 'q/',
    maxBytes: 100,
    maxKeys: 2,
    usedBytes: 100,
    usedKeys: 2,
  });
  assert.equal(store.explain('write', 'elsewhere').quota, null);
});
