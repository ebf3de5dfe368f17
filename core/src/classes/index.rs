//! The class index: which keys and prefixes were given a class, kept
//! durably under [`CLASS_INDEX_PREFIX`] on the default route's storage
//! and in memory, so a lookup costs a hash probe.
//!
//! One record per key or prefix given a class, named by a 128-bit hash of
//! it (every name fits the key grammar), holding the key or prefix, the
//! class and, while its data moves, the class it comes from.
//!
//! In memory a key's entry is found by that same hash (what reads need in
//! [`Slots`], one cache line per lookup), and class names are
//! shared (one allocation per class): a lookup reads one hash-table slot
//! and no string of the key's own, which matters on the read path where
//! the data just read has pushed the index out of the CPU's caches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::slots::Slots;
use super::CLASS_INDEX_PREFIX;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::key_locks::KeyLocks;
use crate::storage::{ListEntry, ListOptions, PutOptions, Storage, StorageExt};

/// Records read at once when the index loads.
const LOAD_CONCURRENCY: usize = 32;

/// The class of a key or prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The class; `None`: the route's own placement (a class being taken off).
    pub class: Option<Arc<str>>,
    /// While the data moves: where it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Origin>,
    /// The entry goes once the move ends (the class was taken off: the
    /// key or prefix inherits again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// Where moving data comes from: a class, or (`None`) the route's own placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Origin {
    pub class: Option<Arc<str>>,
}

impl Entry {
    pub fn settled(class: Option<Arc<str>>) -> Entry {
        Entry { class, from: None, temporary: false }
    }
}

/// Where a key's class comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// Given to the key itself.
    Key,
    /// Inherited from this prefix (the longest given one).
    Prefix(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(flatten)]
    entry: Entry,
}

/// What a read needs of a key's entry, small enough that a lookup reads
/// one cache line: the class (an index into [`Maps::names`], `None` for
/// the route's own placement) and whether the data moves.
#[derive(Debug, Clone, Copy, Default)]
struct Hot {
    class: Option<u32>,
    moving: bool,
}

#[derive(Debug, Default)]
struct Maps {
    /// By [`key_hash`] (the hash that names the key's record): what reads need.
    hot: Slots<Hot>,
    /// By the same hash: the key and its whole entry.
    keys: rustc_hash::FxHashMap<u128, (Box<str>, Entry)>,
    prefixes: BTreeMap<String, Entry>,
    /// Every class name an entry held, once; [`Hot::class`] indexes it.
    names: Vec<Arc<str>>,
}

impl Maps {
    /// The index of class `name` in [`Maps::names`], added if new.
    fn name_id(&mut self, name: &mut Arc<str>) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => {
                *name = self.names[i].clone();
                i as u32
            }
            None => {
                self.names.push(name.clone());
                (self.names.len() - 1) as u32
            }
        }
    }

    /// `entry` with its class names shared with the entries before it,
    /// and the number of its class in [`Maps::names`].
    fn interned(&mut self, mut entry: Entry) -> (Entry, Option<u32>) {
        let class = entry.class.as_mut().map(|name| self.name_id(name));
        if let Some(name) = entry.from.as_mut().and_then(|o| o.class.as_mut()) {
            self.name_id(name);
        }
        (entry, class)
    }

    fn insert_key(&mut self, key: &str, entry: Entry) {
        let hash = key_hash(key);
        let (entry, class) = self.interned(entry);
        self.hot.insert(hash, Hot { class, moving: entry.from.is_some() });
        self.keys.insert(hash, (key.into(), entry));
    }

    fn remove_key(&mut self, key: &str) {
        let hash = key_hash(key);
        self.hot.remove(hash);
        self.keys.remove(&hash);
    }
}

