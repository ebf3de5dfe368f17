//! Storage classes in the manager: where an operation on a key goes (its
//! class, from the index), the class calls of a [`Session`], listings that
//! merge every place, and the moves a class change starts.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::OwnedRwLockReadGuard;

use super::router::Route;
use super::security::Check;
use super::state::ManagerState;
use super::{Session, Shared};
use crate::access::StorageOperationType as Op;
use crate::classes::moves::{delete_if_present, settle, Moving};
use crate::classes::{is_reserved, same_place, ClassIndex, Entry, Origin, Via};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{validate_prefix, Key};
use crate::storage::{
    copy_value, merge_list, BatchOp, KeyFilter, ListEntry, ListOptions, ListPage, MergeSource, Operation,
    Storage, StorageExt,
};

/// Keys a prefix's move settles at once.
const MOVE_CONCURRENCY: usize = 16;

/// Wait before retrying a move that failed (a backend down).
const RETRY: Duration = Duration::from_secs(2);

/// A key's storage class as [`Session::storage_class`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    /// The class; `None` when neither the key nor a prefix above it has
    /// one (its route's policy places it).
    pub class: Option<String>,
    /// The prefix the class is inherited from; `None` when the key was
    /// given it (or has none).
    pub inherited_from: Option<String>,
    /// The backends of the stack that holds the key.
    pub backends: Vec<String>,
    /// Whether its data is still moving to them.
    pub moving: bool,
}

/// Where a key is, by the class index.
pub(crate) struct Located<'a> {
    pub at: &'a Route,
    /// Where its data is moving from, while it moves.
    pub from: Option<&'a Route>,
    pub class: Option<Arc<str>>,
    pub via: Option<Via>,
}

impl ManagerState {
    /// Where `key` is: its route, unless the index gives it (or a prefix
    /// above it) a class.
    pub(crate) fn locate(&self, index: &ClassIndex, key: &str) -> Result<Located<'_>> {
        let route = self.router.route(key);
        let Some((entry, via)) = index.lookup(key) else {
            return Ok(Located { at: route, from: None, class: None, via: None });
        };
        let at = self.classes.place(route, entry.class.as_deref()).map_err(|e| e.with_key(key))?;
        let from = match &entry.from {
            Some(origin) => match self.classes.place(route, origin.class.as_deref()) {
                Ok(from) => (!same_place(from, at)).then_some(from),
                Err(e) => {
                    tracing::warn!(key, error = %e, "the class a key moves from is gone; its data there is not read");
                    None
                }
            },
            None => None,
        };
        Ok(Located { at, from, class: entry.class, via: Some(via) })
    }
}

impl ManagerState {
    /// Where `key` is, when it is not moving (`None` while it moves): the
    /// lookup of [`ManagerState::locate`] without copying the entry.
    #[inline]
    pub(crate) fn settled_place(&self, index: &ClassIndex, key: &str) -> Option<Result<&Route>> {
        index.settled(key, |found| {
            let route = self.router.route(key);
            match found {
                None => Ok(route),
                Some(class) => self.classes.place(route, class).map_err(|e| e.with_key(key)),
            }
        })
    }
}

/// Where an operation on one key goes, holding the key's shared lock
/// while the caller uses it (a move waits for it), or for a read, the
/// key's move count seen (the read is good if it is the same after).
pub(crate) struct Target {
    pub stack: Arc<dyn Storage>,
    /// No index lookup was made (the index was empty): a read that finds
    /// nothing asks again if the index has entries since.
    pub unindexed: bool,
    pub guard: Option<OwnedRwLockReadGuard<()>>,
    /// A read without the lock: the move count of the key's stripe when
    /// it was placed (see [`KeyLocks::moving`](crate::key_locks::KeyLocks::moving)).
    pub moves: Option<u32>,
}

impl Target {
    /// Whether a read through this target may have overlapped a move (it
    /// is then done again under the key's lock).
    pub fn overlapped(&self, index: &ClassIndex, key: &Key) -> bool {
        moved_since(self.moves, index, key)
    }
}

