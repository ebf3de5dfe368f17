//! The types of the safe Rust side: stats, listings, batches, settings.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::abi::capability;
use crate::error::PluginError;
use crate::json::Json;

/// A small string map stored with a value.
pub type Metadata = BTreeMap<String, String>;

/// Page size a host asks for when its caller gave none.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// What `stat` reports about a stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStat {
    /// Size of the value in bytes.
    pub size: u64,
    /// When the value was last written.
    pub modified: SystemTime,
    /// Changes whenever the value changes; opaque to the host.
    pub version: String,
    /// The metadata map, as last written.
    pub metadata: Metadata,
}

impl ObjectStat {
    /// `modified` in nanoseconds since the Unix epoch (0 before it,
    /// saturating far in the future).
    pub fn modified_nanos(&self) -> u64 {
        let nanos = self.modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// The time `nanos` nanoseconds after the Unix epoch.
    pub fn time_from_nanos(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }
}

/// What a backend can do; see the [`capability`] bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `batch` applies every operation or none.
    pub atomic_batch: bool,
    /// `get_range` reads only the requested bytes.
    pub range_read: bool,
    /// `rename` moves a key atomically.
    pub rename: bool,
    /// Acknowledged writes survive a restart of the process.
    pub persistent: bool,
    /// `if_not_exists` is honoured atomically.
    pub conditional_put: bool,
    /// Streamed writes do not hold the whole value in memory.
    pub streaming: bool,
    /// Other hosts using the same store see the values (a network service).
    pub shared: bool,
}

impl Capabilities {
    /// The ABI bit mask.
    pub fn to_bits(self) -> u64 {
        let bit = |on: bool, b: u64| if on { b } else { 0 };
        bit(self.atomic_batch, capability::ATOMIC_BATCH)
            | bit(self.range_read, capability::RANGE_READ)
            | bit(self.rename, capability::RENAME)
            | bit(self.persistent, capability::PERSISTENT)
            | bit(self.conditional_put, capability::CONDITIONAL_PUT)
            | bit(self.streaming, capability::STREAMING)
            | bit(self.shared, capability::SHARED)
    }

    /// From the ABI bit mask; unknown bits are ignored.
    pub fn from_bits(bits: u64) -> Self {
        Capabilities {
            atomic_batch: bits & capability::ATOMIC_BATCH != 0,
            range_read: bits & capability::RANGE_READ != 0,
            rename: bits & capability::RENAME != 0,
            persistent: bits & capability::PERSISTENT != 0,
            conditional_put: bits & capability::CONDITIONAL_PUT != 0,
            streaming: bits & capability::STREAMING != 0,
            shared: bits & capability::SHARED != 0,
        }
    }
}

/// One page of a listing, as asked by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this string (`""` for all).
    pub prefix: String,
    /// `true`: every key below the prefix. `false`: group deeper keys into
    /// [`ListEntry::Prefix`] entries at the next `/`.
    pub recursive: bool,
    /// Resume after this entry (the previous page's [`ListPage::next`]).
    pub start_after: Option<String>,
    /// Most entries in the page; at least 1.
    pub limit: usize,
}

