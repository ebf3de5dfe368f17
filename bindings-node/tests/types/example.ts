// An example script against the published declarations; `tsc --noEmit`
// checks it (types.test.mjs). It is type-checked, not run.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';

import tierfs, {
  open,
  registerBackend,
  backendTypes,
  Store,
  type BackendImpl,
  type ListEntry,
  type Stat,
  type TierfsError,
  type AuditRecord,
  type Metrics,
  type StorageClass,
  type StorageClassInfo,
  type WriteStreamOptions,
} from 'tierfs';

async function main(): Promise<void> {
  const store: Store = await open({ config: './tierfs.toml', principal: { id: 'alice', roles: ['staff'] } });
  const local = await tierfs.open({ root: './data' });
  const scratch = await open({ config: { backends: { mem: { type: 'memory' } } } });

  const stat: Stat = await store.put('reports/q4.csv', 'region,total\n', { metadata: { owner: 'alice' } });
  const when: Date = stat.modified;
  await store.put('bytes', new Uint8Array([1, 2, 3]), { ifNotExists: true });
  const value: Buffer = await store.get('reports/q4.csv');
  const head: Buffer = await store.getRange('reports/q4.csv', 0, 6);
  const exists: boolean = await store.exists('reports/q4.csv');
  await store.delete('bytes');
  const changed: Stat = await store.setMetadata('reports/q4.csv', { set: { owner: 'ada' }, remove: ['draft'] });
  await store.setMetadata('reports/q4.csv', { set: {}, replace: true, ifVersion: changed.version });
  const grown: Stat = await store.writeRange('reports/q4.csv', 6, 'more', { ifVersion: changed.version });
  await store.patch('reports/q4.csv', { writes: [[0, 'x'], [4, new Uint8Array([1])]], length: 16, ifVersion: grown.version });
  await store.rename('reports/q4.csv', 'reports/2026/q4.csv');

  for await (const entry of store.list('reports/', { recursive: true })) {
    const e: ListEntry = entry;
    if (e.kind === 'object') console.log(e.key, e.size, e.modified.toISOString(), e.version, e.metadata);
    else console.log('dir', e.key);
  }

  await store.batch([
    { op: 'put', key: 'a/1', data: 'one', metadata: { n: '1' } },
    { op: 'delete', key: 'a/old' },
  ]);

  await store.put('scratch/tmp.bin', 'short-lived', { storageClass: 'cache_only' });
  await store.put('scratch/tmp.bin', 'kept in its class', { storageClass: null });
  await store.setStorageClass('reports/2026/q4.csv', 'persistent');
  await store.setStorageClass('reports/2026/q4.csv', null);
  const info: StorageClassInfo = await store.storageClass('scratch/tmp.bin');
  const cls: StorageClass | null = info.storageClass;
  const from: string | null = info.inheritedFrom;
  console.log(cls, from, info.backends.join(','), info.moving === false);
  await store.setPrefixClass('logs/', 'fast');
  await store.setPrefixClass('logs/', null);
  const inForce: string | null = store.prefixClass('logs/2026/');
  store.putSync('sync/classed', 'v', { storageClass: 'fast' });
  const streamOptions: WriteStreamOptions = { storageClass: 'distributed', highWaterMark: 1 << 16 };
  await pipeline(Readable.from(['x']), store.createWriteStream('shared/x', streamOptions));
  console.log(inForce);

  const out = store.createWriteStream('videos/v.bin', { metadata: { type: 'video' }, storageClass: 'persistent' });
  await pipeline(Readable.from([Buffer.alloc(1024)]), out);
  const size: number | undefined = out.stat?.size;
  for await (const chunk of store.createReadStream('videos/v.bin', { start: 0, end: 512 })) {
    console.log((chunk as Buffer).length);
  }

  try {
    await store.get('missing');
  } catch (err) {
    const e = err as TierfsError;
    if (e.code === 'ENOENT') console.log(e.key, e.backend, e.errno, e.kind, e.retryable);
  }

  const bob = store.asPrincipal('bob', { roles: ['viewer'] });
  await store.addRule({ principal: 'bob', resource: 'reports/', operation: 'read', level: 'read' });
  await store.removeRule({ principal: 'bob', resource: 'reports/', level: 'read' });
  const policy = await store.accessPolicy();
  console.log(policy.default, policy.rules.length, bob.principal);
  const records: AuditRecord[] = await store.auditLog({ principal: 'bob', since: new Date(0), result: 'denied', limit: 10 });
  const metrics: Metrics = store.metrics();
  console.log(records[0]?.hash, metrics.backends['main']?.['get']?.latency.p99Us, store.metricsPrometheus().length);
  console.log(metrics.traffic['cluster']?.sent ?? 0);
  console.log(store.explain('read', 'reports/q4.csv').allowed);
  const classWhy: string | null = store.explain('read', 'scratch/tmp.bin').storageClass;
  console.log(classWhy);
  await store.addBackend('scratch', { type: 'memory' });
  await store.removeBackend('scratch');

  const s: Stat = store.putSync('sync/k', 'v');
  const b: Buffer = store.getSync('sync/k');
  const entries: ListEntry[] = store.listSync('sync/', { recursive: true });
  console.log(s.size, b.length, entries.length, store.existsSync('sync/k'), store.statSync('sync/k').version);
  store.deleteSync('sync/k');

  const impl: BackendImpl = {
    async get(key) {
      throw Object.assign(new Error(`no ${key}`), { code: 'ENOENT' });
    },
    async put(_key, data) {
      return { size: data.length, version: 1 };
    },
    async delete() {},
    async stat() {
      return { size: 0, modified: new Date() };
    },
    async list(prefix, { startAfter, limit }) {
      return [{ key: `${prefix}x`, size: 1 }].filter((e) => !startAfter || e.key > startAfter).slice(0, limit);
    },
    persistent: false,
  };
  registerBackend('example', impl);
  registerBackend('example-factory', (settings, { name }) => ({ ...impl, name, settings }));
  console.log(backendTypes().join(', '), exists, value.length, head.length, when, size);

  await Promise.all([store.close(), local.close(), scratch.close()]);
}

void main();

// @ts-expect-error: keys are strings
void open().then((s) => s.get(42));
// @ts-expect-error: a storage class is a string (or null)
void open().then((s) => s.put('k', 'v', { storageClass: 3 }));
// @ts-expect-error: setStorageClass takes null, not nothing, to take a class off
void open().then((s) => s.setStorageClass('k'));
