//! `NativeStore`: a [`StorageManager`] seen by one principal. Every
//! storage call goes through a core [`Session`], so access control, audit,
//! routing, policies and metrics are exactly those of every other face.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, BufferSlice, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use parking_lot::RwLock;
use serde_json::Value;
use tierfs_core::access::{AccessRule, Principal, StorageOperationType};
use tierfs_core::config::BackendConfig;
use tierfs_core::{
    ClassInfo, Condition, Config, Error, ErrorKind, Key, ListOptions, MetadataChanges, ObjectMeta, Patch,
    PutOptions, Result, Session, Storage, StorageManager,
};

use crate::convert::{
    self, buffer, bytes_to_js, stat, stat_with_class, NativeAuditQuery, NativeBatchOp, NativeClassInfo,
    NativeListPage, NativeStat, Pending, PendingOp,
};
use crate::error::invalid;
use crate::stream::{NativeReader, NativeWriter};
use crate::task::{block, plain, promise, settled};

/// The manager shared by a store and every store `asPrincipal` derived from
/// it; `close` on any of them closes it for all.
struct Handle {
    manager: RwLock<Option<StorageManager>>,
}

/// How to open a store (see `open` in `index.d.ts`).
#[napi(object)]
pub struct NativeOpenOptions {
    /// A configuration file path, or a configuration object shaped like the TOML file.
    pub config: Option<Value>,
    /// The directory of the embedded default store.
    pub root: Option<String>,
    /// Who the store acts as (default: the current OS user).
    pub principal: Option<String>,
    /// The principal's roles (without the `role:` prefix).
    pub roles: Option<Vec<String>>,
}

/// A store: every operation of the manager, as one principal.
#[napi]
pub struct NativeStore {
    handle: Arc<Handle>,
    principal: Principal,
}

fn principal(id: Option<String>, roles: Option<Vec<String>>) -> Result<Principal> {
    let mut p = match id {
        Some(id) if id.is_empty() || id.chars().any(char::is_control) => {
            return Err(invalid(format!("principal `{id}` is not a user id; give a non-empty name")))
        }
        Some(id) => Principal::new(id),
        None => Principal::current_user(),
    };
    for role in roles.unwrap_or_default() {
        p = p.with_role(role);
    }
    Ok(p)
}

/// The configuration `options` describe.
fn config_of(config: Option<Value>, root: Option<String>) -> Result<Config> {
    match (config, root) {
        (Some(_), Some(_)) => Err(Error::new(
            ErrorKind::Config,
            "give `config` (a file or an object) or `root` (the embedded default store), not both",
        )),
        (None | Some(Value::Null), root) => Config::embedded_default(root.as_deref().map(Path::new)),
        (Some(Value::String(path)), None) => Config::load(Path::new(&path)),
        (Some(Value::Object(map)), None) => {
            let table = convert::json_to_table(&map, "").map_err(|e| {
                Error::new(ErrorKind::Config, format!("configuration object: {}", e.message()))
            })?;
            let text = toml::to_string(&table).map_err(|e| {
                Error::new(ErrorKind::Config, format!("configuration object: {e}; use TOML-shaped values"))
            })?;
            Config::parse(&text, None)
        }
        (Some(other), None) => Err(Error::new(
            ErrorKind::Config,
            format!("`config` is {other}; give a file path or an object shaped like the TOML file"),
        )),
    }
}

/// A JavaScript number as a byte offset.
fn offset(n: f64, what: &str) -> Result<u64> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(invalid(format!("`{what}` is {n}; give a whole number of bytes, 0 or more")))
    }
}

/// The byte range `start..end` (`end` omitted: to the end of the value).
pub fn range(start: Option<f64>, end: Option<f64>) -> Result<std::ops::Range<u64>> {
    let start = start.map(|s| offset(s, "start")).transpose()?.unwrap_or(0);
    let end = end.map(|e| offset(e, "end")).transpose()?.unwrap_or(u64::MAX);
    if end < start {
        return Err(invalid(format!("the range {start}..{end} ends before it starts")));
    }
    Ok(start..end)
}