impl ListRequest {
    /// Where an ordered scan should start: at the prefix, or just past
    /// `start_after` (past a whole group when it names a `.../` prefix).
    pub fn start_bound(&self) -> Bound<String> {
        match &self.start_after {
            Some(after) if after.as_str() >= self.prefix.as_str() => match after.strip_suffix('/') {
                // Every key inside `a/b/` sorts before `a/b0` ('0' follows '/').
                Some(group) => Bound::Included(format!("{group}0")),
                None => Bound::Excluded(after.clone()),
            },
            _ => Bound::Included(self.prefix.clone()),
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// A stored value.
    Object {
        /// The key.
        key: String,
        /// Its stat.
        stat: ObjectStat,
    },
    /// A group of deeper keys, ending in `/` (non-recursive listings only).
    Prefix(String),
}

impl ListEntry {
    /// The key, or the prefix with its trailing `/`.
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object { key, .. } => key,
            ListEntry::Prefix(p) => p,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in byte order of their names.
    pub entries: Vec<ListEntry>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
}

impl ListPage {
    /// The ABI's JSON encoding of the page.
    pub fn to_json(&self) -> String {
        let entries = self
            .entries
            .iter()
            .map(|entry| {
                let mut fields = BTreeMap::new();
                match entry {
                    ListEntry::Object { key, stat } => {
                        fields.insert("key".to_owned(), Json::from(key.as_str()));
                        fields.insert("size".to_owned(), Json::from(stat.size));
                        fields.insert("modified_nanos".to_owned(), Json::from(stat.modified_nanos()));
                        fields.insert("version".to_owned(), Json::from(stat.version.as_str()));
                        fields.insert("metadata".to_owned(), metadata_to_json(&stat.metadata));
                    }
                    ListEntry::Prefix(prefix) => {
                        fields.insert("prefix".to_owned(), Json::from(prefix.as_str()));
                    }
                }
                Json::Object(fields)
            })
            .collect();
        let mut page = BTreeMap::new();
        page.insert("entries".to_owned(), Json::Array(entries));
        page.insert("next".to_owned(), self.next.as_deref().map_or(Json::Null, Json::from));
        Json::Object(page).to_string()
    }
}

/// Builds a [`ListPage`] from keys visited in byte order, with exactly the
/// semantics TierFS expects: feed keys from [`ListRequest::start_bound`]
/// onwards until [`push`](ListPageBuilder::push) returns `false`.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use tierfs_plugin_api::{ListPageBuilder, ListRequest, ObjectStat};
///
/// let request = ListRequest { prefix: "a/".into(), recursive: false, start_after: None, limit: 10 };
/// let mut page = ListPageBuilder::new(&request);
/// for key in ["a/1", "a/sub/2", "a/sub/3", "b"] {
///     let stat = || Ok(ObjectStat { size: 1, modified: UNIX_EPOCH, version: "1".into(), metadata: Default::default() });
///     if !page.push(key, stat).unwrap() {
///         break;
///     }
/// }
/// let names: Vec<_> = page.finish().entries.iter().map(|e| e.name().to_owned()).collect();
/// assert_eq!(names, ["a/1", "a/sub/"]);
/// ```
#[derive(Debug)]
pub struct ListPageBuilder<'a> {
    request: &'a ListRequest,
    limit: usize,
    page: ListPage,
}

impl<'a> ListPageBuilder<'a> {
    /// A builder for `request`.
    pub fn new(request: &'a ListRequest) -> Self {
        ListPageBuilder { request, limit: request.limit.max(1), page: ListPage::default() }
    }

    /// Offers the next key; `stat` is called only if the key is listed as
    /// an object. Returns `Ok(false)` when the scan should stop.
    pub fn push(
        &mut self,
        key: &str,
        stat: impl FnOnce() -> Result<ObjectStat, PluginError>,
    ) -> Result<bool, PluginError> {
        let prefix = self.request.prefix.as_str();
        if !key.starts_with(prefix) {
            return Ok(false);
        }
        if let Some(after) = &self.request.start_after {
            if key <= after.as_str() || (after.ends_with('/') && key.starts_with(after.as_str())) {
                return Ok(true);
            }
        }
        let rest = &key[prefix.len()..];
        let group = match rest.find('/') {
            Some(i) if !self.request.recursive => Some(&key[..prefix.len() + i + 1]),
            _ => None,
        };
        if let (Some(group), Some(ListEntry::Prefix(last))) = (group, self.page.entries.last()) {
            if last == group {
                return Ok(true);
            }
        }
        if self.page.entries.len() == self.limit {
            self.page.next = self.page.entries.last().map(|e| e.name().to_owned());
            return Ok(false);
        }
        self.page.entries.push(match group {
            Some(group) => ListEntry::Prefix(group.to_owned()),
            None => ListEntry::Object { key: key.to_owned(), stat: stat()? },
        });
        Ok(true)
    }

    /// The finished page.
    pub fn finish(self) -> ListPage {
        self.page
    }
}

/// One operation of a batch; values borrow from the host's buffer for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Store `value` under `key` with `metadata`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: &'a [u8],
        /// The new metadata map.
        metadata: Metadata,
        /// Fail the whole batch with `AlreadyExists` if the key exists.
        if_not_exists: bool,
    },
    /// Remove `key`; a missing key is not an error.
    Delete {
        /// The key.
        key: String,
    },
}