/// Whether `key`'s move count is no longer `seen` (a read that noted it
/// may have overlapped a move); `false` for a read that noted none.
#[inline]
fn moved_since(seen: Option<u32>, index: &ClassIndex, key: &Key) -> bool {
    seen.is_some_and(|seen| index.locks.move_count(key.as_str()) != seen)
}

pub(crate) fn reserved(key: &Key) -> Result<()> {
    if is_reserved(key.as_str()) {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "keys under `{}` are the store's own (its class index); choose another name",
                crate::CLASS_INDEX_PREFIX
            ),
        )
        .with_key(key.as_str()));
    }
    Ok(())
}

/// Where a read goes when that is known without waiting, borrowed from
/// the state (see [`Session::place_now`]).
pub(crate) struct Placed<'s> {
    pub route: &'s Route,
    /// As [`Target::unindexed`].
    pub unindexed: bool,
    /// As [`Target::moves`].
    pub moves: Option<u32>,
}

impl Placed<'_> {
    /// The [`Target`] for the whole call.
    pub fn target(&self) -> Target {
        Target { stack: self.route.stack.clone(), unindexed: self.unindexed, guard: None, moves: self.moves }
    }

    /// Whether a read through this place may have overlapped a move.
    #[inline]
    pub fn overlapped(&self, index: &ClassIndex, key: &Key) -> bool {
        moved_since(self.moves, index, key)
    }
}

