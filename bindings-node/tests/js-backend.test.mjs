// A backend written in JavaScript, registered with registerBackend and
// named in configurations, under the core's policies, access control and audit.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';

import { backendTypes, open, registerBackend } from 'tierfs';

import { rejectsWith, throwsWith } from './helpers.mjs';

const notFound = (key) => Object.assign(new Error(`no key ${key}`), { code: 'ENOENT' });

/** A backend keeping values in a Map, counting the calls it gets. */
class MapBackend {
  constructor() {
    this.data = new Map();
    this.calls = [];
    this.conditionalPut = true;
  }

  async get(key) {
    this.calls.push(['get', key]);
    const e = this.data.get(key);
    if (!e) throw notFound(key);
    return e.value;
  }

  async put(key, value, { metadata, ifNotExists }) {
    this.calls.push(['put', key]);
    assert.ok(Buffer.isBuffer(value));
    if (ifNotExists && this.data.has(key)) throw Object.assign(new Error(`${key} exists`), { code: 'EEXIST' });
    const version = String((this.data.get(key)?.version ?? 0) + 1);
    this.data.set(key, { value: Buffer.from(value), metadata, modified: new Date(), version: Number(version) });
    return { size: value.length, version, metadata };
  }

  async delete(key) {
    this.calls.push(['delete', key]);
    this.data.delete(key);
  }

  async stat(key) {
    this.calls.push(['stat', key]);
    const e = this.data.get(key);
    if (!e) throw notFound(key);
    return { size: e.value.length, modified: e.modified, version: e.version, metadata: e.metadata };
  }

  list(prefix) {
    this.calls.push(['list', prefix]);
    // Deliberately unsorted, unbounded and ignoring `startAfter`: TierFS sorts, filters and pages.
    return [...this.data]
      .filter(([k]) => k.startsWith(prefix))
      .reverse()
      .map(([key, e]) => ({ key, size: e.value.length, modified: e.modified.getTime(), version: e.version }));
  }
}

class AtomicMapBackend extends MapBackend {
  async batch(ops) {
    this.calls.push(['batch', ops.length]);
    for (const op of ops) {
      if (op.op === 'put' && op.ifNotExists && this.data.has(op.key)) {
        throw Object.assign(new Error(`${op.key} exists`), { code: 'EEXIST' });
      }
    }
    for (const op of ops) {
      if (op.op === 'put') this.data.set(op.key, { value: op.data, metadata: op.metadata, modified: new Date(), version: 1 });
      else this.data.delete(op.key);
    }
  }

  async getRange(key, start, end) {
    this.calls.push(['getRange', key]);
    const e = this.data.get(key);
    if (!e) throw notFound(key);
    return e.value.subarray(start, end);
  }
}

const shared = new AtomicMapBackend();
registerBackend('jsmap', shared);

const factoryCalls = [];
registerBackend('jsfactory', (settings, { name }) => {
  factoryCalls.push({ settings, name });
  if (settings.bucket === 'forbidden') throw Object.assign(new Error('bucket `forbidden` is not allowed'), { code: 'EINVAL' });
  const b = new MapBackend();
  b.bucket = settings.bucket;
  return b;
});

test('registered types are listed and validated', () => {
  assert.ok(backendTypes().includes('jsmap'));
  assert.ok(backendTypes().includes('jsfactory'));
  throwsWith(() => registerBackend('jsmap', new MapBackend()), 'EEXIST');
  throwsWith(() => registerBackend('bad name', new MapBackend()), 'EINVAL');
  assert.throws(() => registerBackend('incomplete', { get() {} }), /lacks the method\(s\) put, delete, stat, list/);
});