/// The options of `put`, `putSync` and `openWrite`.
fn put_options(
    metadata: Option<HashMap<String, String>>,
    if_not_exists: Option<bool>,
    storage_class: Option<String>,
) -> PutOptions {
    PutOptions {
        metadata: convert::metadata(metadata),
        if_not_exists: if_not_exists.unwrap_or(false),
        storage_class,
    }
}

fn list_options(prefix: Option<String>, recursive: Option<bool>, start_after: Option<String>) -> ListOptions {
    ListOptions {
        prefix: prefix.unwrap_or_default(),
        recursive: recursive.unwrap_or(false),
        start_after,
        limit: None,
    }
}

async fn exists(session: &Session, key: String) -> Result<bool> {
    let key = Key::new(key)?;
    match session.stat(&key).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

async fn list_all(session: &Session, mut options: ListOptions) -> Result<NativeListPage> {
    let mut all = NativeListPage { entries: Vec::new(), next: None };
    loop {
        let page = session.list(&options).await?;
        let next = page.next.clone();
        all.entries.extend(NativeListPage::from(page).entries);
        match next {
            Some(after) => options.start_after = Some(after),
            None => return Ok(all),
        }
    }
}

fn rule(principal: String, resource: String, operation: Option<String>, level: String) -> Result<AccessRule> {
    AccessRule::parse(&principal, &resource, operation.as_deref().unwrap_or("*"), &level)
}

fn backend_config(settings: Value) -> Result<BackendConfig> {
    let Value::Object(mut map) = settings else {
        return Err(invalid("backend settings must be an object such as { type: 'memory' }"));
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => return Err(invalid("backend settings need `type`, a registered backend type such as 'local'")),
    };
    Ok(BackendConfig { kind, settings: convert::json_to_table(&map, "")? })
}

/// Opens a store: the configuration file or object in `options.config`,
/// the embedded default in `options.root`, or the embedded default in the
/// user's data directory.
#[napi]
pub fn open(env: &Env, options: Option<NativeOpenOptions>) -> napi::Result<PromiseRaw<'_, NativeStore>> {
    let options =
        options.unwrap_or(NativeOpenOptions { config: None, root: None, principal: None, roles: None });
    let fut = async move {
        let principal = principal(options.principal, options.roles)?;
        let config = config_of(options.config, options.root)?;
        let manager = StorageManager::with_registry(config, crate::registry::shared()).await?;
        Ok(NativeStore { handle: Arc::new(Handle { manager: RwLock::new(Some(manager)) }), principal })
    };
    promise(env, fut, plain)
}

impl NativeStore {
    fn session(&self) -> Result<Session> {
        match &*self.handle.manager.read() {
            Some(manager) => Ok(manager.session(self.principal.clone())),
            None => Err(Error::new(ErrorKind::Unavailable, "the store is closed; open it again")),
        }
    }

    fn put_pending<'env>(
        &self,
        env: &'env Env,
        key: String,
        data: Pending,
        options: PutOptions,
    ) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let session = self.session();
        let fut = async move {
            let key = Key::new(key)?;
            session?.put(&key, data.into_bytes(), options).await
        };
        promise(env, fut, stat)
    }

    fn manager(&self) -> Result<StorageManager> {
        match &*self.handle.manager.read() {
            Some(manager) => Ok(manager.clone()),
            None => Err(Error::new(ErrorKind::Unavailable, "the store is closed; open it again")),
        }
    }
}

#[napi]
impl NativeStore {
    /// The principal's user id.
    #[napi(getter)]
    pub fn principal(&self) -> String {
        self.principal.id().to_owned()
    }