impl Session {
    /// Where a read of `key` goes, when that is known without waiting:
    /// the index is empty, or the key is settled (no lock is taken; the
    /// key's move count is noted, and the read is good if it is the same
    /// after). `None` while the key moves: [`Session::place`] then waits.
    #[inline]
    pub(crate) fn place_now<'s>(&self, state: &'s ManagerState, key: &Key) -> Option<Result<Placed<'s>>> {
        if let Err(e) = reserved(key) {
            return Some(Err(e));
        }
        let index = &self.shared().classes;
        if !index.active() {
            return Some(Ok(Placed { route: state.router.route(key), unindexed: true, moves: None }));
        }
        let seen = index.locks.move_count(key.as_str());
        if seen % 2 == 1 {
            return None;
        }
        let at = state.settled_place(index, key.as_str())?;
        Some(at.map(|route| Placed { route, unindexed: false, moves: Some(seen) }))
    }

    /// Where an operation on `key` goes (checked by the caller). Changes
    /// always hold the key's shared lock; reads of a settled key take none
    /// ([`Session::place_now`]).
    pub(crate) async fn place(&self, state: &ManagerState, key: &Key, changes: bool) -> Result<Target> {
        if !changes {
            if let Some(placed) = self.place_now(state, key) {
                return placed.map(|p| p.target());
            }
            return self.place_locked(state, key).await;
        }
        reserved(key)?;
        let index = &self.shared().classes;
        if !index.active() {
            let guard = index.locks.read_owned(key.as_str()).await;
            if !index.active() {
                let route = state.router.route(key);
                return Ok(Target {
                    stack: route.stack.clone(),
                    unindexed: false,
                    guard: Some(guard),
                    moves: None,
                });
            }
        }
        self.place_locked(state, key).await
    }

    /// [`Session::place`] under the key's shared lock.
    pub(crate) async fn place_locked(&self, state: &ManagerState, key: &Key) -> Result<Target> {
        let index = &self.shared().classes;
        let guard = index.locks.read_owned(key.as_str()).await;
        let located = state.locate(index, key.as_str())?;
        Ok(match located.from {
            None => {
                Target { stack: located.at.stack.clone(), unindexed: false, guard: Some(guard), moves: None }
            }
            Some(from) => {
                drop(guard);
                let moving = Moving::new(located.at.stack.clone(), from.stack.clone(), index.clone());
                Target { stack: Arc::new(moving), unindexed: false, guard: None, moves: None }
            }
        })
    }

    /// The storage class of `key`, where it inherits it from, and the
    /// backends that hold it. Needs read access to the key.
    ///
    /// ```
    /// use tierfs_core::{Config, Key, PutOptions, Storage, StorageManager};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let config = Config::parse(&format!(
    ///     "[backends.disk]\ntype = \"local\"\npath = \"{}\"\n[backends.ram]\ntype = \"memory\"\n\
    ///      [policy]\ntype = \"always_local\"\nbackend = \"disk\"\n",
    ///     dir.path().display()
    /// ), None)?;
    /// let manager = StorageManager::open(config).await?;
    /// let store = manager.session("alice");
    /// let key = Key::new("scratch/tmp.bin")?;
    /// let options = PutOptions { storage_class: Some("cache_only".into()), ..Default::default() };
    /// store.put(&key, "short-lived".into(), options).await?;
    /// let info = store.storage_class(&key).await?;
    /// assert_eq!(info.class.as_deref(), Some("cache_only"));
    /// assert_eq!(info.backends, ["ram"]);
    /// manager.shutdown().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn storage_class(&self, key: &Key) -> Result<ClassInfo> {
        reserved(key)?;
        let state = self.state();
        self.authorize(&state, Operation::Stat.audit_label(), &[Check::key(Op::Read, key)])?;
        let located = state.locate(&self.shared().classes, key.as_str())?;
        Ok(ClassInfo {
            class: located.class.map(|c| c.to_string()),
            inherited_from: match located.via {
                Some(Via::Prefix(p)) => Some(p),
                _ => None,
            },
            backends: located.at.backends.clone(),
            moving: located.from.is_some(),
        })
    }

    /// Gives `key` storage class `class` (`None` takes its own class off:
    /// it inherits its prefix's, or its route places it). Its data moves
    /// in the background; readers find it throughout, and a restart
    /// resumes the move. A class nobody can provide is refused here.
    /// Needs write access to the key.
    pub async fn set_storage_class(&self, key: &Key, class: Option<&str>) -> Result<()> {
        reserved(key)?;
        let state = self.state();
        self.authorize(&state, Operation::SetClass.audit_label(), &[Check::key(Op::Write, key)])?;
        self.check_profile(&state, class, key.as_str())?;
        let route = state.router.route(key);
        if let Some(name) = class {
            state.classes.place(route, Some(name))?;
        }
        let index = &self.shared().classes;
        let exclusive = index.locks.write_owned(key.as_str()).await;
        let settled = class.map(|c| Entry::settled(Some(c.into())));
        if index.key_entry(key.as_str()) == settled {
            return Ok(());
        }
        let located = state.locate(index, key.as_str())?;
        if let Some(from) = located.from {
            settle(&index.locks, &*located.at.stack, &*from.stack, key).await?;
        }
        let inherited = inherited_class(index, key.as_str());
        let wanted = class.map(Arc::from).or(inherited);
        let to = state.classes.place(route, wanted.as_deref())?;
        let store = state.router.default_route().stack.clone();
        let present = match located.at.stack.stat(key).await {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if same_place(to, located.at) || !present {
            return index.set_key(&*store, key.as_str(), settled).await;
        }
        let moving = Entry {
            class: wanted,
            from: Some(Origin { class: located.class.clone() }),
            temporary: class.is_none(),
        };
        index.set_key(&*store, key.as_str(), Some(moving)).await?;
        drop(exclusive);
        let shared = self.shared().clone();
        let key = key.clone();
        self.shared().moves.lock().spawn(async move { shared.finish_key_move(key).await });
        Ok(())
    }

    /// Gives every key under `prefix` (a directory: ends in `/`; `""` for
    /// all) storage class `class`, unless a key has one of its own; keys
    /// created there later get it too. Existing keys move in the
    /// background, readers finding them throughout. `None` takes the
    /// prefix's class off. Needs admin on the prefix: it moves keys the
    /// caller may not be allowed to write (a class such as `cache_only`
    /// would let a writer of `logs/` lose `logs/secret/`).
    pub async fn set_prefix_class(&self, prefix: &str, class: Option<&str>) -> Result<()> {
        if !prefix.is_empty() && (!prefix.ends_with('/') || validate_prefix(prefix).is_err()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`{prefix}` is not a directory prefix; write it like `logs/` or `a/b/` (or `` for every key)"),
            ));
        }
        let state = self.state();
        self.authorize(&state, Operation::SetClass.audit_label(), &[Check::path(Op::Admin, prefix)])?;
        self.check_profile(&state, class, prefix)?;
        let route = state.router.route(prefix);
        if let Some(name) = class {
            state.classes.place(route, Some(name))?;
        }
        let index = &self.shared().classes;
        let _one_at_a_time = index.prefix_changes.lock().await;
        let before = index.lookup(prefix).and_then(|(e, _)| e.class);
        let above = match prefix.trim_end_matches('/').rfind('/') {
            Some(i) => index.lookup(&prefix[..=i]).and_then(|(e, _)| e.class),
            None if prefix.is_empty() => None,
            None => index.prefix_entry("").and_then(|e| e.class),
        };
        let wanted = class.map(Arc::from).or(above);
        let store = state.router.default_route().stack.clone();
        let entry = Entry { class: wanted, from: Some(Origin { class: before }), temporary: class.is_none() };
        index.set_prefix(&*store, prefix, Some(entry)).await?;
        let shared = self.shared().clone();
        let prefix = prefix.to_owned();
        self.shared().moves.lock().spawn(async move { shared.finish_prefix_move(prefix).await });
        Ok(())
    }

    /// The class in force under `prefix`: its own, else the nearest
    /// enclosing prefix's; `None` when keys there have only their route.
    pub fn prefix_class(&self, prefix: &str) -> Option<String> {
        self.shared().classes.lookup(prefix).and_then(|(e, _)| e.class).map(|c| c.to_string())
    }

    /// Whether `prefix` was given a class itself (not inherited).
    pub fn prefix_class_is_own(&self, prefix: &str) -> bool {
        self.shared().classes.prefix_entry(prefix).is_some_and(|e| e.class.is_some())
    }

    /// A listing over every place keys may be (routes and class stacks),
    /// each key taken from where the index says it is.
    pub(crate) async fn list_places(&self, state: &ManagerState, options: &ListOptions) -> Result<ListPage> {
        let index = self.shared().classes.clone();
        let mut places: Vec<&Route> = Vec::new();
        let used = index.classes_in_use();
        let class_stacks = state.classes.stacks_of(&used);
        let routes = state.router.routes().filter(|r| {
            r.prefix.is_empty()
                || r.prefix.starts_with(&options.prefix)
                || options.prefix.starts_with(&r.prefix)
        });
        for route in class_stacks.into_iter().chain(routes) {
            if !places.iter().any(|p| same_place(p, route)) {
                places.push(route);
            }
        }
        let keeps: Vec<Box<KeyFilter>> = places
            .iter()
            .map(|place| {
                let (index, stack) = (index.clone(), place.stack.clone());
                let state = self.state();
                Box::new(move |key: &str| {
                    if is_reserved(key) {
                        return false;
                    }
                    match state.locate(&index, key) {
                        Ok(l) => {
                            std::ptr::addr_eq(Arc::as_ptr(&l.at.stack), Arc::as_ptr(&stack))
                                || l.from.is_some_and(|f| {
                                    std::ptr::addr_eq(Arc::as_ptr(&f.stack), Arc::as_ptr(&stack))
                                })
                        }
                        Err(_) => false,
                    }
                }) as Box<KeyFilter>
            })
            .collect();
        let sources: Vec<MergeSource<'_>> = places
            .iter()
            .zip(&keeps)
            .map(|(place, keep)| MergeSource { storage: place.stack.clone(), keep: Some(keep.as_ref()) })
            .collect();
        let mut page = merge_list(&sources, options).await?;
        page.entries.retain(|e| !is_reserved(e.name()));
        Ok(page)
    }
}

