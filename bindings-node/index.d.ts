// TypeScript declarations of the npm package `tierfs`.
//
// Hand-written over the native layer, whose declarations napi-rs generates
// into `native.d.ts` (see README.md). Every storage call goes through the same
// Rust core as the FUSE mount and the Python package: routing, policies,
// access control, audit and metrics are identical.

/// <reference types="node" />

import type { Readable, Writable } from 'node:stream';

/**
 * Error codes carried by `err.code`, like Node's own `fs` errors.
 *
 * | code | core kind |
 * |---|---|
 * | `ENOENT` | NotFound: no such key (or backend, rule) |
 * | `EACCES` | PermissionDenied: the access policy refuses |
 * | `EINVAL` | InvalidKey, InvalidInput, Config |
 * | `EEXIST` | AlreadyExists |
 * | `ENOTSUP` | Unsupported: the backend cannot do this; no configured backend provides the storage class |
 * | `ESTALE` | Conflict: the value changed since it was read (`setMetadata`'s `ifVersion`) |
 * | `EDQUOT` | QuotaExceeded: a quota (`[[quotas]]`) would be exceeded; nothing was written |
 * | `ENOSPC` | Unavailable: the backend's device is full (free space, then retry) |
 * | `EIO` | Unavailable: backend down, I/O failure, retries spent, store closed |
 */
export type ErrorCode = 'ENOENT' | 'EACCES' | 'EINVAL' | 'EEXIST' | 'ENOTSUP' | 'ESTALE' | 'EDQUOT' | 'ENOSPC' | 'EIO';

/** The core error kind behind an {@link ErrorCode}. */
export type ErrorKind =
  | 'NotFound'
  | 'PermissionDenied'
  | 'InvalidKey'
  | 'InvalidInput'
  | 'AlreadyExists'
  | 'Unsupported'
  | 'Unavailable'
  | 'Config'
  | 'Conflict'
  | 'QuotaExceeded';

/**
 * What every failed call rejects with (async) or throws (sync). It is an
 * `Error`; the message starts with the code and names the key, the backend
 * and what to do.
 *
 * Wrong argument types are programmer errors and throw a `TypeError` with
 * `code === 'ERR_INVALID_ARG_TYPE'` instead, as Node's `fs` does.
 *
 * @example
 * ```ts
 * try {
 *   await store.get('reports/missing.csv');
 * } catch (err) {
 *   if ((err as TierfsError).code === 'ENOENT') console.log('no such key:', (err as TierfsError).key);
 *   else throw err;
 * }
 * ```
 */
export interface TierfsError extends Error {
  code: ErrorCode;
  /** The negative errno, as in Node's `fs` errors (`-2` for `ENOENT`). */
  errno: number;
  kind: ErrorKind;
  /** The key the error is about, if any. */
  key: string | undefined;
  /** The backend that failed, if known. */
  backend: string | undefined;
  /** The operation that failed (`get`, `put`, `batch`, ...), if known. */
  operation: string | undefined;
  /** Whether the same call may succeed if tried again. */
  retryable: boolean;
}

/** Bytes to store: a Buffer, any typed array or DataView, an ArrayBuffer, or a string (stored as UTF-8). */
export type Data = Buffer | Uint8Array | ArrayBufferView | ArrayBuffer | string;

/** A principal: a user id, optionally with roles (written without the `role:` prefix). */
export type PrincipalSpec = string | { id: string; roles?: string[] };

export interface OpenOptions {
  /**
   * A TOML configuration file (path), or an object shaped like that file
   * (`{ backends: { main: { type: 'memory' } } }`). Relative paths in an
   * object are taken from the current directory.
   */
  config?: string | Record<string, unknown>;
  /** The directory of the embedded default store (one persistent `local` backend). */
  root?: string;
  /** Who the store acts as (default: the current OS user). */
  principal?: PrincipalSpec;
}

/** What `stat` (and `put`, and a finished write stream) tells about a stored value. */
export interface Stat {
  key: string;
  /** Size in bytes. */
  size: number;
  /** When the value was last written. */
  modified: Date;
  /** Changes whenever the value changes (a counter or an etag); opaque. */
  version: string;
  /** The metadata map stored with the value. */
  metadata: Record<string, string>;
  /**
   * The key's storage class (`null` when it has none: its route places
   * it). Reported by `stat` and `statSync`; absent elsewhere.
   */
  storageClass?: string | null;
  /** The backends that hold the key. Reported by `stat` and `statSync`; absent elsewhere. */
  backends?: string[];
}