test('a JavaScript backend serves the whole Store API', async (t) => {
  const store = await open({ config: { backends: { main: { type: 'jsmap' } } } });
  t.after(() => store.close());

  const stat = await store.put('js/a.txt', 'hello from js', { metadata: { m: '1' } });
  assert.equal(stat.size, 13);
  assert.equal(stat.version, '1');
  assert.equal((await store.get('js/a.txt')).toString(), 'hello from js');
  assert.equal((await store.getRange('js/a.txt', 6, 10)).toString(), 'from');
  assert.ok(shared.calls.some(([op]) => op === 'getRange'), 'getRange is used when the backend has it');
  const s = await store.stat('js/a.txt');
  assert.equal(s.size, 13);
  assert.deepEqual(s.metadata, { m: '1' });
  assert.ok(s.modified instanceof Date);
  assert.equal(await store.exists('js/none'), false);
  await rejectsWith(store.get('js/none'), 'ENOENT', { key: 'js/none', backend: 'main' });
  await rejectsWith(store.put('js/a.txt', 'x', { ifNotExists: true }), 'EEXIST', { key: 'js/a.txt' });

  for (const k of ['js/b', 'js/sub/c', 'js/sub/d', 'other']) await store.put(k, k);
  const children = [];
  for await (const e of store.list('js/')) children.push(`${e.kind}:${e.key}`);
  assert.deepEqual(children, ['object:js/a.txt', 'object:js/b', 'prefix:js/sub/']);
  const all = [];
  for await (const e of store.list('', { recursive: true, pageSize: 2 })) all.push(e.key);
  assert.deepEqual(all, ['js/a.txt', 'js/b', 'js/sub/c', 'js/sub/d', 'other']);

  await store.batch([
    { op: 'put', key: 'js/batch1', data: 'one' },
    { op: 'delete', key: 'js/b' },
  ]);
  assert.equal((await store.get('js/batch1')).toString(), 'one');
  assert.equal(await store.exists('js/b'), false);

  await store.rename('js/batch1', 'js/renamed');
  assert.equal((await store.get('js/renamed')).toString(), 'one');

  const data = Buffer.alloc(3 * 1024 * 1024, 7);
  await pipeline(Readable.from([data]), store.createWriteStream('js/streamed'));
  const back = [];
  for await (const c of store.createReadStream('js/streamed')) back.push(c);
  assert.ok(Buffer.concat(back).equals(data));

  await store.delete('js/a.txt');
  await store.delete('js/a.txt');
  assert.equal(shared.data.has('js/a.txt'), false);
  assert.equal(store.metrics().backends.main.put.count >= 5, true);
});

test('a factory gets each backend settings; a route mixes JavaScript and built-in backends', async (t) => {
  const store = await open({
    config: {
      backends: {
        main: { type: 'jsfactory', bucket: 'photos' },
        scratch: { type: 'memory' },
      },
      policy: { type: 'always_local', backend: 'main' },
      routes: [{ prefix: 'tmp/', backend: 'scratch' }],
    },
  });
  t.after(() => store.close());
  assert.deepEqual(factoryCalls.at(-1), { settings: { bucket: 'photos' }, name: 'main' });
  await store.put('tmp/x', 'memory');
  await store.put('keep/y', 'javascript');
  assert.equal(store.metrics().backends.scratch.put.count, 1);
  assert.equal(store.metrics().backends.main.put.count, 1);
  // No backend here talks to a remote store: no network traffic is reported.
  assert.deepEqual(store.metrics().traffic, {});
  // MapBackend without batch: a batch on it is refused, nothing applied.
  await rejectsWith(store.batch([{ op: 'put', key: 'keep/z', data: 'z' }]), 'ENOTSUP');
  await rejectsWith(store.get('keep/none'), 'ENOENT', { key: 'keep/none', backend: 'main' });

  await store.addBackend('more', { type: 'jsfactory', bucket: 'more' });
  assert.deepEqual(factoryCalls.at(-1), { settings: { bucket: 'more' }, name: 'more' });
  const err = await rejectsWith(store.addBackend('bad', { type: 'jsfactory', bucket: 'forbidden' }), 'EINVAL');
  assert.match(err.message, /bucket `forbidden` is not allowed/);
  await rejectsWith(open({ config: { backends: { main: { type: 'jsmap', extra: 1 } } } }), 'EINVAL');
});