impl Session {
    /// A batch once the index has entries: applied where its keys are,
    /// when that is one stack. The caller holds the keys' shared locks.
    pub(crate) async fn batch_placed(&self, state: &ManagerState, ops: Vec<BatchOp>) -> Result<()> {
        let index = &self.shared().classes;
        let mut first: Option<&Route> = None;
        for op in &ops {
            reserved(op.key())?;
            let located = state.locate(index, op.key().as_str())?;
            if located.from.is_some() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "the key's storage class is changing and it cannot join a batch until it has moved; retry shortly",
                )
                .with_key(op.key().as_str())
                .with_operation(Operation::Batch.as_str()));
            }
            match first {
                None => first = Some(located.at),
                Some(at) if same_place(at, located.at) => {}
                Some(at) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "the batch spans stacks ({} and {}: routes or storage classes) that cannot be changed atomically together; split the batch",
                            at.backends.join(", "),
                            located.at.backends.join(", ")
                        ),
                    )
                    .with_key(op.key().as_str())
                    .with_operation(Operation::Batch.as_str()))
                }
            }
        }
        match first {
            Some(at) => at.stack.batch(ops).await,
            None => Ok(()),
        }
    }

    /// A rename once the index has entries: the key's class goes with it
    /// (the target's own class is replaced by the source's), and the value
    /// lands where that class puts the new name.
    pub(crate) async fn rename_placed(&self, state: &ManagerState, from: &Key, to: &Key) -> Result<()> {
        reserved(from)?;
        reserved(to)?;
        let index = &self.shared().classes;
        let _exclusive = index.locks.write_many(&[from.as_str(), to.as_str()]).await;
        self.rename_locked(state, from, to).await
    }

    /// [`Session::rename_placed`] once both keys' exclusive locks are held.
    pub(crate) async fn rename_locked(&self, state: &ManagerState, from: &Key, to: &Key) -> Result<()> {
        let index = &self.shared().classes;
        let src = state.locate(index, from.as_str())?;
        if let Some(f) = src.from {
            settle(&index.locks, &*src.at.stack, &*f.stack, from).await?;
        }
        let before = state.locate(index, to.as_str())?;
        if let Some(f) = before.from {
            settle(&index.locks, &*before.at.stack, &*f.stack, to).await?;
        }
        let store = state.router.default_route().stack.clone();
        let own = index.key_entry(from.as_str()).map(|e| Entry::settled(e.class));
        if let Some(class) = own.as_ref().and_then(|e| e.class.as_deref()) {
            state.classes.place(state.router.route(to), Some(class))?;
        }
        if index.key_entry(to.as_str()) != own {
            index.set_key(&*store, to.as_str(), own.clone()).await?;
        }
        let dst = state.locate(index, to.as_str())?;
        let mut renamed = false;
        if same_place(src.at, dst.at) && src.at.stack.capabilities().rename {
            match src.at.stack.rename(from, to).await {
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                done => {
                    done?;
                    renamed = true;
                }
            }
        }
        if !renamed {
            copy_value(&*src.at.stack, from, &*dst.at.stack, to, false)
                .await
                .map_err(|e| e.with_operation(Operation::Rename.as_str()))?;
            src.at.stack.delete(from).await?;
        }
        if !same_place(before.at, dst.at) {
            delete_if_present(&*before.at.stack, to).await?;
        }
        if own.is_some() {
            index.set_key(&*store, from.as_str(), None).await?;
        }
        Ok(())
    }
}