/** A stored value in a listing. */
export interface ObjectEntry extends Stat {
  kind: 'object';
}

/** A group of deeper keys in a non-recursive listing; `key` ends in `/`. */
export interface PrefixEntry {
  kind: 'prefix';
  key: string;
}

export type ListEntry = ObjectEntry | PrefixEntry;

export interface ListOptions {
  /** Every key below the prefix (default: direct children, deeper keys grouped into `prefix` entries). */
  recursive?: boolean;
  /** Entries fetched per page (default 1000). */
  pageSize?: number;
}

/**
 * A storage class: `persistent` (a durable backend), `distributed` (durable
 * and shared with other hosts: `s3`), `cache_only` (never on a durable
 * backend: `memory`), or a class the configuration names in `[classes.NAME]`.
 */
export type StorageClass = 'persistent' | 'distributed' | 'cache_only' | (string & {});

export interface PutOptions {
  /** Metadata stored with the value, replacing the previous map. */
  metadata?: Record<string, string>;
  /** Fail with `EEXIST` if the key exists. */
  ifNotExists?: boolean;
  /**
   * The storage class to keep the key in, from this write on (see
   * {@link Store.setStorageClass}); later writes naming none keep it.
   * Absent (or `null`): the key's class, else its prefix's, else its
   * route's placement. An unknown class rejects with `EINVAL`, a class no
   * configured backend can provide with `ENOTSUP`, before anything is written.
   */
  storageClass?: StorageClass | null;
}

/** A key's storage class, as {@link Store.storageClass} reports it. */
export interface StorageClassInfo {
  /** The class; `null` when neither the key nor a prefix above it has one (its route places it). */
  storageClass: StorageClass | null;
  /** The prefix the class is inherited from (`logs/`); `null` when the key was given it, or has none. */
  inheritedFrom: string | null;
  /** The backends of the stack that holds the key. */
  backends: string[];
  /** Whether the key's data is still moving to them (after a class change). */
  moving: boolean;
}

/** What {@link Store.setMetadata} changes. */
export interface MetadataChanges {
  /** Entries added or replaced. */
  set?: Record<string, string>;
  /** Names of entries removed (before `set` applies). */
  remove?: string[];
  /** Drop every entry first, so the map becomes exactly `set`. */
  replace?: boolean;
  /** Only while the value's version is this one, else `ESTALE`. */
  ifVersion?: string;
}

/** What {@link Store.patch} changes, applied in this order, all or nothing. */
export interface Patch {
  /** The new length, first: a truncation, or an extension with zeros. */
  length?: number;
  /** `[offset, data]` pairs written in order (a later one wins where two overlap). */
  writes?: Array<[number, Data]>;
  /** Metadata entries set. */
  metadata?: Record<string, string>;
  /** Only while the value's version is this one, else `ESTALE`. */
  ifVersion?: string;
}

export type BatchOp =
  | { op: 'put'; key: string; data: Data; metadata?: Record<string, string>; ifNotExists?: boolean }
  | { op: 'delete'; key: string };

export interface ReadStreamOptions {
  /** First byte (default 0). */
  start?: number;
  /** End of the range, exclusive like `Buffer.subarray` (unlike `fs.createReadStream`); default: the end of the value. */
  end?: number;
  /** The stream's buffer size in bytes. */
  highWaterMark?: number;
}

/** Options of {@link Store.createWriteStream}: those of `put` (`metadata`, `ifNotExists`, `storageClass`) and the stream's buffer. */
export interface WriteStreamOptions extends PutOptions {
  /** Bytes buffered before `write()` returns false (default 1 MiB). */
  highWaterMark?: number;
}

/** A write stream; the value appears when `'finish'` is emitted. */
export interface TierfsWriteStream extends Writable {
  /** The stored value's stat, once `'finish'` has been emitted. */
  readonly stat: Stat | undefined;
}

export type AccessLevel = 'none' | 'read' | 'write' | 'admin' | 'full';
export type Operation = 'read' | 'write' | 'delete' | 'list' | 'batch' | 'admin';

/** One access rule, as in `[[access.rules]]` of the configuration file. */
export interface AccessRule {
  /** A user id, `role:NAME`, or `*`. */
  principal: string;
  /** An exact key, a prefix `a/b/` (or `a/b/*`), `@backend`, or `*`. */
  resource: string;
  /** One operation type or `*` (the default). */
  operation?: Operation | '*';
  level: AccessLevel;
}

