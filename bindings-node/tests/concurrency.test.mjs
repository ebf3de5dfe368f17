// Many promises in flight on one store at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { open } from 'tierfs';

import { memoryConfig, tempDir } from './helpers.mjs';

const N = 1000;

async function hammer(store) {
  const value = (i) => `value-${i}-`.repeat((i % 7) + 1);
  const stats = await Promise.all(Array.from({ length: N }, (_, i) => store.put(`c/${i}`, value(i))));
  assert.equal(stats.length, N);
  stats.forEach((s, i) => assert.equal(s.size, Buffer.byteLength(value(i))));

  const values = await Promise.all(Array.from({ length: N }, (_, i) => store.get(`c/${i}`)));
  values.forEach((v, i) => assert.equal(v.toString(), value(i)));

  // Reads, writes, stats, listings and deletes interleaved.
  const mixed = await Promise.allSettled(
    Array.from({ length: N }, (_, i) => {
      switch (i % 5) {
        case 0:
          return store.get(`c/${i}`).then((v) => v.toString() === value(i));
        case 1:
          return store.put(`c/${i}`, 'rewritten').then(() => true);
        case 2:
          return store.stat(`c/${i}`).then((s) => s.size === Buffer.byteLength(value(i)));
        case 3:
          return store.delete(`c/${i}`).then(() => true);
        default:
          return store.exists(`missing/${i}`).then((e) => e === false);
      }
    }),
  );
  for (const r of mixed) {
    assert.equal(r.status, 'fulfilled', r.reason && r.reason.message);
    assert.equal(r.value, true);
  }
  let count = 0;
  for await (const e of store.list('c/', { recursive: true })) if (e.key) count++;
  assert.equal(count, N - N / 5);
  const rejected = await Promise.allSettled(Array.from({ length: N }, (_, i) => store.get(`gone/${i}`)));
  assert.ok(rejected.every((r) => r.status === 'rejected' && r.reason.code === 'ENOENT'));
}

test(`${N} concurrent promises on a memory store`, async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  await hammer(store);
});

test(`${N} concurrent promises on a local store`, async (t) => {
  const store = await open({ root: tempDir(t) });
  t.after(() => store.close());
  await hammer(store);
});

test('concurrent streams on one store keep every chunk in order', async (t) => {
  const store = await open({ config: memoryConfig });
  t.after(() => store.close());
  const size = 9 * 1024 * 1024 + 17;
  const CHUNK = 64 * 1024;
  // Chunk j of stream i is filled with its own byte, so a reordered chunk shows.
  const byteAt = (i, offset) => (i * 31 + Math.floor(offset / CHUNK)) & 0xff;
  await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const ws = store.createWriteStream(`streams/${i}`);
      for (let offset = 0; offset < size; offset += CHUNK) {
        const part = Buffer.alloc(Math.min(CHUNK, size - offset), byteAt(i, offset));
        if (!ws.write(part)) await new Promise((r) => ws.once('drain', r));
      }
      await new Promise((resolve, reject) => ws.on('error', reject).end(resolve));
    }),
  );
  const sums = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      let n = 0;
      for await (const c of store.createReadStream(`streams/${i}`)) {
        for (let k = 0; k < c.length; k += 4096) assert.equal(c[k], byteAt(i, n + k), `stream ${i} at ${n + k}`);
        n += c.length;
      }
      return n;
    }),
  );
  assert.deepEqual(sums, Array(8).fill(size));
});
