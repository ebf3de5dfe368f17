//! Access control and audit: the cost of one access check with 10, 1,000
//! and 100,000 rules, and audit appends in each flush mode.
//!
//! Targets: a check under 1 µs, and within 2x between 10 and 100,000
//! rules; audit appends at least 100,000 records/s with batched writes
//! (and the honest figure with an fsync per record). The cost of the keyed
//! chain: sealing one record's bytes with HMAC-SHA-256 against hashing them
//! with plain SHA-256, in the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tierfs_core::access::{
    AccessEvaluator, AccessLevel, AccessPolicy, AccessRule, Principal, StorageOperationType, Target,
};
use tierfs_core::audit::{AuditConfig, AuditLog, AuditResult, FlushMode};

mod common;

/// `n` rules over 1,000 users, each with prefixes of its own, plus a few
/// role and `*` rules, as a large deployment would have.
fn policy(n: usize) -> AccessPolicy {
    let mut rules = vec![
        AccessRule::parse("role:staff", "shared/", "*", "read").unwrap(),
        AccessRule::parse("*", "public/", "*", "read").unwrap(),
        AccessRule::parse("admin", "*", "*", "full").unwrap(),
    ];
    for i in 0..n.saturating_sub(rules.len()) {
        let user = i % 1000;
        let resource = format!("home/user{user}/p{}/", i / 1000);
        rules.push(AccessRule::parse(&format!("user{user}"), &resource, "*", "full").unwrap());
    }
    AccessPolicy { rules, default: AccessLevel::None }
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("access_check");
    let who = Principal::new("user3").with_role("staff").with_role("group:users");
    let backends = vec!["main".to_owned()];
    for n in [10usize, 1_000, 100_000] {
        let eval = AccessEvaluator::new(&policy(n));
        let key = "home/user3/p0/docs/2026/report.txt";
        assert!(
            eval.decide(&who, StorageOperationType::Read, Target::Key { key, backends: &backends }).allowed
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &eval, |b, eval| {
            b.iter(|| {
                black_box(eval.decide(
                    black_box(&who),
                    StorageOperationType::Read,
                    Target::Key { key: black_box(key), backends: &backends },
                ))
            })
        });
    }
    group.finish();
}

fn audit(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    for (name, flush, fsync) in [
        ("batch", FlushMode::Batch, false),
        ("record", FlushMode::Record, false),
        ("record_fsync", FlushMode::Record, true),
    ] {
        let dir = common::temp_dir();
        let config = AuditConfig {
            path: dir.path().join("audit.log"),
            flush,
            fsync,
            max_file_mib: 1024,
            ..Default::default()
        };
        let log = AuditLog::open(&config).unwrap();
        if fsync {
            group.sample_size(10);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                log.append(
                    "user7",
                    "write",
                    &["home/user7/p0/docs/2026/report.txt"],
                    AuditResult::Allowed,
                    None,
                )
                .unwrap()
            })
        });
        drop(log);
    }
    group.finish();
}

/// One record's sealed bytes (as the log writes them), keyed against plain.
fn chain(c: &mut Criterion) {
    use sha2::Digest;
    let mut group = c.benchmark_group("audit_chain");
    group.throughput(Throughput::Elements(1));
    let line = br#"{"seq":123456,"time":"2026-12-06T03:00:00.123456789Z","principal":"user7","operation":"write","keys":["home/user7/p0/docs/2026/report.txt"],"result":"allowed","prev":"9f2c1d0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d""#;
    let key = tierfs_core::audit::chain::ChainKey::from_bytes(&[7u8; 32], std::path::Path::new("bench.key"));
    group.bench_function("hmac_sha256", |b| b.iter(|| black_box(key.seal(black_box(line)))));
    group.bench_function("sha256", |b| {
        b.iter(|| black_box(hex::encode(sha2::Sha256::digest(black_box(line)))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = checks, audit, chain
}
criterion_main!(benches);