/** A rule in force, with who added it at run time (absent for rules of the configuration). */
export interface RuleInForce extends Required<AccessRule> {
  /** The principal that added the rule through the admin API. */
  addedBy?: string;
  /** The broadest resource on which that principal held admin (its authority); only principals whose authority encloses it may remove the rule. */
  authority?: string;
}

export interface AccessPolicy {
  /** The level when no rule matches. */
  default: AccessLevel;
  rules: RuleInForce[];
}

export interface AuditQuery {
  principal?: string;
  /** Only records at or after this time. */
  since?: Date | number;
  /** Only records before this time. */
  until?: Date | number;
  /** Only records naming a key that starts with this. */
  keyPrefix?: string;
  result?: 'allowed' | 'denied';
  /** At most this many records, the most recent (default 1000). */
  limit?: number;
}

/** One line of the hash-chained audit log: keys, never values. */
export interface AuditRecord {
  seq: number;
  /** RFC 3339, UTC. */
  time: string;
  principal: string;
  /** `read`, `write`, `delete`, `list`, `batch`, `rename`, or `admin:<command>`. */
  operation: string;
  keys: string[];
  result: 'allowed' | 'denied';
  detail?: string;
  prev: string;
  hash: string;
}

export interface OperationMetrics {
  count: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  latency: { count: number; sumUs: number; p50Us: number | null; p99Us: number | null; buckets: number[] };
}

export interface Metrics {
  /** Per backend, per operation (operations never called are left out). */
  backends: Record<string, Record<string, OperationMetrics>>;
  /**
   * Per backend that talks to a remote store (`s3`), the bytes of request
   * bodies sent and response bodies received since it was created.
   */
  traffic: Record<string, { sent: number; received: number }>;
  cacheHits: number;
  cacheMisses: number;
  cacheEvictions: number;
  repairs: number;
  migrations: number;
  retries: number;
}

export interface Explanation {
  principal: string;
  operation: Operation;
  key: string;
  allowed: boolean;
  level: AccessLevel;
  /** The deciding rule; `null` when the default decided. */
  rule: string | null;
  route: { prefix: string; policy: string; backends: string[] };
  /** Whether a cache holds the key now (`hit`, `miss`, `none` without a cache, `unknown`); `null` when the caller may not read the key. */
  cache: 'hit' | 'miss' | 'none' | 'unknown' | null;
  /** Where the route's policy puts the key among its backends when it chooses (the owners of a sharded policy); `null` otherwise. */
  placement: string | null;
  /**
   * The key's storage class in words: the class, whether given to the key or
   * inherited from a prefix, its backends and a move in progress
   * (``"`fast` (inherited from `logs/`): on nvme"``); `null` when it has none
   * (its route places it) or for a listing.
   */
  storageClass: string | null;
  /** The innermost quota (`[[quotas]]`) counting the key, with what it counts now; `null` when none does. */
  quota: {
    prefix: string;
    maxBytes: number | null;
    maxKeys: number | null;
    usedBytes: number;
    usedKeys: number;
  } | null;
}

/** Settings of a backend added at run time: its `type` and that type's fields. */
export interface BackendSettings {
  type: string;
  [setting: string]: unknown;
}

/**
 * A store: the TierFS manager as seen by one principal. Every call is
 * access-checked and audited, then routed by prefix to its policy and
 * backends. Calls run off the JavaScript thread (a `get` or `put` the store
 * answers from process memory, with no access rules or audit log, settles in
 * place); any number may be in flight.
 *
 * @example
 * ```ts
 * import { open } from 'tierfs';
 *
 * const store = await open({ root: './data' });
 * await store.put('reports/2026/q4.csv', 'region,total\n');
 * const csv = (await store.get('reports/2026/q4.csv')).toString();
 * for await (const entry of store.list('reports/')) console.log(entry.kind, entry.key);
 * await store.close();
 * ```
 */
export declare class Store {
  private constructor();

  /** The principal's user id. */
  readonly principal: string;

  /**
   * The whole value of `key`. Rejects with `ENOENT` if there is none.
   * Large values are better read with {@link Store.createReadStream}.
   */
  get(key: string): Promise<Buffer>;

