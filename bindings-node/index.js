'use strict';
// TierFS for Node.js: the public API over the native module (see index.d.ts
// for the documented contract). This file only adapts: argument checks,
// Buffers, Dates, async iterators and Node streams. Storage work, access
// control, audit and error mapping happen in Rust (src/).

const path = require('node:path');
const { Readable, Writable } = require('node:stream');

const native = loadNative();

/** The file name of the native module for this platform. */
function nativeFileName() {
  const { platform, arch } = process;
  let abi = '';
  if (platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
    abi = report && report.header && report.header.glibcVersionRuntime ? '-gnu' : '-musl';
  }
  return `tierfs.${platform}-${arch}${abi}.node`;
}

function loadNative() {
  const file = process.env.TIERFS_NATIVE || path.join(__dirname, nativeFileName());
  try {
    const module = { exports: {} };
    process.dlopen(module, file);
    return module.exports;
  } catch (cause) {
    const err = new Error(
      `tierfs: cannot load the native module ${file} (${cause.message}); ` +
        'it is built by the install script: run `npm rebuild tierfs` with cargo on the PATH',
    );
    err.code = 'ERR_DLOPEN_FAILED';
    err.cause = cause;
    throw err;
  }
}

// ---- argument checks --------------------------------------------------------

function typeError(name, expected, value) {
  const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${got}`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

function checkString(name, value) {
  if (typeof value !== 'string') throw typeError(name, 'of type string', value);
}

function checkOptionalString(name, value) {
  if (value !== undefined && value !== null && typeof value !== 'string') {
    throw typeError(name, 'of type string', value);
  }
}

/** A storage class argument: a class name, or `null` to take the class off. */
function checkClass(name, value) {
  if (value !== null && typeof value !== 'string') throw typeError(name, 'of type string or null', value);
  return value;
}

/** `options.storageClass` of a write: a class name, or absent (`undefined` or `null`: the key keeps its class). */
function checkStorageClass(options) {
  checkOptionalString('options.storageClass', options.storageClass);
  return options.storageClass ?? undefined;
}

function checkObject(name, value) {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw typeError(name, 'an object', value);
  return value;
}

function checkMetadata(metadata, name = 'options.metadata') {
  if (metadata === undefined || metadata === null) return undefined;
  checkObject(name, metadata);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw typeError(`${name}.${k}`, 'of type string', v);
  }
  return metadata;
}

function checkOffset(name, value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw typeError(name, 'of type number', value);
  return value;
}

function checkPosition(name, value) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    const err = new RangeError(`The "${name}" argument must be a non-negative integer. Received ${String(value)}`);
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
  return value;
}

/** A Buffer over `data` (a Buffer, any ArrayBuffer view, an ArrayBuffer or a string), without copying. */
function toBuffer(data, name = 'data') {
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return Buffer.from(data);
  throw typeError(name, 'a Buffer, Uint8Array or string', data);
}

function toMillis(name, value) {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return value;
  throw typeError(name, 'a Date or a number of milliseconds', value);
}

// ---- results ----------------------------------------------------------------

function toStat(s) {
  return { key: s.key, size: s.size, modified: new Date(s.modifiedMs), version: s.version, metadata: s.metadata };
}

/** `stat`'s result: also the key's class and the backends that hold it. */
function toFullStat(s) {
  return { ...toStat(s), storageClass: s.storageClass ?? null, backends: s.backends };
}

function toClassInfo(c) {
  return {
    storageClass: c.storageClass ?? null,
    inheritedFrom: c.inheritedFrom ?? null,
    backends: c.backends,
    moving: c.moving,
  };
}

function toEntry(e) {
  if (e.prefix) return { kind: 'prefix', key: e.key };
  return { kind: 'object', ...toStat(e.stat) };
}

/** Runs `fn` so that a synchronous throw becomes a rejected promise. */
function later(fn) {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---- streams ----------------------------------------------------------------

const STREAM_CHUNK = 1 << 20;
/** Values up to this size are copied during `put` itself (src/convert.rs INLINE_COPY). */
const INLINE_COPY = 256 * 1024;

class TierfsReadStream extends Readable {
  #open;
  #reader = null;

  constructor(open, options) {
    super({ highWaterMark: options.highWaterMark });
    this.#open = open;
  }

  _construct(callback) {
    this.#open().then((reader) => {
      this.#reader = reader;
      callback();
    }, callback);
  }

  _read() {
    // Chunks already read ahead are taken without a round trip; otherwise wait for one.
    let chunk;
    try {
      while ((chunk = this.#reader.tryNext()) !== undefined) {
        if (!this.push(chunk) || chunk === null) return;
      }
    } catch (err) {
      this.destroy(err);
      return;
    }
    this.#reader.next().then(
      (next) => this.push(next),
      (err) => this.destroy(err),
    );
  }

  _destroy(err, callback) {
    if (this.#reader) this.#reader.close();
    callback(err);
  }
}

class TierfsWriteStream extends Writable {
  #open;
  #writer = null;
  #finished = false;
  /** The flush being written, if any: the next one waits for it. */
  #inflight = null;
  /** A flush's failure, reported by the next write or by the end. */
  #failure = null;
  /** The stored value's stat, once the stream has finished. */
  stat = undefined;

  constructor(open, options) {
    super({ highWaterMark: options.highWaterMark ?? STREAM_CHUNK, decodeStrings: true });
    this.#open = open;
  }

  _construct(callback) {
    this.#open().then((writer) => {
      this.#writer = writer;
      callback();
    }, callback);
  }

  /** Starts a flush when the native buffer is full; at most one runs while the next buffer fills. */
  #flushIf(full, callback) {
    if (!full) {
      callback();
      return;
    }
    const previous = this.#inflight;
    const current = this.#writer.flush().then(
      () => {
        if (this.#inflight === current) this.#inflight = null;
      },
      (err) => {
        this.#failure = this.#failure ?? err;
        if (this.#inflight === current) this.#inflight = null;
      },
    );
    this.#inflight = current;
    if (previous === null) {
      callback();
    } else {
      previous.then(() => callback(this.#failure ?? undefined));
    }
  }

  #push(chunks, callback) {
    if (this.#failure) {
      callback(this.#failure);
      return;
    }
    let full = false;
    try {
      for (const chunk of chunks) full = this.#writer.push(chunk) || full;
    } catch (err) {
      callback(err);
      return;
    }
    this.#flushIf(full, callback);
  }

  _write(chunk, _encoding, callback) {
    this.#push([chunk], callback);
  }

  _writev(chunks, callback) {
    this.#push(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  _final(callback) {
    (this.#inflight ?? Promise.resolve())
      .then(() => {
        if (this.#failure) throw this.#failure;
        return this.#writer.finish();
      })
      .then((stat) => {
        this.#finished = true;
        this.stat = toStat(stat);
        callback();
      }, callback);
  }

  _destroy(err, callback) {
    if (this.#writer && !this.#finished) {
      this.#writer.abort().then(
        () => callback(err),
        () => callback(err),
      );
    } else {
      callback(err);
    }
  }
}

// ---- Store --------------------------------------------------------------------

const CONSTRUCT = Symbol('tierfs.Store');

class Store {
  #n;

  /** @internal Use `open()`. */
  constructor(token, nativeStore) {
    if (token !== CONSTRUCT) throw new TypeError('tierfs: use `await open(...)` to get a Store');
    this.#n = nativeStore;
  }

  get principal() {
    return this.#n.principal;
  }

  get(key) {
    return later(() => {
      checkString('key', key);
      return this.#n.get(key);
    });
  }

  getRange(key, start, end) {
    return later(() => {
      checkString('key', key);
      return this.#n.getRange(key, checkOffset('start', start), checkOffset('end', end));
    });
  }

  put(key, data, options) {
    return later(() => {
      checkString('key', key);
      const o = checkObject('options', options);
      const buf = toBuffer(data);
      const metadata = checkMetadata(o.metadata);
      const storageClass = checkStorageClass(o);
      // Small values are copied during the call; large ones off the JavaScript thread.
      const put = buf.length <= INLINE_COPY ? this.#n.put : this.#n.putLarge;
      return put.call(this.#n, key, buf, metadata, o.ifNotExists === true, storageClass).then(toStat);
    });
  }

  delete(key) {
    return later(() => {
      checkString('key', key);
      return this.#n.delete(key);
    });
  }

  stat(key) {
    return later(() => {
      checkString('key', key);
      return this.#n.stat(key).then(toFullStat);
    });
  }

  exists(key) {
    return later(() => {
      checkString('key', key);
      return this.#n.exists(key);
    });
  }

  setMetadata(key, changes) {
    return later(() => {
      checkString('key', key);
      const o = checkObject('changes', changes);
      const set = checkMetadata(o.set, 'changes.set');
      let remove;
      if (o.remove !== undefined && o.remove !== null) {
        if (!Array.isArray(o.remove)) throw typeError('changes.remove', 'an array of strings', o.remove);
        for (const name of o.remove) if (typeof name !== 'string') throw typeError('changes.remove[]', 'of type string', name);
        remove = o.remove;
      }
      if (o.ifVersion !== undefined && o.ifVersion !== null) checkString('changes.ifVersion', o.ifVersion);
      return this.#n.setMetadata(key, set, remove, o.replace === true, o.ifVersion ?? undefined).then(toStat);
    });
  }

  writeRange(key, offset, data, options) {
    return later(() => {
      checkString('key', key);
      checkPosition('offset', offset);
      const o = checkObject('options', options);
      checkOptionalString('options.ifVersion', o.ifVersion);
      const buf = toBuffer(data);
      return this.#n.patch(key, [offset], [buf], undefined, undefined, o.ifVersion ?? undefined).then(toStat);
    });
  }

  patch(key, patch) {
    return later(() => {
      checkString('key', key);
      const o = checkObject('patch', patch);
      const offsets = [];
      const datas = [];
      if (o.writes !== undefined && o.writes !== null) {
        if (!Array.isArray(o.writes)) throw typeError('patch.writes', 'an array of [offset, data] pairs', o.writes);
        o.writes.forEach((w, i) => {
          if (!Array.isArray(w) || w.length !== 2) throw typeError(`patch.writes[${i}]`, 'an [offset, data] pair', w);
          offsets.push(checkPosition(`patch.writes[${i}][0]`, w[0]));
          datas.push(toBuffer(w[1], `patch.writes[${i}][1]`));
        });
      }
      const length = o.length === undefined || o.length === null ? undefined : checkPosition('patch.length', o.length);
      const metadata = checkMetadata(o.metadata, 'patch.metadata');
      checkOptionalString('patch.ifVersion', o.ifVersion);
      return this.#n.patch(key, offsets, datas, length, metadata, o.ifVersion ?? undefined).then(toStat);
    });
  }

  rename(from, to) {
    return later(() => {
      checkString('from', from);
      checkString('to', to);
      return this.#n.rename(from, to);
    });
  }

  async *list(prefix = '', options) {
    checkString('prefix', prefix);
    const o = checkObject('options', options);
    const recursive = o.recursive === true;
    const pageSize = checkOffset('options.pageSize', o.pageSize);
    let after;
    do {
      const page = await this.#n.listPage(prefix, recursive, after, pageSize);
      for (const entry of page.entries) yield toEntry(entry);
      after = page.next;
    } while (after !== undefined && after !== null);
  }

  batch(ops) {
    return later(() => {
      if (!Array.isArray(ops)) throw typeError('ops', 'an array', ops);
      const nativeOps = ops.map((op, i) => {
        checkObject(`ops[${i}]`, op);
        checkString(`ops[${i}].key`, op.key);
        if (op.op === 'put') {
          return {
            op: 'put',
            key: op.key,
            data: toBuffer(op.data, `ops[${i}].data`),
            metadata: checkMetadata(op.metadata),
            ifNotExists: op.ifNotExists === true,
          };
        }
        return { op: String(op.op), key: op.key };
      });
      return this.#n.batch(nativeOps);
    });
  }

  createReadStream(key, options) {
    checkString('key', key);
    const o = checkObject('options', options);
    const start = checkOffset('options.start', o.start);
    const end = checkOffset('options.end', o.end);
    return new TierfsReadStream(() => this.#n.openRead(key, start, end), o);
  }

  createWriteStream(key, options) {
    checkString('key', key);
    const o = checkObject('options', options);
    const metadata = checkMetadata(o.metadata);
    const storageClass = checkStorageClass(o);
    const ifNotExists = o.ifNotExists === true;
    return new TierfsWriteStream(() => this.#n.openWrite(key, metadata, ifNotExists, storageClass), o);
  }

  setStorageClass(key, storageClass) {
    return later(() => {
      checkString('key', key);
      checkClass('storageClass', storageClass);
      return this.#n.setStorageClass(key, storageClass ?? undefined);
    });
  }

  storageClass(key) {
    return later(() => {
      checkString('key', key);
      return this.#n.storageClass(key).then(toClassInfo);
    });
  }

  setPrefixClass(prefix, storageClass) {
    return later(() => {
      checkString('prefix', prefix);
      checkClass('storageClass', storageClass);
      return this.#n.setPrefixClass(prefix, storageClass ?? undefined);
    });
  }

  prefixClass(prefix) {
    checkString('prefix', prefix);
    return this.#n.prefixClass(prefix) ?? null;
  }

  asPrincipal(principal, options) {
    checkString('principal', principal);
    const o = checkObject('options', options);
    return new Store(CONSTRUCT, this.#n.asPrincipal(principal, o.roles));
  }

  accessPolicy() {
    return later(() => this.#n.accessPolicy());
  }

  addRule(rule) {
    return later(() => {
      const r = checkRule(rule);
      return this.#n.addRule(r.principal, r.resource, r.operation, r.level);
    });
  }

  removeRule(rule) {
    return later(() => {
      const r = checkRule(rule);
      return this.#n.removeRule(r.principal, r.resource, r.operation, r.level);
    });
  }

  addBackend(name, settings) {
    return later(() => {
      checkString('name', name);
      const s = checkObject('settings', settings);
      checkString('settings.type', s.type);
      return this.#n.addBackend(name, s);
    });
  }

  removeBackend(name) {
    return later(() => {
      checkString('name', name);
      return this.#n.removeBackend(name);
    });
  }

  auditLog(query) {
    return later(() => {
      const q = checkObject('query', query);
      checkOptionalString('query.principal', q.principal);
      checkOptionalString('query.keyPrefix', q.keyPrefix);
      checkOptionalString('query.result', q.result);
      return this.#n.auditLog({
        principal: q.principal ?? undefined,
        sinceMs: toMillis('query.since', q.since),
        untilMs: toMillis('query.until', q.until),
        keyPrefix: q.keyPrefix ?? undefined,
        result: q.result ?? undefined,
        limit: checkOffset('query.limit', q.limit),
      });
    });
  }

  explain(operation, key, principal) {
    checkString('operation', operation);
    checkString('key', key);
    if (principal !== undefined && principal !== null) {
      checkString('principal', principal);
    }
    return this.#n.explain(operation, key, principal ?? undefined);
  }

  metrics() {
    return this.#n.metrics();
  }

  metricsPrometheus() {
    return this.#n.metricsPrometheus();
  }

  sync() {
    return later(() => this.#n.sync());
  }

  close() {
    return later(() => this.#n.close());
  }

  getSync(key) {
    checkString('key', key);
    return this.#n.getSync(key);
  }

  putSync(key, data, options) {
    checkString('key', key);
    const o = checkObject('options', options);
    const buf = toBuffer(data);
    const metadata = checkMetadata(o.metadata);
    const storageClass = checkStorageClass(o);
    return toStat(this.#n.putSync(key, buf, metadata, o.ifNotExists === true, storageClass));
  }

  deleteSync(key) {
    checkString('key', key);
    this.#n.deleteSync(key);
  }

  statSync(key) {
    checkString('key', key);
    return toFullStat(this.#n.statSync(key));
  }

  existsSync(key) {
    checkString('key', key);
    return this.#n.existsSync(key);
  }

  listSync(prefix = '', options) {
    checkString('prefix', prefix);
    const o = checkObject('options', options);
    return this.#n.listSync(prefix, o.recursive === true).entries.map(toEntry);
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  Store.prototype[Symbol.asyncDispose] = function asyncDispose() {
    return this.close();
  };
}

function checkRule(rule) {
  const r = checkObject('rule', rule);
  checkString('rule.principal', r.principal);
  checkString('rule.resource', r.resource);
  checkOptionalString('rule.operation', r.operation);
  checkString('rule.level', r.level);
  return { principal: r.principal, resource: r.resource, operation: r.operation ?? undefined, level: r.level };
}

// ---- open ---------------------------------------------------------------------

function open(options) {
  return later(() => {
    const o = checkObject('options', options);
    if (o.config !== undefined && o.config !== null && typeof o.config !== 'string' && typeof o.config !== 'object') {
      throw typeError('options.config', 'a file path or a configuration object', o.config);
    }
    checkOptionalString('options.root', o.root);
    let principal = o.principal;
    let roles;
    if (principal && typeof principal === 'object') {
      roles = principal.roles;
      principal = principal.id;
    }
    checkOptionalString('options.principal', principal);
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
      throw typeError('options.principal.roles', 'an array of strings', roles);
    }
    return native
      .open({ config: o.config ?? undefined, root: o.root ?? undefined, principal: principal ?? undefined, roles })
      .then((n) => new Store(CONSTRUCT, n));
  });
}

// ---- backends written in JavaScript ----------------------------------------------

const REQUIRED_METHODS = ['get', 'put', 'delete', 'stat', 'list'];

function backendError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

function checkImpl(typeName, impl) {
  if (impl === null || typeof impl !== 'object') {
    throw backendError('EINVAL', `backend type \`${typeName}\`: the factory must return an object`);
  }
  const missing = REQUIRED_METHODS.filter((m) => typeof impl[m] !== 'function');
  if (missing.length > 0) {
    throw backendError('EINVAL', `backend type \`${typeName}\` lacks the method(s) ${missing.join(', ')}`);
  }
}