    /// The whole value of `key`.
    #[napi]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, BufferSlice<'env>>> {
        let session = self.session();
        if let (Ok(session), Ok(k)) = (&session, Key::new(key.as_str())) {
            // A value in process memory (the memory backend, no access
            // rules): answered here, with no trip to the runtime.
            if let Some(out) = session.get_now(&k) {
                return settled(env, out, buffer);
            }
        }
        promise(env, async move { session?.get(&Key::new(key)?).await }, buffer)
    }

    /// Bytes `start..end` of the value of `key`, clamped to its size.
    #[napi]
    pub fn get_range<'env>(
        &self,
        env: &'env Env,
        key: String,
        start: Option<f64>,
        end: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, BufferSlice<'env>>> {
        let session = self.session();
        let fut = async move {
            let r = range(start, end)?;
            session?.get_range(&Key::new(key)?, r).await
        };
        promise(env, fut, buffer)
    }

    /// Stores `data` under `key`, replacing the value and its metadata, in
    /// `storage_class` if given. The bytes are copied now, on the calling
    /// thread (values up to 256 KiB; larger ones go through `putLarge`).
    #[napi]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        key: String,
        data: &[u8],
        metadata: Option<HashMap<String, String>>,
        if_not_exists: Option<bool>,
        storage_class: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let value = bytes::Bytes::copy_from_slice(data);
        let options = put_options(metadata, if_not_exists, storage_class);
        if let (Ok(session), Ok(k)) = (self.session(), Key::new(key.as_str())) {
            // Stored in process memory (see `get`): settled here. A write
            // naming a storage class never is (the session declines it).
            if let Some(out) = session.put_now(&k, &value, &options) {
                return settled(env, out, stat);
            }
        }
        self.put_pending(env, key, Pending::Ready(value), options)
    }

    /// `put` for large values: the caller's buffer is referenced and copied
    /// off the JavaScript thread.
    #[napi]
    pub fn put_large<'env>(
        &self,
        env: &'env Env,
        key: String,
        data: Buffer,
        metadata: Option<HashMap<String, String>>,
        if_not_exists: Option<bool>,
        storage_class: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let options = put_options(metadata, if_not_exists, storage_class);
        self.put_pending(env, key, Pending::new(data), options)
    }

    /// Removes `key`; a missing key is not an error.
    #[napi]
    pub fn delete<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        promise(env, async move { session?.delete(&Key::new(key)?).await }, plain)
    }

    /// Size, time, version and metadata of `key`.
    #[napi]
    pub fn stat<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let session = self.session();
        promise(env, async move { stat_and_class(&session?, key).await }, stat_with_class)
    }

    /// Whether `key` holds a value.
    #[napi]
    pub fn exists<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, bool>> {
        let session = self.session();
        promise(env, async move { exists(&session?, key).await }, plain)
    }

    /// One page of the listing of `prefix`, after `start_after`.
    #[napi]
    pub fn list_page<'env>(
        &self,
        env: &'env Env,
        prefix: Option<String>,
        recursive: Option<bool>,
        start_after: Option<String>,
        limit: Option<u32>,
    ) -> napi::Result<PromiseRaw<'env, NativeListPage>> {
        let session = self.session();
        let mut options = list_options(prefix, recursive, start_after);
        options.limit = limit.map(|l| l as usize);
        promise(env, async move { session?.list(&options).await }, |env, page| {
            plain(env, NativeListPage::from(page))
        })
    }

    /// Applies every operation or none.
    #[napi]
    pub fn batch<'env>(&self, env: &'env Env, ops: Vec<NativeBatchOp>) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let ops: Vec<PendingOp> = ops.into_iter().map(PendingOp::from).collect();
        let fut = async move {
            let ops =
                ops.into_iter().enumerate().map(|(i, op)| op.into_core(i)).collect::<Result<Vec<_>>>()?;
            session?.batch(ops).await
        };
        promise(env, fut, plain)
    }

    /// Changes the metadata of `key` without rewriting its value: sets the
    /// entries of `set`, drops those named in `remove` (or every other one
    /// with `replace`), only while the version is `if_version` if given.
    #[napi]
    pub fn set_metadata<'env>(
        &self,
        env: &'env Env,
        key: String,
        set: Option<HashMap<String, String>>,
        remove: Option<Vec<String>>,
        replace: Option<bool>,
        if_version: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let session = self.session();
        let changes = MetadataChanges {
            set: convert::metadata(set),
            remove: remove.unwrap_or_default().into_iter().collect(),
            replace: replace.unwrap_or(false),
        };
        let condition = if_version.map_or(Condition::Exists, Condition::VersionIs);
        let fut = async move { session?.set_metadata(&Key::new(key)?, &changes, &condition).await };
        promise(env, fut, stat)
    }

    /// Changes part of the value of `key` in one step: `length` first (a
    /// truncation or an extension with zeros), then `datas[i]` written at
    /// `offsets[i]` in order, then the entries of `metadata` set; only while
    /// the version is `if_version` if given.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn patch<'env>(
        &self,
        env: &'env Env,
        key: String,
        offsets: Vec<i64>,
        datas: Vec<&[u8]>,
        length: Option<i64>,
        metadata: Option<HashMap<String, String>>,
        if_version: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let session = self.session();
        let mut patch = Patch::new();
        if let Some(length) = length {
            patch = patch.set_len(u64::try_from(length).unwrap_or(0));
        }
        for (offset, data) in offsets.into_iter().zip(datas) {
            patch.push_write(u64::try_from(offset).unwrap_or(0), bytes::Bytes::copy_from_slice(data));
        }
        if let Some(metadata) = metadata {
            patch = patch
                .metadata(MetadataChanges { set: convert::metadata(Some(metadata)), ..Default::default() });
        }
        let condition = if_version.map_or(Condition::Exists, Condition::VersionIs);
        let fut = async move { session?.patch(&Key::new(key)?, &patch, &condition).await };
        promise(env, fut, stat)
    }

    /// Moves the value and metadata of `from` to `to`.
    #[napi]
    pub fn rename<'env>(
        &self,
        env: &'env Env,
        from: String,
        to: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move { session?.rename(&Key::new(from)?, &Key::new(to)?).await };
        promise(env, fut, plain)
    }

    /// Starts a streamed read of `key` (bytes `start..end`).
    #[napi]
    pub fn open_read<'env>(
        &self,
        env: &'env Env,
        key: String,
        start: Option<f64>,
        end: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, NativeReader>> {
        let session = self.session();
        let fut = async move {
            let key = Key::new(key)?;
            let r = range(start, end)?;
            let whole = r.start == 0 && r.end == u64::MAX;
            let stream = session?.read(&key, (!whole).then_some(r)).await?;
            Ok(NativeReader::spawn(stream))
        };
        promise(env, fut, plain)
    }

    /// Starts a streamed write of `key` (in `storage_class` if given);
    /// nothing is visible until `finish`.
    #[napi]
    pub fn open_write<'env>(
        &self,
        env: &'env Env,
        key: String,
        metadata: Option<HashMap<String, String>>,
        if_not_exists: Option<bool>,
        storage_class: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, NativeWriter>> {
        let session = self.session();
        let options = put_options(metadata, if_not_exists, storage_class);
        let fut = async move {
            let key = Key::new(key)?;
            let writer = session?.write(&key, options).await?;
            Ok(NativeWriter::new(writer))
        };
        promise(env, fut, plain)
    }

    /// Keeps `key` in storage class `storage_class` from now on (`None`
    /// takes the key's own class off: it inherits its prefix's, or its
    /// route places it). Its data moves in the background. Needs write
    /// access to the key.
    #[napi]
    pub fn set_storage_class<'env>(
        &self,
        env: &'env Env,
        key: String,
        storage_class: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move { session?.set_storage_class(&Key::new(key)?, storage_class.as_deref()).await };
        promise(env, fut, plain)
    }

    /// The storage class of `key`, where it is inherited from, the
    /// backends that hold the key and whether it is still moving there.
    /// Needs read access to the key.
    #[napi]
    pub fn storage_class<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, NativeClassInfo>> {
        let session = self.session();
        let fut = async move { session?.storage_class(&Key::new(key)?).await };
        promise(env, fut, |env, info| plain(env, NativeClassInfo::from(info)))
    }

    /// Gives every key under `prefix` (`""` or ending in `/`) storage class
    /// `storage_class` unless the key has its own (`None` takes the
    /// prefix's class off). Needs admin on the prefix.
    #[napi]
    pub fn set_prefix_class<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        storage_class: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move { session?.set_prefix_class(&prefix, storage_class.as_deref()).await };
        promise(env, fut, plain)
    }

    /// The storage class in force under `prefix` (its own, else the
    /// nearest enclosing prefix's); `None` when keys there have only
    /// their route.
    #[napi]
    pub fn prefix_class(&self, env: Env, prefix: String) -> napi::Result<Option<String>> {
        let session = self.session().map_err(|e| crate::error::to_js(&env, &e))?;
        Ok(session.prefix_class(&prefix))
    }

    /// The same store acting as another principal.
    #[napi]
    pub fn as_principal(
        &self,
        env: Env,
        id: String,
        roles: Option<Vec<String>>,
    ) -> napi::Result<NativeStore> {
        let principal = principal(Some(id), roles).map_err(|e| crate::error::to_js(&env, &e))?;
        Ok(NativeStore { handle: self.handle.clone(), principal })
    }

    /// The access rules in force (needs admin on `*`).
    #[napi]
    pub fn access_policy<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Value>> {
        let session = self.session();
        let fut = async move { session?.access_policy() };
        promise(env, fut, |env, policy| plain(env, convert::policy_to_json(&policy)))
    }

    /// Adds an access rule (needs admin on its resource, granting no more than the caller holds).
    #[napi]
    pub fn add_rule<'env>(
        &self,
        env: &'env Env,
        principal: String,
        resource: String,
        operation: Option<String>,
        level: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move {
            let rule = rule(principal, resource, operation, level)?;
            session?.add_access_rule(rule).await
        };
        promise(env, fut, plain)
    }

    /// Removes an access rule; `ENOENT` if no such rule is in force.
    #[napi]
    pub fn remove_rule<'env>(
        &self,
        env: &'env Env,
        principal: String,
        resource: String,
        operation: Option<String>,
        level: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move {
            let rule = rule(principal, resource, operation, level)?;
            session?.remove_access_rule(&rule).await
        };
        promise(env, fut, plain)
    }

    /// Adds backend `name` from `{ type, ...settings }` (needs admin on `@name`).
    #[napi]
    pub fn add_backend<'env>(
        &self,
        env: &'env Env,
        name: String,
        settings: Value,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        let fut = async move {
            let config = backend_config(settings)?;
            session?.add_backend(&name, config).await
        };
        promise(env, fut, plain)
    }

    /// Removes backend `name`, which no route or policy may use (needs admin on `@name`).
    #[napi]
    pub fn remove_backend<'env>(&self, env: &'env Env, name: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let session = self.session();
        promise(env, async move { session?.remove_backend(&name).await }, plain)
    }

    /// Audit records matching `query` (needs admin on `*`).
    #[napi]
    pub fn audit_log<'env>(
        &self,
        env: &'env Env,
        query: Option<NativeAuditQuery>,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let session = self.session();
        let fut = async move {
            let query = match query {
                Some(q) => q.into_core()?,
                None => Default::default(),
            };
            convert::audit_to_json(session?.audit_log(&query)?)
        };
        promise(env, fut, plain)
    }

    /// Whether `operation` on `key` would be allowed for `principal`
    /// (default: this store's), and why. Another principal's rights need
    /// admin on the key; audited.
    #[napi]
    pub fn explain(
        &self,
        env: Env,
        operation: String,
        key: String,
        principal: Option<String>,
    ) -> napi::Result<Value> {
        let explained = self.session().and_then(|s| {
            let op: StorageOperationType = operation.parse()?;
            let who = match principal {
                Some(id) => self::principal(Some(id), None)?,
                None => self.principal.clone(),
            };
            s.explain(&who, op, &key)
        });
        let e = explained.map_err(|e| crate::error::to_js(&env, &e))?;
        Ok(serde_json::json!({
            "principal": e.principal,
            "operation": e.operation.as_str(),
            "key": e.key,
            "allowed": e.allowed,
            "level": e.level.as_str(),
            "rule": e.rule.map(|r| r.to_string()),
            "route": { "prefix": e.route.prefix, "policy": e.route.policy, "backends": e.route.backends },
            "cache": e.cache.map(|c| match c {
                tierfs_core::manager::CacheVerdict::NoCache => "none",
                tierfs_core::manager::CacheVerdict::Hit => "hit",
                tierfs_core::manager::CacheVerdict::Miss => "miss",
                tierfs_core::manager::CacheVerdict::Unknown => "unknown",
            }),
            "placement": e.placement,
            "storageClass": e.storage_class,
            "quota": e.quota.map(|q| serde_json::json!({
                "prefix": q.prefix,
                "maxBytes": q.max_bytes,
                "maxKeys": q.max_keys,
                "usedBytes": q.used.bytes,
                "usedKeys": q.used.keys,
            })),
        }))
    }

    /// Counters of every backend and operation, now.
    #[napi]
    pub fn metrics(&self, env: Env) -> napi::Result<Value> {
        let manager = self.manager().map_err(|e| crate::error::to_js(&env, &e))?;
        Ok(convert::metrics_to_json(&manager.metrics()))
    }

    /// The metrics in the Prometheus text format.
    #[napi]
    pub fn metrics_prometheus(&self, env: Env) -> napi::Result<String> {
        let manager = self.manager().map_err(|e| crate::error::to_js(&env, &e))?;
        Ok(manager.metrics().to_prometheus())
    }

    /// Flushes write-back caches and makes acknowledged writes durable.
    #[napi]
    pub fn sync<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let manager = self.manager();
        promise(env, async move { manager?.sync().await }, plain)
    }

    /// Flushes and closes the store (and every store derived from it with
    /// `asPrincipal`); later calls fail with `EIO`. Closing twice is harmless.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let manager = self.handle.manager.write().take();
        let fut = async move {
            match manager {
                Some(m) => m.shutdown().await,
                None => Ok(()),
            }
        };
        promise(env, fut, plain)
    }

    /// `get`, blocking the calling thread.
    #[napi]
    pub fn get_sync<'env>(&self, env: &'env Env, key: String) -> napi::Result<BufferSlice<'env>> {
        let bytes = block(env, async { self.session()?.get(&Key::new(key)?).await })?;
        bytes_to_js(env, bytes)
    }

    /// `put`, blocking the calling thread.
    #[napi]
    pub fn put_sync(
        &self,
        env: Env,
        key: String,
        data: &[u8],
        metadata: Option<HashMap<String, String>>,
        if_not_exists: Option<bool>,
        storage_class: Option<String>,
    ) -> napi::Result<NativeStat> {
        let options = put_options(metadata, if_not_exists, storage_class);
        let value = bytes::Bytes::copy_from_slice(data);
        let meta = block(&env, async { self.session()?.put(&Key::new(key)?, value, options).await })?;
        Ok(meta.into())
    }

    /// `delete`, blocking the calling thread.
    #[napi]
    pub fn delete_sync(&self, env: Env, key: String) -> napi::Result<()> {
        block(&env, async { self.session()?.delete(&Key::new(key)?).await })
    }

    /// `stat`, blocking the calling thread.
    #[napi]
    pub fn stat_sync(&self, env: Env, key: String) -> napi::Result<NativeStat> {
        Ok(block(&env, async { stat_and_class(&self.session()?, key).await })?.into())
    }

    /// `exists`, blocking the calling thread.
    #[napi]
    pub fn exists_sync(&self, env: Env, key: String) -> napi::Result<bool> {
        block(&env, async { exists(&self.session()?, key).await })
    }

    /// Every entry of the listing of `prefix`, blocking the calling thread.
    #[napi]
    pub fn list_sync(
        &self,
        env: Env,
        prefix: Option<String>,
        recursive: Option<bool>,
    ) -> napi::Result<NativeListPage> {
        let options = list_options(prefix, recursive, None);
        block(&env, async { list_all(&self.session()?, options).await })
    }
}

/// `key`'s stat and its storage class (what `stat` reports).
async fn stat_and_class(session: &Session, key: String) -> tierfs_core::Result<(ObjectMeta, ClassInfo)> {
    let key = Key::new(key)?;
    let meta = session.stat(&key).await?;
    Ok((meta, session.storage_class(&key).await?))
}