  /**
   * Bytes `start` to `end` (exclusive) of the value, clamped to its size.
   *
   * @example
   * ```ts
   * const header = await store.getRange('logs/app.log', 0, 512);
   * ```
   */
  getRange(key: string, start: number, end?: number): Promise<Buffer>;

  /**
   * Stores `data` under `key`, replacing the value and its metadata. Readers
   * see the old or the new value, never a mix. The data is copied: the
   * buffer may be reused once the promise settles.
   *
   * @example
   * ```ts
   * await store.put('notes/today.txt', 'hello', { metadata: { author: 'ada' } });
   * await store.put('blobs/x', new Uint8Array([1, 2, 3]), { ifNotExists: true }); // EEXIST if present
   * await store.put('scratch/tmp.bin', 'short-lived', { storageClass: 'cache_only' }); // kept in memory
   * ```
   */
  put(key: string, data: Data, options?: PutOptions): Promise<Stat>;

  /** Removes `key`; removing a missing key succeeds. */
  delete(key: string): Promise<void>;

  /**
   * Size, modification time, version and metadata of `key` (`ENOENT` if
   * missing), with its storage class and the backends that hold it.
   *
   * @example
   * ```ts
   * const { size, storageClass, backends } = await store.stat('notes/today.txt');
   * ```
   */
  stat(key: string): Promise<Stat>;

  /** Whether `key` holds a value. */
  exists(key: string): Promise<boolean>;

  /**
   * Changes the metadata of `key` without rewriting its value (`ENOENT` if
   * missing, `ESTALE` if `ifVersion` no longer matches). Backends that keep
   * metadata apart (memory, local, s3) write no byte of the value.
   *
   * @example
   * ```ts
   * const { version } = await store.stat('notes/today.txt');
   * await store.setMetadata('notes/today.txt', { set: { owner: 'bob' }, remove: ['draft'], ifVersion: version });
   * ```
   */
  setMetadata(key: string, changes: MetadataChanges): Promise<Stat>;

  /**
   * Writes `data` at `offset` of the existing value of `key`, extending it
   * (zeros fill any gap); `ENOENT` if missing, `ESTALE` if `ifVersion` no
   * longer matches. Only these bytes are written where the backend changes
   * values in place (local, memory); others rewrite the value.
   *
   * @example
   * ```ts
   * await store.put('log.txt', 'hello world');
   * const { size } = await store.writeRange('log.txt', 6, 'there'); // 11
   * ```
   */
  writeRange(key: string, offset: number, data: Data, options?: { ifVersion?: string }): Promise<Stat>;

  /**
   * Changes part of the value of `key` in one step: `length` first, then
   * `writes`, then `metadata`; all of it or nothing, even across a crash,
   * where the backend changes values in place (local, memory).
   *
   * @example
   * ```ts
   * await store.put('db.bin', Buffer.alloc(8192));
   * await store.patch('db.bin', { writes: [[0, 'head'], [4096, Buffer.from('page')]], length: 16384 });
   * ```
   */
  patch(key: string, patch: Patch): Promise<Stat>;

  /** Moves `from` to `to` (atomically where the backend can; otherwise copy, then delete). */
  rename(from: string, to: string): Promise<void>;

  /**
   * The keys under `prefix`, in byte order, fetched page by page as the loop
   * goes. Without `recursive`, deeper keys are grouped into `prefix` entries
   * (`photos/2024/`). Keys the principal may not read are left out.
   *
   * @example
   * ```ts
   * for await (const entry of store.list('photos/', { recursive: true })) {
   *   if (entry.kind === 'object') console.log(entry.key, entry.size);
   * }
   * ```
   */
  list(prefix?: string, options?: ListOptions): AsyncIterableIterator<ListEntry>;

  /**
   * Applies every operation or none (when the keys route to one backend
   * that batches atomically; otherwise rejects with `ENOTSUP`, nothing applied).
   *
   * @example
   * ```ts
   * await store.batch([
   *   { op: 'put', key: 'a/1', data: 'one' },
   *   { op: 'delete', key: 'a/old' },
   * ]);
   * ```
   */
  batch(ops: BatchOp[]): Promise<void>;

  /**
   * A `Readable` over the value, chunk by chunk (1 MiB from the local
   * backend), with backpressure: at most four chunks are read ahead, so
   * memory stays at a few MiB whatever the value's size.
   *
   * @example
   * ```ts
   * import { pipeline } from 'node:stream/promises';
   * import { createWriteStream } from 'node:fs';
   * await pipeline(store.createReadStream('videos/big.mp4'), createWriteStream('/tmp/big.mp4'));
   * ```
   */
  createReadStream(key: string, options?: ReadStreamOptions): Readable;

