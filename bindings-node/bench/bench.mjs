// Node benchmarks: tierfs against the `opendal` npm package (and Node's own
// `fs` streams) on the same kind of backend. Run by scripts/bench-node.sh in
// a project that has `tierfs` (from its folder) and `opendal` installed.
//
//   node bench.mjs [--quick] [--json FILE] [--dir DIR]
//
// Small values: 4 KiB put and get, ops/s, with 1 and with 64 calls in flight,
// over 1000 keys. Streams: a 64 MiB value written with 64 KiB chunks through
// each library's Writable (until 'finish': the value is stored) and read back
// through its Readable, MB/s (10^6 bytes/s). Contenders run interleaved, the
// order rotating every round, and each reports its best round.
// Backends: memory (tierfs `memory`, opendal `memory`) and local files on the
// same disk (tierfs `local`, opendal `fs`, Node `fs` streams).
import { closeSync, createReadStream, createWriteStream, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { open } from 'tierfs';
import { Operator } from 'opendal';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const baseDir = args.includes('--dir') ? args[args.indexOf('--dir') + 1] : process.cwd();

const SMALL = 4096;
const KEYS = 1000;
const OPS = quick ? 5_000 : 30_000;
const STREAM = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;
const ROUNDS = quick ? 2 : 5;
const SMALL_ROUNDS = quick ? 2 : 4;

const results = [];
const record = (row) => {
  results.push(row);
  const value = row.unit === 'ops/s' ? Math.round(row.value).toLocaleString('en-US') : row.value.toFixed(0);
  console.log(`${row.backend.padEnd(7)} ${row.test.padEnd(22)} ${row.lib.padEnd(14)} ${value.padStart(10)} ${row.unit}`);
};

async function runOps(fn, inFlight) {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < OPS) {
        const i = next++;
        await fn(i % KEYS);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  return OPS / secs;
}

/**
 * Runs each contender `rounds` times, interleaved (the order rotates every
 * round, so a burst of load from elsewhere hits every side alike), and
 * records the best round of each.
 */
async function compare(backend, test, unit, rounds, contenders) {
  const best = new Map(contenders.map(([lib]) => [lib, 0]));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < contenders.length; i++) {
      const [lib, fn] = contenders[(i + r) % contenders.length];
      best.set(lib, Math.max(best.get(lib), await fn()));
    }
  }
  for (const [lib] of contenders) record({ backend, test, lib, unit, value: best.get(lib) });
}

/** 64 MiB through `writable` in 64 KiB chunks, honouring backpressure; MB/s until 'finish'. */
async function writeStream(makeWritable, afterFinish) {
  const chunk = Buffer.alloc(CHUNK, 0xab);
  const started = process.hrtime.bigint();
  const ws = await makeWritable();
  const done = new Promise((resolve, reject) => ws.on('finish', resolve).on('error', reject));
  for (let written = 0; written < STREAM; written += CHUNK) {
    if (!ws.write(chunk)) await new Promise((r) => ws.once('drain', r));
  }
  ws.end();
  await done;
  if (afterFinish) await afterFinish();
  return STREAM / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Reads `readable` to the end; MB/s. */
async function readStream(makeReadable) {
  const started = process.hrtime.bigint();
  let n = 0;
  await pipeline(
    await makeReadable(),
    new Writable({
      highWaterMark: 1 << 20,
      write(c, _e, cb) {
        n += c.length;
        cb();
      },
    }),
  );
  if (n !== STREAM) throw new Error(`read ${n} bytes, expected ${STREAM}`);
  return STREAM / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** 4 KiB puts and gets; `libs` maps a library to its put(key, value) and get(key). */
async function smallOps(backend, libs) {
  const value = Buffer.alloc(SMALL, 0x5a);
  for (const [put] of Object.values(libs)) for (let i = 0; i < KEYS; i++) await put(i, value); // fill
  for (const inFlight of [1, 64]) {
    const entries = Object.entries(libs);
    await compare(backend, `put 4 KiB x${inFlight}`, 'ops/s', SMALL_ROUNDS, entries.map(([lib, [put]]) => [lib, () => runOps((k) => put(k, value), inFlight)]));
    await compare(backend, `get 4 KiB x${inFlight}`, 'ops/s', SMALL_ROUNDS, entries.map(([lib, [, get]]) => [lib, () => runOps((k) => get(k), inFlight)]));
  }
}

async function main() {
  const dir = mkdtempSync(join(baseDir, 'tierfs-bench-'));
  console.log(`tierfs vs opendal 0.47.7, Node ${process.version}; files in ${dir}`);
  try {
    // ---- memory ----------------------------------------------------------------
    const tmem = await open({ config: { backends: { mem: { type: 'memory' } } } });
    const omem = new Operator('memory', {});
    await smallOps('memory', {
      tierfs: [(k, v) => tmem.put(`k/${k}`, v), (k) => tmem.get(`k/${k}`)],
      opendal: [(k, v) => omem.write(`k/${k}`, v), (k) => omem.read(`k/${k}`)],
    });
    await compare('memory', 'stream write 64 MiB', 'MB/s', ROUNDS, [
      ['tierfs', () => writeStream(() => tmem.createWriteStream('big'))],
      ['opendal', () => writeStream(async () => (await omem.writer('big')).createWriteStream())],
    ]);
    await compare('memory', 'stream read 64 MiB', 'MB/s', ROUNDS, [
      ['tierfs', () => readStream(() => tmem.createReadStream('big'))],
      ['opendal', () => readStream(async () => (await omem.reader('big')).createReadStream())],
    ]);
    await tmem.close();

    // ---- local files -------------------------------------------------------------
    const tdir = join(dir, 'tierfs');
    const odir = join(dir, 'opendal');
    const fdir = join(dir, 'fs');
    for (const d of [tdir, odir, fdir]) rmSync(d, { recursive: true, force: true });
    const tloc = await open({ config: { backends: { disk: { type: 'local', path: tdir } } } });
    const oloc = new Operator('fs', { root: odir });
    await smallOps('local', {
      tierfs: [(k, v) => tloc.put(`k/${k}`, v), (k) => tloc.get(`k/${k}`)],
      'opendal fs': [(k, v) => oloc.write(`k/${k}`, v), (k) => oloc.read(`k/${k}`)],
    });

    mkdirSync(fdir, { recursive: true });
    const fsFile = join(fdir, 'big');
    // Durable like tierfs, whose write stream fsyncs before 'finish': fs, then fsync.
    const fsync = async () => {
      const fd = openSync(fsFile, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    };
    await compare('local', 'stream write 64 MiB', 'MB/s', ROUNDS, [
      ['tierfs', () => writeStream(() => tloc.createWriteStream('big'))],
      ['opendal fs', () => writeStream(async () => (await oloc.writer('big')).createWriteStream())],
      ['node fs', () => writeStream(() => createWriteStream(fsFile))],
      ['node fs+fsync', () => writeStream(() => createWriteStream(fsFile), fsync)],
    ]);
    await compare('local', 'stream read 64 MiB', 'MB/s', ROUNDS, [
      ['tierfs', () => readStream(() => tloc.createReadStream('big'))],
      ['opendal fs', () => readStream(async () => (await oloc.reader('big')).createReadStream())],
      ['node fs', () => readStream(() => createReadStream(fsFile))],
    ]);
    await tloc.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ node: process.version, results }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