impl BatchOp<'_> {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// Decodes the ABI's batch encoding: a JSON array of operations and the
/// values of the puts back to back.
///
/// ```
/// use tierfs_plugin_api::{decode_batch, BatchOp};
///
/// let ops = r#"[{"op":"put","key":"a","metadata":{},"len":2},{"op":"delete","key":"b"}]"#;
/// let decoded = decode_batch(ops.as_bytes(), b"hi").unwrap();
/// let put = BatchOp::Put { key: "a".into(), value: b"hi", metadata: Default::default(), if_not_exists: false };
/// assert_eq!(decoded, [put, BatchOp::Delete { key: "b".into() }]);
/// ```
pub fn decode_batch<'a>(ops_json: &[u8], values: &'a [u8]) -> Result<Vec<BatchOp<'a>>, PluginError> {
    let bad = |what: &str| PluginError::invalid_input(format!("malformed batch from the host: {what}"));
    let text = std::str::from_utf8(ops_json).map_err(|_| bad("operations are not UTF-8"))?;
    let json = Json::parse(text).map_err(|e| bad(&e))?;
    let items = json.as_array().ok_or_else(|| bad("operations are not a JSON array"))?;
    let mut ops = Vec::with_capacity(items.len());
    let mut offset = 0usize;
    for (i, item) in items.iter().enumerate() {
        let key = item
            .get("key")
            .and_then(Json::as_str)
            .ok_or_else(|| bad(&format!("operation {i} has no key")))?
            .to_owned();
        match item.get("op").and_then(Json::as_str) {
            Some("put") => {
                let len = item
                    .get("len")
                    .and_then(Json::as_u64)
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| bad(&format!("put {i} has no valid `len`")))?;
                let end = offset
                    .checked_add(len)
                    .filter(|end| *end <= values.len())
                    .ok_or_else(|| bad(&format!("put {i} runs past the end of the values")))?;
                let metadata = match item.get("metadata") {
                    None | Some(Json::Null) => Metadata::new(),
                    Some(m) => metadata_from_json_value(m).map_err(|e| bad(&format!("put {i}: {e}")))?,
                };
                let if_not_exists = item.get("if_not_exists").and_then(Json::as_bool).unwrap_or(false);
                ops.push(BatchOp::Put { key, value: &values[offset..end], metadata, if_not_exists });
                offset = end;
            }
            Some("delete") => ops.push(BatchOp::Delete { key }),
            _ => return Err(bad(&format!("operation {i} is neither `put` nor `delete`"))),
        }
    }
    if offset != values.len() {
        return Err(bad("values are longer than the puts say"));
    }
    Ok(ops)
}

/// The ABI's JSON encoding of a metadata map.
pub fn metadata_to_json(metadata: &Metadata) -> Json {
    Json::Object(metadata.iter().map(|(k, v)| (k.clone(), Json::from(v.as_str()))).collect())
}

/// Decodes a metadata map from its JSON text (empty text is an empty map).
pub fn metadata_from_json(text: &[u8]) -> Result<Metadata, PluginError> {
    if text.is_empty() {
        return Ok(Metadata::new());
    }
    let bad = |what: String| PluginError::invalid_input(format!("malformed metadata from the host: {what}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    let json = Json::parse(text).map_err(bad)?;
    metadata_from_json_value(&json).map_err(bad)
}

fn metadata_from_json_value(json: &Json) -> Result<Metadata, String> {
    let fields = json.as_object().ok_or("metadata is not a JSON object")?;
    fields
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("metadata value `{k}` is {}, not a string", v.type_name())),
        })
        .collect()
}