  /**
   * A `Writable` that stores what is written under `key`. Nothing is visible
   * until the stream finishes (`'finish'`); destroying it, or an error, leaves
   * the previous value untouched.
   *
   * @example
   * ```ts
   * import { pipeline } from 'node:stream/promises';
   * import { createReadStream } from 'node:fs';
   * const out = store.createWriteStream('videos/big.mp4', { metadata: { type: 'video/mp4' }, storageClass: 'persistent' });
   * await pipeline(createReadStream('/tmp/big.mp4'), out);
   * console.log(out.stat?.size);
   * ```
   *
   * An unknown or unavailable `storageClass` fails the stream (`EINVAL`,
   * `ENOTSUP`) before anything is written.
   */
  createWriteStream(key: string, options?: WriteStreamOptions): TierfsWriteStream;

  /**
   * Keeps `key` in `storageClass` from now on, whatever later writes do
   * until changed again; `null` takes the key's own class off (it inherits
   * its prefix's, or its route places it). The key need not exist yet.
   * Its data moves in the background: reads find it throughout
   * ({@link Store.storageClass} tells `moving`), and a restart resumes the
   * move. Needs write access to the key. Rejects with `EINVAL` for an
   * unknown class, `ENOTSUP` for a class no configured backend can provide.
   *
   * @example
   * ```ts
   * await store.setStorageClass('reports/q4.csv', 'persistent');
   * await store.setStorageClass('reports/q4.csv', null); // back to its prefix's class, or its route
   * ```
   */
  setStorageClass(key: string, storageClass: StorageClass | null): Promise<void>;

  /**
   * The storage class of `key`, the prefix it is inherited from, the
   * backends that hold the key and whether its data is still moving there.
   * Needs read access to the key (which need not exist).
   *
   * @example
   * ```ts
   * await store.put('scratch/tmp.bin', 'x', { storageClass: 'cache_only' });
   * const { storageClass, inheritedFrom, backends, moving } = await store.storageClass('scratch/tmp.bin');
   * // 'cache_only', null, ['ram'], false
   * ```
   */
  storageClass(key: string): Promise<StorageClassInfo>;

  /**
   * Gives every key under `prefix` (a directory: `logs/`, `a/b/`; `''` for
   * every key) `storageClass`, except keys that have one of their own; keys
   * created there later get it too. Existing keys move in the background.
   * `null` takes the prefix's class off. Needs admin on the prefix (it
   * moves keys below that the caller may not be allowed to write).
   * Rejects with `EINVAL` for a prefix not ending in `/` or an unknown
   * class, `ENOTSUP` for a class no configured backend can provide.
   *
   * @example
   * ```ts
   * await store.setPrefixClass('logs/', 'fast');
   * await store.put('logs/app.log', 'started\n');
   * (await store.storageClass('logs/app.log')).inheritedFrom; // 'logs/'
   * ```
   */
  setPrefixClass(prefix: string, storageClass: StorageClass | null): Promise<void>;

  /**
   * The storage class in force under `prefix`: its own, else the nearest
   * enclosing prefix's; `null` when keys there have only their route.
   * Answered from memory, synchronously.
   *
   * @example
   * ```ts
   * store.prefixClass('logs/');        // 'fast'
   * store.prefixClass('logs/2026/');   // 'fast', inherited
   * ```
   */
  prefixClass(prefix: string): StorageClass | null;

  /**
   * The same store acting as another principal (sharing backends, rules and
   * audit log). In-process callers name their principal: this guards against
   * mistakes, not against the program itself.
   *
   * @example
   * ```ts
   * const bob = store.asPrincipal('bob', { roles: ['staff'] });
   * await bob.get('public/a.txt');
   * ```
   */
  asPrincipal(principal: string, options?: { roles?: string[] }): Store;

  /** The access rules in force (needs admin on `*`). */
  accessPolicy(): Promise<AccessPolicy>;

  /**
   * Adds a rule (needs admin on its resource, granting no more than the caller holds there).
   *
   * @example
   * ```ts
   * await admin.addRule({ principal: 'bob', resource: 'team/', level: 'read' });
   * ```
   */
  addRule(rule: AccessRule): Promise<void>;