impl Session {
    /// Refuses (and records) class `name` when the principal's profile does
    /// not allow it.
    fn check_profile(&self, state: &ManagerState, name: Option<&str>, target: &str) -> Result<()> {
        let (Some(name), Some(profile)) = (name, state.config.profile(self.principal())) else {
            return Ok(());
        };
        if profile.allows(name) {
            return Ok(());
        }
        let allowed = profile.allowed_classes.clone().unwrap_or_default().join(", ");
        let e = Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "`{}` may use the storage classes {allowed} (its profile's `allowed_classes`), not `{name}`",
                self.principal()
            ),
        )
        .with_key(target);
        self.record(
            &self.security(),
            Operation::SetClass.audit_label(),
            &[target],
            false,
            Some(e.message()),
        )?;
        Err(e)
    }

    /// The class a write of `key` by this principal gives it when it names
    /// none: its profile's `default_class`, for a key it creates where
    /// neither the key nor a directory above has a class.
    pub(crate) async fn default_class(&self, key: &Key) -> Result<Option<String>> {
        let state = self.state();
        let Some(default) = state.config.profile(self.principal()).and_then(|p| p.default_class.clone())
        else {
            return Ok(None);
        };
        if self.shared().classes.lookup(key.as_str()).is_some() {
            return Ok(None);
        }
        match state.router.route(key).stack.stat(key).await {
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(default)),
            Err(e) => Err(e),
        }
    }
}