test('access control and audit apply to JavaScript backends too', async (t) => {
  const backend = new AtomicMapBackend();
  registerBackend('jsaudited', backend);
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/tierfs-jsaudit-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const admin = await open({
    config: {
      backends: { main: { type: 'jsaudited' } },
      access: {
        default: 'none',
        rules: [
          { principal: 'admin', resource: '*', level: 'full' },
          { principal: 'admin', resource: 'pub/', level: 'full' },
          { principal: '*', resource: 'pub/', level: 'read' },
        ],
      },
      audit: { path: `${dir}/audit.log` },
    },
    principal: 'admin',
  });
  t.after(() => admin.close());
  await admin.put('pub/a', 'a');
  const eve = admin.asPrincipal('eve');
  assert.equal((await eve.get('pub/a')).toString(), 'a');
  const calls = backend.calls.length;
  await rejectsWith(eve.put('pub/a', 'evil'), 'EACCES');
  assert.equal(backend.calls.length, calls, 'a denied call never reaches the backend');
  const records = await admin.auditLog({ principal: 'eve' });
  assert.deepEqual(records.map((r) => r.result), ['allowed', 'denied']);
});

test('a sync call cannot reach a JavaScript backend on its own thread', async (t) => {
  const store = await open({ config: { backends: { main: { type: 'jsmap' } } } });
  t.after(() => store.close());
  await store.put('sync/a', 'x');
  const err = throwsWith(() => store.getSync('sync/a'), 'ENOTSUP');
  assert.match(err.message, /use the async method/);
  assert.equal((await store.get('sync/a')).toString(), 'x', 'the async path still works');
});

test('errors thrown by the backend keep their code; others read as EIO', async (t) => {
  registerBackend('jsbroken', {
    async get() {
      throw Object.assign(new Error('nope'), { code: 'EACCES' });
    },
    put() {
      throw new TypeError('synchronous throw');
    },
    async delete() {
      throw Object.assign(new Error('not here'), { code: 'ENOENT' });
    },
    async stat() {
      return { size: 'big' };
    },
    async list(prefix) {
      // The store lists its class index (`.tierfs-classes/`) once when it
      // opens: answered, so that the store opens and each method's failure shows.
      return prefix.startsWith('.tierfs-classes/') ? [] : 'not an array';
    },
    async getRange() {
      return 42;
    },
  });
  const store = await open({ config: { backends: { main: { type: 'jsbroken' } }, health: { retries: 0 } } });
  // close() flushes first, and an unhealthy backend refuses that with EIO too.
  t.after(() => store.close().catch((err) => assert.equal(err.code, 'EIO')));
  await rejectsWith(store.get('k'), 'EACCES', { key: 'k', backend: 'main' });
  await store.delete('k'); // ENOENT on delete is success
  // The first I/O failure marks the backend unhealthy; later calls fail fast, also with EIO.
  const put = await rejectsWith(store.put('k', 'v'), 'EIO', { key: 'k', backend: 'main' });
  assert.match(put.message, /synchronous throw/);
  await rejectsWith(store.stat('k'), 'EIO');
  await rejectsWith(store.getRange('k', 0, 1), 'EIO');
  await rejectsWith(store.list('').next(), 'EIO');

  // Each kind of unusable answer, on a fresh store.
  for (const [call, pattern] of [
    [(s) => s.stat('k'), /numeric `size`/],
    [(s) => s.getRange('k', 0, 1), /must resolve to a Buffer/],
    [(s) => s.list('').next(), /must resolve to an array/],
  ]) {
    const fresh = await open({ config: { backends: { main: { type: 'jsbroken' } }, health: { retries: 0 } } });
    const err = await rejectsWith(call(fresh), 'EIO', { backend: 'main' });
    assert.match(err.message, pattern);
    await fresh.close().catch((e) => assert.equal(e.code, 'EIO'));
  }
});