  /** Removes a rule (`ENOENT` if no such rule is in force). */
  removeRule(rule: AccessRule): Promise<void>;

  /**
   * Adds a backend at run time (needs admin on `@name`; `EEXIST` if the name is taken).
   *
   * @example
   * ```ts
   * await store.addBackend('scratch', { type: 'memory' });
   * await store.addBackend('archive', { type: 'local', path: '/srv/archive' });
   * ```
   */
  addBackend(name: string, settings: BackendSettings): Promise<void>;

  /** Removes a backend that no route or policy uses (needs admin on `@name`). */
  removeBackend(name: string): Promise<void>;

  /**
   * Audit records matching `query` (needs admin on `*`; `ENOENT` without an `[audit]` section).
   *
   * @example
   * ```ts
   * const denied = await admin.auditLog({ result: 'denied', principal: 'bob' });
   * ```
   */
  auditLog(query?: AuditQuery): Promise<AuditRecord[]>;

  /**
   * Whether `operation` on `key` would be allowed for `principal` (default: this store's), and which
   * rule decides. Explaining another principal's rights needs admin on the key (`EACCES` otherwise);
   * every explanation is audited.
   *
   * @example
   * ```ts
   * store.explain('write', 'docs/a.txt').allowed;            // this principal
   * admin.explain('read', 'docs/a.txt', 'bob').rule;         // needs admin on docs/a.txt
   * ```
   */
  explain(operation: Operation, key: string, principal?: string): Explanation;

  /** Counters of every backend and operation, now. */
  metrics(): Metrics;

  /** The metrics in the Prometheus text exposition format. */
  metricsPrometheus(): string;

  /** Flushes write-back caches and makes acknowledged writes durable. */
  sync(): Promise<void>;

  /**
   * Flushes and closes the store and every store derived from it with
   * {@link Store.asPrincipal}; later calls reject with `EIO`. Closing twice is harmless.
   */
  close(): Promise<void>;