/** Compares keys in UTF-8 byte order (code point order), as the core does. */
function compareKeys(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const sx = x >= 0xd800 && x <= 0xdfff;
      const sy = y >= 0xd800 && y <= 0xdfff;
      if (sx !== sy) return sx ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

function dataFrom(value, typeName, method) {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  throw backendError('EIO', `backend type \`${typeName}\`: ${method}() must resolve to a Buffer, Uint8Array or string`);
}

function statFrom(s, typeName, method) {
  if (!s || typeof s !== 'object' || typeof s.size !== 'number') {
    throw backendError('EIO', `backend type \`${typeName}\`: ${method}() must give an object with a numeric \`size\``);
  }
  let modifiedMs;
  if (s.modified instanceof Date) modifiedMs = s.modified.getTime();
  else if (typeof s.modified === 'number') modifiedMs = s.modified;
  return {
    key: typeof s.key === 'string' ? s.key : undefined,
    size: s.size,
    modifiedMs,
    version: s.version === undefined || s.version === null ? undefined : String(s.version),
    metadata: s.metadata && typeof s.metadata === 'object' ? s.metadata : undefined,
  };
}

function registerBackend(name, impl) {
  checkString('name', name);
  const factory = typeof impl === 'function';
  if (!factory) checkImpl(name, impl);
  const instances = new Map();
  let nextInstance = 1;

  async function create(req) {
    const settings = req.settings ?? {};
    let obj = impl;
    if (factory) {
      obj = await impl(settings, { name: req.name });
    } else if (Object.keys(settings).length > 0) {
      throw backendError(
        'EINVAL',
        `backend type \`${name}\` takes no settings (got ${Object.keys(settings).join(', ')}); ` +
          'register a factory function to receive them',
      );
    }
    checkImpl(name, obj);
    const instance = nextInstance++;
    instances.set(instance, obj);
    return {
      instance,
      capabilities: {
        atomicBatch: typeof obj.batch === 'function',
        rangeRead: typeof obj.getRange === 'function',
        persistent: obj.persistent === true,
        shared: obj.shared === true,
        conditionalPut: obj.conditionalPut === true,
      },
    };
  }

  async function list(obj, req) {
    const prefix = req.prefix ?? '';
    const after = req.startAfter;
    const options = { limit: req.limit };
    if (after !== undefined && after !== null) options[req.inclusive ? 'startAt' : 'startAfter'] = after;
    const result = await obj.list(prefix, options);
    if (!Array.isArray(result)) throw backendError('EIO', `backend type \`${name}\`: list() must resolve to an array`);
    const entries = [];
    for (const e of result) {
      const s = statFrom(e, name, 'list');
      if (s.key === undefined) throw backendError('EIO', `backend type \`${name}\`: list() gave an entry without \`key\``);
      if (!s.key.startsWith(prefix)) continue;
      if (after !== undefined && after !== null) {
        const c = compareKeys(s.key, after);
        if (c < 0 || (c === 0 && !req.inclusive)) continue;
      }
      entries.push(s);
    }
    entries.sort((a, b) => compareKeys(a.key, b.key));
    if (req.limit !== undefined && entries.length > req.limit) entries.length = req.limit;
    return { entries };
  }

  async function call(req) {
    if (req.op === 'create') return create(req);
    const obj = instances.get(req.instance);
    if (req.op === 'release') {
      instances.delete(req.instance);
      return {};
    }
    if (obj === undefined) throw backendError('EIO', `backend type \`${name}\`: instance ${req.instance} is gone`);
    switch (req.op) {
      case 'get':
        return { data: dataFrom(await obj.get(req.key), name, 'get') };
      case 'getRange':
        return { data: dataFrom(await obj.getRange(req.key, req.start, req.end), name, 'getRange') };
      case 'put': {
        const r = await obj.put(req.key, req.data, { metadata: req.metadata ?? {}, ifNotExists: req.ifNotExists === true });
        return { stat: r && typeof r === 'object' && typeof r.size === 'number' ? statFrom(r, name, 'put') : undefined };
      }
      case 'delete':
        await obj.delete(req.key);
        return {};
      case 'stat':
        return { stat: statFrom(await obj.stat(req.key), name, 'stat') };
      case 'list':
        return list(obj, req);
      case 'batch':
        await obj.batch(
          req.ops.map((op) =>
            op.op === 'put'
              ? { op: 'put', key: op.key, data: op.data, metadata: op.metadata ?? {}, ifNotExists: op.ifNotExists === true }
              : { op: 'delete', key: op.key },
          ),
        );
        return {};
      default:
        throw backendError('ENOTSUP', `backend type \`${name}\`: unknown operation ${req.op}`);
    }
  }

  // Never rejects: an error travels back as data, with its `code`.
  function dispatch(req) {
    return later(() => call(req)).catch((err) => ({
      error: {
        code: err && typeof err.code === 'string' ? err.code : undefined,
        message: err && err.message !== undefined ? String(err.message) : String(err),
      },
    }));
  }

  native.registerBackend(name, dispatch);
}

function backendTypes() {
  return native.backendTypes();
}

module.exports = { open, Store, registerBackend, backendTypes };