/// A change to a value's metadata, as `set_metadata` receives it: entries
/// to set, names to remove, or (with `replace`) a whole new map.
///
/// ```
/// use tierfs_plugin_api::{Metadata, MetadataChanges};
///
/// let changes = MetadataChanges::from_json(br#"{"set":{"a":"1"},"remove":["b"],"replace":false}"#).unwrap();
/// let mut map = Metadata::from([("b".to_owned(), "2".to_owned()), ("c".to_owned(), "3".to_owned())]);
/// changes.apply(&mut map);
/// assert_eq!(map, Metadata::from([("a".to_owned(), "1".to_owned()), ("c".to_owned(), "3".to_owned())]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChanges {
    /// Entries added or replaced.
    pub set: Metadata,
    /// Names removed (removals apply before `set`).
    pub remove: Vec<String>,
    /// Drop every entry first, so the map becomes `set`.
    pub replace: bool,
}

impl MetadataChanges {
    /// Applies the changes to `map`.
    pub fn apply(&self, map: &mut Metadata) {
        if self.replace {
            map.clear();
        }
        for name in &self.remove {
            map.remove(name);
        }
        map.extend(self.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// Decodes the ABI's JSON encoding (see [`PluginVTable`](crate::PluginVTable)).
    pub fn from_json(text: &[u8]) -> Result<MetadataChanges, PluginError> {
        let bad = |what: String| {
            PluginError::invalid_input(format!("malformed metadata changes from the host: {what}"))
        };
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
        let json = Json::parse(text).map_err(bad)?;
        let set = match json.get("set") {
            Some(set) => metadata_from_json_value(set).map_err(bad)?,
            None => Metadata::new(),
        };
        let remove = match json.get("remove") {
            Some(names) => names
                .as_array()
                .ok_or_else(|| bad("`remove` is not an array".into()))?
                .iter()
                .map(|n| {
                    n.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("a name in `remove` is not a string".into()))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let replace = match json.get("replace") {
            Some(r) => r.as_bool().ok_or_else(|| bad("`replace` is not a boolean".into()))?,
            None => false,
        };
        Ok(MetadataChanges { set, remove, replace })
    }
}

/// A backend's settings: its configuration table without `type`.
///
/// Refuse what you do not know with [`Settings::expect_only`], so a typo in
/// the configuration is reported instead of ignored.
///
/// ```
/// use tierfs_plugin_api::{PluginErrorKind, Settings};
///
/// let s = Settings::parse(br#"{"path": "/data/x.log", "pth": 1}"#).unwrap();
/// let e = s.expect_only(&["path"]).unwrap_err();
/// assert_eq!(e.kind(), PluginErrorKind::Config);
/// assert_eq!(e.message(), "unknown field `pth`, expected `path`");
/// assert_eq!(s.required_str("path").unwrap(), "/data/x.log");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    fields: BTreeMap<String, Json>,
}

impl Settings {
    /// Parses the JSON object the host passes to `create`.
    pub fn parse(json: &[u8]) -> Result<Settings, PluginError> {
        let bad = |what: String| PluginError::config(format!("the host passed malformed settings: {what}"));
        let text = std::str::from_utf8(json).map_err(|_| bad("not UTF-8".into()))?;
        match Json::parse(text).map_err(bad)? {
            Json::Object(fields) => Ok(Settings { fields }),
            other => Err(bad(format!("{} instead of a table", other.type_name()))),
        }
    }

    /// Settings holding `fields`.
    pub fn from_fields(fields: BTreeMap<String, Json>) -> Self {
        Settings { fields }
    }

    /// Every field.
    pub fn fields(&self) -> &BTreeMap<String, Json> {
        &self.fields
    }

    /// Field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.fields.get(name)
    }

    /// Refuses any field not in `allowed`, naming it and the allowed ones.
    pub fn expect_only(&self, allowed: &[&str]) -> Result<(), PluginError> {
        match self.fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => {
                let expected = match allowed {
                    [] => "no fields".to_owned(),
                    [one] => format!("`{one}`"),
                    many => format!(
                        "one of {}",
                        many.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                Err(PluginError::config(format!("unknown field `{unknown}`, expected {expected}")))
            }
        }
    }

    /// String field `name`, if present; another type is a `Config` error.
    pub fn str(&self, name: &str) -> Result<Option<&str>, PluginError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// String field `name`; missing is a `Config` error.
    pub fn required_str(&self, name: &str) -> Result<&str, PluginError> {
        self.str(name)?.ok_or_else(|| PluginError::config(format!("missing field `{name}`")))
    }

    /// Integer field `name`, if present.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, PluginError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(Json::Integer(i)) => Ok(Some(*i)),
            Some(other) => Err(wrong_type(name, "an integer", other)),
        }
    }

    /// Boolean field `name`, if present.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, PluginError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(name, "a boolean", other)),
        }
    }
}