/// The 128-bit hash a key's entry and record are found by.
#[inline]
fn key_hash(name: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(name.as_bytes())
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ClassIndex {
    maps: RwLock<Maps>,
    /// Whether any entry exists: until then no lookup is made.
    active: AtomicBool,
    /// Per-key locks: operations share a key's, a move takes it alone.
    pub locks: KeyLocks,
    /// Serializes changes of prefix entries.
    pub prefix_changes: tokio::sync::Mutex<()>,
}

fn record_key(kind: char, name: &str) -> Key {
    let hash = key_hash(name);
    Key::new(format!("{CLASS_INDEX_PREFIX}{kind}/{hash:032x}")).expect("a record name is a valid key")
}

impl ClassIndex {
    /// Reads the index kept on `store`.
    pub async fn load(store: &dyn Storage) -> Result<ClassIndex> {
        let names: Vec<Key> = store
            .list_stream(ListOptions::recursive(CLASS_INDEX_PREFIX))
            .try_filter_map(|entry| async move {
                Ok(match entry {
                    ListEntry::Object(meta) => Some(meta.key),
                    ListEntry::Prefix(_) => None,
                })
            })
            .try_collect()
            .await
            .map_err(|e| e.with_operation("load the class index"))?;
        let records: Vec<Option<Record>> = futures::stream::iter(names)
            .map(|name| async move {
                match store.get(&name).await {
                    Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                        Error::new(
                            ErrorKind::Config,
                            format!("the class index record `{name}` is unreadable ({e}); delete it to drop that entry"),
                        )
                    }),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let mut maps = Maps::default();
        for record in records.into_iter().flatten() {
            match (record.key, record.prefix) {
                (Some(key), _) => maps.insert_key(&key, record.entry),
                (None, Some(prefix)) => {
                    let (entry, _) = maps.interned(record.entry);
                    maps.prefixes.insert(prefix, entry);
                }
                (None, None) => {}
            }
        }
        let active = !maps.keys.is_empty() || !maps.prefixes.is_empty();
        Ok(ClassIndex {
            maps: RwLock::new(maps),
            active: AtomicBool::new(active),
            locks: KeyLocks::new(),
            prefix_changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether any key or prefix has a class.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The class of `key`: its own entry, else the longest prefix's.
    pub fn lookup(&self, key: &str) -> Option<(Entry, Via)> {
        self.with_entry(key, |found| {
            found.map(|(entry, prefix)| {
                let via = match prefix {
                    None => Via::Key,
                    Some(p) => Via::Prefix(p.to_owned()),
                };
                (entry.clone(), via)
            })
        })
    }

    /// `f` of the entry deciding `key`'s class (with the prefix it comes
    /// from, `None` for the key's own), read in place: the hot path of
    /// every operation once the index has entries.
    #[inline]
    pub fn with_entry<T>(&self, key: &str, f: impl FnOnce(Option<(&Entry, Option<&str>)>) -> T) -> T {
        let hash = key_hash(key);
        let maps = self.maps.read();
        if let Some((_, entry)) = maps.keys.get(&hash) {
            return f(Some((entry, None)));
        }
        if !maps.prefixes.is_empty() {
            let ends = key.match_indices('/').map(|(i, _)| i + 1).rev().chain(std::iter::once(0));
            for end in ends {
                if let Some(entry) = maps.prefixes.get(&key[..end]) {
                    return f(Some((entry, Some(&key[..end]))));
                }
            }
        }
        f(None)
    }

    /// `f` of the class deciding `key`'s place when its data is not
    /// moving: `None` when no entry decides it (its route does), else the
    /// class (`Some(None)`: the route's own placement). `None` while it
    /// moves. The read path's lookup: one probe of a small slot.
    #[inline]
    pub fn settled<T>(&self, key: &str, f: impl FnOnce(Option<Option<&str>>) -> T) -> Option<T> {
        let hash = key_hash(key);
        let maps = self.maps.read();
        if let Some(hot) = maps.hot.get(hash) {
            if hot.moving {
                return None;
            }
            return Some(f(Some(hot.class.map(|i| &*maps.names[i as usize]))));
        }
        if !maps.prefixes.is_empty() {
            let ends = key.match_indices('/').map(|(i, _)| i + 1).rev().chain(std::iter::once(0));
            for end in ends {
                if let Some(entry) = maps.prefixes.get(&key[..end]) {
                    if entry.from.is_some() {
                        return None;
                    }
                    return Some(f(Some(entry.class.as_deref())));
                }
            }
        }
        Some(f(None))
    }

    /// The entry given to `key` itself.
    pub fn key_entry(&self, key: &str) -> Option<Entry> {
        self.maps.read().keys.get(&key_hash(key)).map(|(_, entry)| entry.clone())
    }

    /// The entry given to `prefix` itself.
    pub fn prefix_entry(&self, prefix: &str) -> Option<Entry> {
        self.maps.read().prefixes.get(prefix).cloned()
    }

    /// Every class an entry names (as its class or where it moves from).
    pub fn classes_in_use(&self) -> Vec<String> {
        let maps = self.maps.read();
        let mut names: Vec<String> = maps
            .keys
            .values()
            .map(|(_, entry)| entry)
            .chain(maps.prefixes.values())
            .flat_map(|e| e.class.iter().chain(e.from.iter().flat_map(|o| o.class.iter())))
            .map(|name| name.to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Keys and prefixes whose data is still moving (resumed at start).
    pub fn moving(&self) -> (Vec<String>, Vec<String>) {
        let maps = self.maps.read();
        let keys =
            maps.keys.values().filter(|(_, e)| e.from.is_some()).map(|(key, _)| key.to_string()).collect();
        let prefixes =
            maps.prefixes.iter().filter(|(_, e)| e.from.is_some()).map(|(p, _)| p.clone()).collect();
        (keys, prefixes)
    }

    /// Records `entry` for `key` (`None`: the key has no class of its
    /// own), durably on `store` first. The caller holds the key's lock.
    pub async fn set_key(&self, store: &dyn Storage, key: &str, entry: Option<Entry>) -> Result<()> {
        let name = record_key('k', key);
        let record = entry.clone().map(|entry| Record { key: Some(key.to_owned()), prefix: None, entry });
        persist(store, &name, record.as_ref()).await?;
        let mut maps = self.maps.write();
        match entry {
            Some(entry) => maps.insert_key(key, entry),
            None => maps.remove_key(key),
        }
        self.changed();
        Ok(())
    }

    /// Records `entry` for `prefix` (`None`: no class of its own), durably
    /// first. The caller holds [`ClassIndex::prefix_changes`].
    pub async fn set_prefix(&self, store: &dyn Storage, prefix: &str, entry: Option<Entry>) -> Result<()> {
        let name = record_key('p', prefix);
        let record = entry.clone().map(|entry| Record { key: None, prefix: Some(prefix.to_owned()), entry });
        persist(store, &name, record.as_ref()).await?;
        let mut maps = self.maps.write();
        match entry {
            Some(entry) => {
                let (entry, _) = maps.interned(entry);
                maps.prefixes.insert(prefix.to_owned(), entry);
            }
            None => drop(maps.prefixes.remove(prefix)),
        }
        self.changed();
        Ok(())
    }

    fn changed(&self) {
        self.active.store(true, Ordering::Release);
    }
}

async fn persist(store: &dyn Storage, name: &Key, record: Option<&Record>) -> Result<()> {
    let result = match record {
        Some(record) => {
            let bytes = Bytes::from(serde_json::to_vec(record).expect("a record serializes"));
            store.put(name, bytes, PutOptions::default()).await.map(drop)
        }
        None => match store.delete(name).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            done => done,
        },
    };
    result.map_err(|e| e.with_operation("record a storage class"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::memory::MemoryStorage;

    fn moving(class: &str, from: Option<&str>) -> Entry {
        Entry {
            class: Some(class.into()),
            from: Some(Origin { class: from.map(Into::into) }),
            temporary: false,
        }
    }

    #[tokio::test]
    async fn reads_see_settled_classes_and_skip_moving_ones_across_a_reload() {
        let store = MemoryStorage::new("m");
        let index = ClassIndex::load(&store).await.unwrap();
        assert!(!index.active());
        index.set_key(&store, "a/x", Some(Entry::settled(Some("fast".into())))).await.unwrap();
        index.set_key(&store, "a/y", Some(moving("slow", Some("fast")))).await.unwrap();
        index.set_prefix(&store, "b/", Some(Entry::settled(Some("slow".into())))).await.unwrap();
        index.set_prefix(&store, "c/", Some(moving("fast", None))).await.unwrap();
        for index in [index, ClassIndex::load(&store).await.unwrap()] {
            let class = |key: &str| index.settled(key, |found| found.map(|c| c.map(str::to_owned)));
            assert_eq!(class("a/x"), Some(Some(Some("fast".into()))));
            assert_eq!(class("a/y"), None, "a moving key is not settled");
            assert_eq!(class("b/deep/z"), Some(Some(Some("slow".into()))), "inherited");
            assert_eq!(class("c/z"), None, "under a moving prefix");
            assert_eq!(class("d/z"), Some(None), "no entry: the route decides");
            assert_eq!(index.moving(), (vec!["a/y".to_owned()], vec!["c/".to_owned()]));
            assert_eq!(index.classes_in_use(), ["fast", "slow"]);
            // One allocation per class name, whichever entry holds it.
            let x = index.key_entry("a/x").unwrap().class.unwrap();
            let y = index.key_entry("a/y").unwrap().from.unwrap().class.unwrap();
            assert!(Arc::ptr_eq(&x, &y));
        }
    }

    #[tokio::test]
    async fn a_removed_key_entry_is_gone_from_every_map_and_from_the_store() {
        let store = MemoryStorage::new("m");
        let index = ClassIndex::load(&store).await.unwrap();
        index.set_key(&store, "k", Some(Entry::settled(Some("fast".into())))).await.unwrap();
        index.set_key(&store, "k", None).await.unwrap();
        assert_eq!(index.settled("k", |found| found.is_none()), Some(true));
        assert_eq!(index.key_entry("k"), None);
        let reloaded = ClassIndex::load(&store).await.unwrap();
        assert!(!reloaded.active());
    }
}