  /** {@link Store.get}, blocking the thread (for scripts). */
  getSync(key: string): Buffer;
  /** {@link Store.put}, blocking the thread (for scripts). */
  putSync(key: string, data: Data, options?: PutOptions): Stat;
  /** {@link Store.delete}, blocking the thread (for scripts). */
  deleteSync(key: string): void;
  /** {@link Store.stat}, blocking the thread (for scripts). */
  statSync(key: string): Stat;
  /** {@link Store.exists}, blocking the thread (for scripts). */
  existsSync(key: string): boolean;
  /** Every entry of {@link Store.list}, blocking the thread (for scripts). */
  listSync(prefix?: string, options?: { recursive?: boolean }): ListEntry[];

  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Opens a store.
 *
 * - `config`: a TOML file (or an object of the same shape) naming backends,
 *   routes, policies, `[access]` rules and `[audit]`;
 * - `root`: the embedded default, one persistent local store in that directory;
 * - neither: the embedded default in the user's data directory
 *   (`$XDG_DATA_HOME/tierfs`), where the current user has full access.
 *
 * Configuration errors reject with `EINVAL`, naming the file and the field.
 *
 * @example
 * ```ts
 * import { open } from 'tierfs';
 *
 * const store = await open({ config: './tierfs.toml', principal: 'alice' });
 * const scratch = await open({ config: { backends: { mem: { type: 'memory' } } } });
 * const local = await open({ root: './data' });
 * ```
 */
export declare function open(options?: OpenOptions): Promise<Store>;

/**
 * A stored value's facts, as a backend written in JavaScript reports them.
 * Without `version`, TierFS derives one from size and time.
 */
export interface BackendStat {
  size: number;
  modified?: Date | number;
  version?: string | number;
  metadata?: Record<string, string>;
}

/** One entry of a JavaScript backend's `list`. */
export interface BackendListEntry extends BackendStat {
  key: string;
}

export interface BackendListOptions {
  /** Only keys after this one (exclusive). */
  startAfter?: string;
  /** Only keys from this one on (inclusive). */
  startAt?: string;
  /** At most this many entries are needed. */
  limit: number;
}

/**
 * A backend written in JavaScript (the protocol of {@link registerBackend}).
 *
 * Each method is awaited; to fail, throw (or reject with) an `Error` whose
 * `code` is one of {@link ErrorCode}: `ENOENT` for a missing key (`get`,
 * `getRange`, `stat`), `EEXIST` for a refused `ifNotExists`, and so on; any
 * other error reads as `EIO`. Keys arrive validated.
 */
export interface BackendImpl {
  /** The whole value; throw an `ENOENT` error if missing. */
  get(key: string): Promise<Data> | Data;
  /**
   * Stores the value, replacing value and metadata. `data` is a fresh Buffer
   * the backend may keep. May return the new value's facts.
   */
  put(
    key: string,
    data: Buffer,
    options: { metadata: Record<string, string>; ifNotExists: boolean },
  ): Promise<BackendStat | void> | BackendStat | void;
  /** Removes the key; a missing key is not an error (an `ENOENT` thrown here is ignored). */
  delete(key: string): Promise<void> | void;
  /** The value's facts; throw an `ENOENT` error if missing. */
  stat(key: string): Promise<BackendStat> | BackendStat;
  /**
   * Keys starting with `prefix`, at any depth, in byte order, from
   * `options.startAt` or after `options.startAfter`, at most `options.limit`.
   * Returning more, or unsorted entries, is allowed: TierFS filters and sorts
   * them (at the cost of a larger answer). Grouping into directories is done
   * by TierFS.
   */
  list(prefix: string, options: BackendListOptions): Promise<BackendListEntry[]> | BackendListEntry[];
  /** Optional: bytes `start` to `end` (exclusive); without it, `get` serves ranges. */
  getRange?(key: string, start: number, end: number): Promise<Data> | Data;
  /** Optional: apply every operation or none; without it, batches on this backend reject with `ENOTSUP`. */
  batch?(
    ops: Array<
      | { op: 'put'; key: string; data: Buffer; metadata: Record<string, string>; ifNotExists: boolean }
      | { op: 'delete'; key: string }
    >,
  ): Promise<void> | void;
  /** Declare `true` if acknowledged writes survive a restart. */
  persistent?: boolean;
  /** Declare `true` if other hosts see the values (a network service); the `distributed` storage class needs it. */
  shared?: boolean;
  /** Declare `true` if `put` honours `ifNotExists` atomically; otherwise `ifNotExists` puts reject with `ENOTSUP`. */
  conditionalPut?: boolean;
}

/** Makes a backend for one `[backends.NAME]` table: `settings` holds its fields other than `type`. */
export type BackendFactory = (
  settings: Record<string, unknown>,
  context: { name: string },
) => BackendImpl | Promise<BackendImpl>;

/**
 * Registers a backend type written in JavaScript, process-wide: any store
 * opened afterwards can name it in its configuration (`type = "NAME"`) or
 * add it with {@link Store.addBackend}, under the same policies, access
 * control, audit and metrics as the built-in types. Pass an object (used as
 * is; such a type takes no settings) or a factory called once per
 * configured backend with its settings.
 *
 * Calls reach JavaScript on the thread that registered the type; the sync
 * twins (`getSync`, ...) cannot reach such a backend from that same thread
 * and throw `ENOTSUP`. Values are held whole in memory: `createReadStream`
 * and `createWriteStream` work but do not stream. Throws `EEXIST` if the
 * name is taken, `EINVAL` if it is not 1 to 64 of `a-z A-Z 0-9 _ -`.
 *
 * @example
 * ```ts
 * import { open, registerBackend } from 'tierfs';
 *
 * const data = new Map<string, { value: Buffer; modified: Date }>();
 * const notFound = (key: string) => Object.assign(new Error(`no ${key}`), { code: 'ENOENT' });
 * registerBackend('jsmap', {
 *   async get(key) { const e = data.get(key); if (!e) throw notFound(key); return e.value; },
 *   async put(key, value) { data.set(key, { value, modified: new Date() }); },
 *   async delete(key) { data.delete(key); },
 *   async stat(key) { const e = data.get(key); if (!e) throw notFound(key); return { size: e.value.length, modified: e.modified }; },
 *   async list(prefix) {
 *     return [...data].filter(([k]) => k.startsWith(prefix)).map(([key, e]) => ({ key, size: e.value.length }));
 *   },
 * });
 * const store = await open({ config: { backends: { main: { type: 'jsmap' } } } });
 * ```
 */
export declare function registerBackend(name: string, impl: BackendImpl | BackendFactory): void;

/** The registered backend type names (built-in, plugin libraries and JavaScript), sorted. */
export declare function backendTypes(): string[];