/// The class `key` would have without an entry of its own.
fn inherited_class(index: &ClassIndex, key: &str) -> Option<Arc<str>> {
    let end = key.rfind('/').map_or(0, |i| i + 1);
    index.lookup(&key[..end]).and_then(|(e, _)| e.class)
}

impl Shared {
    /// Resumes the moves a previous run left unfinished.
    pub(crate) fn resume_moves(self: &Arc<Self>) {
        let (keys, prefixes) = self.classes.moving();
        let mut moves = self.moves.lock();
        for key in keys {
            if let Ok(key) = Key::new(key) {
                let shared = self.clone();
                moves.spawn(async move { shared.finish_key_move(key).await });
            }
        }
        for prefix in prefixes {
            let shared = self.clone();
            moves.spawn(async move { shared.finish_prefix_move(prefix).await });
        }
    }

    /// Stops the moves (the index still says where data may be; the next
    /// start resumes) and waits until they have let go of the stores.
    pub(crate) async fn stop_moves(&self) {
        let mut moves = std::mem::take(&mut *self.moves.lock());
        moves.abort_all();
        while moves.join_next().await.is_some() {}
    }

    /// Whether every move has ended.
    pub(crate) fn moves_done(&self) -> bool {
        let mut moves = self.moves.lock();
        while moves.try_join_next().is_some() {}
        moves.is_empty()
    }

    /// Moves `key` to where its class puts it, then records it there.
    async fn finish_key_move(self: Arc<Self>, key: Key) {
        loop {
            match self.try_key_move(&key).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "moving a key to its storage class failed; retrying")
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn try_key_move(&self, key: &Key) -> Result<()> {
        let index = &self.classes;
        let _exclusive = index.locks.write(key.as_str()).await;
        let Some(entry) = index.key_entry(key.as_str()).filter(|e| e.from.is_some()) else { return Ok(()) };
        let state = self.state.load_full();
        let located = state.locate(index, key.as_str())?;
        if let Some(from) = located.from {
            settle(&index.locks, &*located.at.stack, &*from.stack, key).await?;
        }
        let done = (!entry.temporary).then(|| Entry::settled(entry.class.clone()));
        index.set_key(&*state.router.default_route().stack, key.as_str(), done).await?;
        tracing::info!(key = %key, class = ?entry.class, "moved to its storage class");
        Ok(())
    }

    /// Moves every key under `prefix` that inherits its class to where the
    /// class puts it, then records the prefix settled.
    async fn finish_prefix_move(self: Arc<Self>, prefix: String) {
        loop {
            match self.try_prefix_move(&prefix).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(prefix, error = %e, "moving a prefix to its storage class failed; retrying")
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn try_prefix_move(&self, prefix: &str) -> Result<()> {
        let index = &self.classes;
        let state = self.state.load_full();
        let mut places: Vec<&Route> = Vec::new();
        for route in state.classes.stacks().chain(state.router.routes()) {
            if !places.iter().any(|p| same_place(p, route)) {
                places.push(route);
            }
        }
        for place in places {
            place
                .stack
                .list_stream(ListOptions::recursive(prefix))
                .try_filter_map(|entry| async move {
                    Ok(match entry {
                        ListEntry::Object(meta) if !is_reserved(meta.key.as_str()) => Some(meta.key),
                        _ => None,
                    })
                })
                .map(|key| {
                    let state = &state;
                    async move {
                        let key = key?;
                        let _exclusive = index.locks.write(key.as_str()).await;
                        let located = state.locate(index, key.as_str())?;
                        match located.from {
                            Some(from) if same_place(from, place) => {
                                settle(&index.locks, &*located.at.stack, &*from.stack, &key).await.map(drop)
                            }
                            _ => Ok(()),
                        }
                    }
                })
                .buffer_unordered(MOVE_CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }
        let _one_at_a_time = index.prefix_changes.lock().await;
        let Some(entry) = index.prefix_entry(prefix).filter(|e| e.from.is_some()) else { return Ok(()) };
        let done = (!entry.temporary).then(|| Entry::settled(entry.class.clone()));
        index.set_prefix(&*state.router.default_route().stack, prefix, done).await?;
        tracing::info!(prefix, class = ?entry.class, "moved to its storage class");
        Ok(())
    }
}
