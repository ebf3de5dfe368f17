//! Metadata in one header, and object_store metadata as ours.

use std::time::{SystemTime, UNIX_EPOCH};

use object_store::{Attribute, Attributes};

use super::META_ATTRIBUTE;
use crate::key::Key;
use crate::storage::{Metadata, ObjectMeta};

/// The map as percent-encoded JSON: header-safe ASCII for any UTF-8.
pub(super) fn encode(metadata: &Metadata) -> String {
    let json = serde_json::to_string(metadata).expect("string maps serialize");
    super::path::percent_encode(&json, b"-_.~")
}

/// The map back; an unreadable header gives an empty map (written by
/// something other than TierFS).
pub(super) fn decode(header: &str) -> Metadata {
    let bytes = header.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], header.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                raw.push(b);
                i += 3;
            }
            (b, _) => {
                raw.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&raw).unwrap_or_default()
}

/// Our metadata of an object.
pub(super) fn object_meta(key: Key, meta: &object_store::ObjectMeta, attributes: &Attributes) -> ObjectMeta {
    let metadata = attributes
        .get(&Attribute::Metadata(META_ATTRIBUTE.into()))
        .map(|v| decode(v.as_ref()))
        .unwrap_or_default();
    let modified =
        UNIX_EPOCH + std::time::Duration::from_millis(meta.last_modified.timestamp_millis().max(0) as u64);
    ObjectMeta {
        key,
        size: meta.size,
        modified: if modified == UNIX_EPOCH { SystemTime::now() } else { modified },
        version: meta.e_tag.clone().or_else(|| meta.version.clone()).unwrap_or_default(),
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_header() {
        let mut m = Metadata::new();
        m.insert("posix.mode".into(), "100644".into());
        m.insert("Mixed.Case".into(), "../ünï cödé \"quoted\"\n".into());
        let header = encode(&m);
        assert!(header.bytes().all(|b| b.is_ascii_graphic()), "{header}");
        assert_eq!(decode(&header), m);
    }
}
