// createReadStream and createWriteStream: Node streams with backpressure,
// publishing on finish and discarding on destroy.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';

import { open } from 'tierfs';

import { memoryConfig, tempDir } from './helpers.mjs';

function pattern(size, seed = 1) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + seed) & 0xff;
  return buf;
}

for (const [name, options] of [
  ['memory', () => ({ config: memoryConfig })],
  ['local', (t) => ({ root: tempDir(t) })],
]) {
  test(`streams round-trip through pipeline (${name})`, async (t) => {
    const store = await open(options(t));
    t.after(() => store.close());
    const data = pattern(5 * 1024 * 1024 + 123);
    const out = store.createWriteStream('s/v', { metadata: { type: 'bin' } });
    assert.ok(out instanceof Writable);
    await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000, 2_000_000), data.subarray(2_000_000)]), out);
    assert.equal(out.stat.size, data.length);
    assert.deepEqual(out.stat.metadata, { type: 'bin' });

    const input = store.createReadStream('s/v');
    assert.ok(input instanceof Readable);
    const chunks = [];
    await pipeline(input, new Writable({ write(c, _e, cb) { chunks.push(c); cb(); } }));
    assert.ok(Buffer.concat(chunks).equals(data));

    const part = [];
    for await (const c of store.createReadStream('s/v', { start: 10, end: 3_000_000 })) part.push(c);
    assert.ok(Buffer.concat(part).equals(data.subarray(10, 3_000_000)));

    const empty = [];
    await pipeline(Readable.from([]), store.createWriteStream('s/empty'));
    for await (const c of store.createReadStream('s/empty')) empty.push(c);
    assert.equal(Buffer.concat(empty).length, 0);
    assert.equal((await store.stat('s/empty')).size, 0);
  });

  test(`nothing is visible before finish; destroy keeps the old value (${name})`, async (t) => {
    const store = await open(options(t));
    t.after(() => store.close());
    await store.put('w/k', 'old value');
    const ws = store.createWriteStream('w/k');
    ws.write(pattern(2 * 1024 * 1024));
    await new Promise((r) => setImmediate(r));
    assert.equal((await store.get('w/k')).toString(), 'old value', 'not visible while writing');
    const destroyed = new Promise((r) => ws.on('close', r));
    ws.on('error', (err) => assert.match(err.message, /changed my mind/));
    ws.destroy(new Error('changed my mind'));
    await destroyed;
    assert.equal((await store.get('w/k')).toString(), 'old value', 'destroy aborts');

    const failing = new Readable({
      read() {
        this.push(pattern(1 << 20));
        this.destroy(new Error('source failed'));
      },
    });
    await assert.rejects(pipeline(failing, store.createWriteStream('w/k')), /source failed/);
    assert.equal((await store.get('w/k')).toString(), 'old value', 'an error aborts');

    const ws2 = store.createWriteStream('w/k');
    ws2.end('new value');
    await new Promise((resolve, reject) => ws2.on('finish', resolve).on('error', reject));
    assert.equal((await store.get('w/k')).toString(), 'new value');
  });
}

test('a slow consumer holds the read stream back (backpressure)', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const size = 64 * 1024 * 1024;
  await pipeline(Readable.from((function* () { for (let i = 0; i < 64; i++) yield pattern(1 << 20, i); })()), store.createWriteStream('bp/v'));
  const rs = store.createReadStream('bp/v');
  await new Promise((r) => rs.once('readable', r));
  // Paused, the stream fills its buffer and stops: wait until it has not
  // grown for ten polls in a row (a stream without backpressure would go on
  // to the whole 64 MiB).
  let last = -1;
  for (let still = 0, polls = 0; still < 10 && polls < 500; polls++) {
    still = rs.readableLength === last ? still + 1 : 0;
    last = rs.readableLength;
    await new Promise((r) => setTimeout(r, 20));
  }
  // Paused, the stream buffers at most a couple of chunks, not the value.
  assert.ok(rs.readableLength <= 4 * 1024 * 1024, `buffered ${rs.readableLength} bytes`);
  const hash = createHash('sha256');
  let n = 0;
  for await (const c of rs) {
    hash.update(c);
    n += c.length;
  }
  assert.equal(n, size);
});

test('a write stream applies backpressure to its writer', async (t) => {
  const store = await open({ root: tempDir(t) });
  t.after(() => store.close());
  const ws = store.createWriteStream('bp/w', { highWaterMark: 256 * 1024 });
  let refused = 0;
  for (let i = 0; i < 64; i++) {
    if (!ws.write(pattern(128 * 1024, i))) {
      refused++;
      await new Promise((r) => ws.once('drain', r));
    }
  }
  await new Promise((resolve, reject) => ws.on('error', reject).end(resolve));
  assert.ok(refused > 0, 'write() returned false at the high-water mark');
  assert.equal((await store.stat('bp/w')).size, 64 * 128 * 1024);
});

test('ifNotExists on a write stream', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await store.put('once', 'x');
  const ws = store.createWriteStream('once', { ifNotExists: true });
  ws.end('y');
  const err = await new Promise((resolve) => ws.on('error', resolve));
  assert.equal(err.code, 'EEXIST');
  assert.equal((await store.get('once')).toString(), 'x');
});