fn wrong_type(name: &str, expected: &str, got: &Json) -> PluginError {
    PluginError::config(format!("field `{name}` must be {expected}, not {}", got.type_name()))
}

/// Where a backend is being created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateContext {
    /// The backend's configured name (`[backends.NAME]`).
    pub name: String,
    /// The configuration file's directory, when there is a file.
    pub base_dir: Option<PathBuf>,
}

impl CreateContext {
    /// Resolves a path from the settings: relative paths are taken from the
    /// configuration file's directory, as TierFS does for its own settings.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(request: &ListRequest, keys: &[&str]) -> (Vec<String>, Option<String>) {
        let mut page = ListPageBuilder::new(request);
        let stat = || ObjectStat {
            size: 0,
            modified: UNIX_EPOCH,
            version: String::new(),
            metadata: Metadata::new(),
        };
        let sorted: std::collections::BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        for key in sorted.range::<String, _>((request.start_bound(), Bound::Unbounded)) {
            if !page.push(key, || Ok(stat())).unwrap() {
                break;
            }
        }
        let page = page.finish();
        (page.entries.iter().map(|e| e.name().to_owned()).collect(), page.next)
    }

    #[test]
    fn list_pages_group_and_resume() {
        let keys = ["g/d0/1", "g/d0/2", "g/d1/1", "g/f0", "g/f1", "h"];
        let mut request = ListRequest { prefix: "g/".into(), recursive: false, start_after: None, limit: 2 };
        let mut all = Vec::new();
        loop {
            let (page, next) = names(&request, &keys);
            all.extend(page);
            match next {
                Some(next) => request.start_after = Some(next),
                None => break,
            }
        }
        assert_eq!(all, ["g/d0/", "g/d1/", "g/f0", "g/f1"]);
        let recursive = ListRequest { prefix: "g/d".into(), recursive: true, start_after: None, limit: 10 };
        assert_eq!(names(&recursive, &keys).0, ["g/d0/1", "g/d0/2", "g/d1/1"]);
    }

    #[test]
    fn batches_decode_and_malformed_ones_are_refused() {
        let ops = r#"[{"op":"put","key":"a\"b","metadata":{"m":"v"},"len":1,"if_not_exists":true},
                      {"op":"put","key":"c","len":2},{"op":"delete","key":"d"}]"#;
        let decoded = decode_batch(ops.as_bytes(), b"xyz").unwrap();
        assert_eq!(decoded.len(), 3);
        assert!(
            matches!(&decoded[0], BatchOp::Put { key, value: b"x", if_not_exists: true, .. } if key == "a\"b")
        );
        assert!(matches!(&decoded[1], BatchOp::Put { value: b"yz", .. }));
        for (ops, values) in [
            (r#"[{"op":"put","key":"a","len":5}]"#, &b"xy"[..]),
            (r#"[{"op":"put","key":"a","len":1}]"#, b"xy"),
            (r#"[{"op":"move","key":"a"}]"#, b""),
            (r#"{"op":"delete"}"#, b""),
            (r#"[{"op":"put","key":"a","len":1,"metadata":{"m":1}}]"#, b"x"),
        ] {
            let e = decode_batch(ops.as_bytes(), values).unwrap_err();
            assert_eq!(e.kind(), crate::PluginErrorKind::InvalidInput, "{ops}");
        }
    }

    #[test]
    fn capabilities_round_trip_through_bits() {
        let caps =
            Capabilities { atomic_batch: true, persistent: true, streaming: true, ..Default::default() };
        assert_eq!(Capabilities::from_bits(caps.to_bits()), caps);
        assert_eq!(Capabilities::from_bits(u64::MAX).to_bits(), 0b111_1111);
        let shared = Capabilities { shared: true, ..Default::default() };
        assert_eq!(shared.to_bits(), crate::abi::capability::SHARED);
    }
}
