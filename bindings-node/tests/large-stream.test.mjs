// A 1 GiB value streamed in and out of a local store in bounded memory.
// Runs in its own process (node --test isolates files), so maxRSS is this test's.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';

import { open } from 'tierfs';

import { tempDir } from './helpers.mjs';

const GIB = 1024 * 1024 * 1024;
const CHUNK = 256 * 1024;
const LIMIT_MIB = 300;

function rssMiB() {
  return process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
}

/** 1 GiB of deterministic bytes, generated chunk by chunk. */
function source(hash) {
  let produced = 0;
  const block = Buffer.alloc(CHUNK);
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (produced >= GIB) {
        this.push(null);
        return;
      }
      const chunk = Buffer.from(block);
      chunk.writeUInt32LE(produced / CHUNK, 0);
      chunk.fill((produced / CHUNK) & 0xff, 4);
      hash.update(chunk);
      produced += CHUNK;
      this.push(chunk);
    },
  });
}

test('a 1 GiB value streams through a local store in bounded memory', { timeout: 600_000 }, async (t) => {
  const store = await open({ root: tempDir(t, 'tierfs-large-') });
  t.after(() => store.close());
  const before = rssMiB();

  const written = createHash('sha256');
  const ws = store.createWriteStream('large/value.bin');
  await pipeline(source(written), ws);
  assert.equal(ws.stat.size, GIB);
  const afterWrite = rssMiB();

  const read = createHash('sha256');
  let size = 0;
  await pipeline(
    store.createReadStream('large/value.bin'),
    new Writable({
      highWaterMark: CHUNK,
      write(chunk, _encoding, callback) {
        read.update(chunk);
        size += chunk.length;
        callback();
      },
    }),
  );
  const afterRead = rssMiB();
  assert.equal(size, GIB);
  assert.equal(read.digest('hex'), written.digest('hex'), 'the value read back is the value written');
  t.diagnostic(`maxRSS MiB: start ${before.toFixed(0)}, after write ${afterWrite.toFixed(0)}, after read ${afterRead.toFixed(0)}`);
  assert.ok(afterRead < LIMIT_MIB, `peak RSS ${afterRead.toFixed(0)} MiB for a 1024 MiB value (limit ${LIMIT_MIB})`);
});
