//! The indexed evaluator against the reference one, and a table of cases
//! covering each clause of the evaluation order.

use proptest::prelude::*;
use tierfs_core::access::{
    AccessEvaluator, AccessLevel, AccessPolicy, AccessRule, Principal, StorageOperationType as Op, Target,
};
use tierfs_tests::access_reference::{reference_allows, RefTarget};

const RESOURCES: &[&str] = &["a", "a/b", "a/b/c", "d/e", "a/", "a/b/", "a/b/c/", "d/", "@m", "@n", "*"];
const PRINCIPALS: &[&str] = &["alice", "bob", "role:staff", "role:ops", "*"];
const LEVELS: &[&str] = &["none", "read", "write", "admin", "full"];
const OPS: &[&str] = &["*", "read", "write", "delete", "list", "batch", "admin"];
const KEYS: &[&str] = &["a", "a/b", "a/b/c", "a/b/c/d", "a/x", "d/e", "d/e/f", "x"];
const PREFIXES: &[&str] = &["", "a/", "a/b/", "a/b/c/", "d/", "q/"];

fn rule() -> impl Strategy<Value = AccessRule> {
    (0..PRINCIPALS.len(), 0..RESOURCES.len(), 0..OPS.len(), 0..LEVELS.len())
        .prop_map(|(p, r, o, l)| AccessRule::parse(PRINCIPALS[p], RESOURCES[r], OPS[o], LEVELS[l]).unwrap())
}

fn level() -> impl Strategy<Value = AccessLevel> {
    (0..LEVELS.len()).prop_map(|l| LEVELS[l].parse().unwrap())
}

fn principal() -> impl Strategy<Value = Principal> {
    (prop::bool::ANY, prop::bool::ANY, prop::bool::ANY).prop_map(|(alice, staff, ops)| {
        let mut p = Principal::new(if alice { "alice" } else { "bob" });
        if staff {
            p = p.with_role("staff");
        }
        if ops {
            p = p.with_role("ops");
        }
        p
    })
}

fn target() -> impl Strategy<Value = RefTarget> {
    let backends = prop_oneof![
        Just(vec!["m".to_owned()]),
        Just(vec!["n".to_owned()]),
        Just(vec!["m".to_owned(), "n".to_owned()])
    ];
    prop_oneof![
        4 => ((0..KEYS.len()), backends.clone()).prop_map(|(k, b)| RefTarget::Key(KEYS[k].to_owned(), b)),
        2 => ((0..PREFIXES.len()), backends).prop_map(|(p, b)| RefTarget::Prefix(PREFIXES[p].to_owned(), b)),
        1 => prop_oneof![Just("m"), Just("n")].prop_map(|b| RefTarget::Backend(b.to_owned())),
        1 => Just(RefTarget::All),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (0..Op::ALL.len()).prop_map(|i| Op::ALL[i])
}

fn as_target(t: &RefTarget) -> Target<'_> {
    match t {
        RefTarget::Key(key, backends) => Target::Key { key, backends },
        RefTarget::Prefix(prefix, backends) => Target::Prefix { prefix, backends },
        RefTarget::Backend(b) => Target::Backend(b),
        RefTarget::All => Target::All,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn indexed_evaluator_agrees_with_the_reference(
        rules in prop::collection::vec(rule(), 0..14),
        default in level(),
        requests in prop::collection::vec((principal(), op(), target()), 1..16),
    ) {
        let policy = AccessPolicy { rules, default };
        let eval = AccessEvaluator::new(&policy);
        for (p, op, t) in &requests {
            let expected = reference_allows(&policy, p, *op, t);
            let got = eval.decide(p, *op, as_target(t));
            prop_assert_eq!(got.allowed, expected, "{:?} {:?} {:?} under {:#?}", p, op, t, policy);
        }
    }
}

fn decide(rules: &[(&str, &str, &str, &str)], default: &str, who: &Principal, op: Op, key: &str) -> bool {
    let rules = rules.iter().map(|(p, r, o, l)| AccessRule::parse(p, r, o, l).unwrap()).collect();
    let policy = AccessPolicy { rules, default: default.parse().unwrap() };
    let backends = vec!["main".to_owned()];
    AccessEvaluator::new(&policy).decide(who, op, Target::Key { key, backends: &backends }).allowed
}

#[test]
fn table_of_evaluation_cases() {
    let alice = Principal::new("alice");
    let staff = Principal::new("carol").with_role("staff");
    let nobody = Principal::new("mallory");
    type Case<'a> =
        (&'a str, &'a [(&'a str, &'a str, &'a str, &'a str)], &'a str, &'a Principal, Op, &'a str, bool);
    let cases: &[Case] = &[
        // No rule: the default decides, for each level.
        ("default none", &[], "none", &alice, Op::Read, "k", false),
        ("default read allows read", &[], "read", &alice, Op::Read, "k", true),
        ("default read allows list", &[], "read", &alice, Op::List, "k", true),
        ("default read refuses write", &[], "read", &alice, Op::Write, "k", false),
        ("default full allows admin", &[], "full", &alice, Op::Admin, "k", true),
        // Levels.
        ("write covers delete", &[("alice", "*", "*", "write")], "none", &alice, Op::Delete, "k", true),
        ("write covers batch", &[("alice", "*", "*", "write")], "none", &alice, Op::Batch, "k", true),
        ("write does not cover read", &[("alice", "*", "*", "write")], "none", &alice, Op::Read, "k", false),
        ("admin covers only admin", &[("alice", "*", "*", "admin")], "full", &alice, Op::Read, "k", false),
        ("admin covers admin", &[("alice", "*", "*", "admin")], "none", &alice, Op::Admin, "k", true),
        ("full covers all", &[("alice", "*", "*", "full")], "none", &alice, Op::Admin, "k", true),
        ("none covers nothing", &[("alice", "*", "*", "none")], "full", &alice, Op::Read, "k", false),
        // Specificity: exact key, longer prefix, shorter prefix, @backend, *.
        (
            "exact beats prefix",
            &[("alice", "a/", "*", "none"), ("alice", "a/k", "*", "read")],
            "none",
            &alice,
            Op::Read,
            "a/k",
            true,
        ),
        (
            "longer prefix beats shorter",
            &[("alice", "a/", "*", "full"), ("alice", "a/b/", "*", "read")],
            "none",
            &alice,
            Op::Write,
            "a/b/k",
            false,
        ),
        (
            "prefix beats backend",
            &[("alice", "@main", "*", "none"), ("alice", "a/", "*", "read")],
            "none",
            &alice,
            Op::Read,
            "a/k",
            true,
        ),
        (
            "backend beats star",
            &[("alice", "*", "*", "full"), ("alice", "@main", "*", "read")],
            "none",
            &alice,
            Op::Write,
            "a/k",
            false,
        ),
        ("star applies", &[("alice", "*", "*", "read")], "none", &alice, Op::Read, "z", true),
        ("a/* is the prefix a/", &[("alice", "a/*", "*", "read")], "none", &alice, Op::Read, "a/z", true),
        (
            "a prefix covers its directory key",
            &[("alice", "a/b/", "*", "read")],
            "none",
            &alice,
            Op::Read,
            "a/b",
            true,
        ),
        (
            "a prefix is not a partial name",
            &[("alice", "a/b/", "*", "read")],
            "none",
            &alice,
            Op::Read,
            "a/bc",
            false,
        ),
        // Deny at equal specificity.
        (
            "none beats grant at equal specificity",
            &[("alice", "a/", "*", "full"), ("role:staff", "a/", "*", "none")],
            "full",
            &Principal::new("alice").with_role("staff"),
            Op::Read,
            "a/k",
            false,
        ),
        (
            "grants combine at equal specificity",
            &[("carol", "a/", "*", "read"), ("role:staff", "a/", "*", "write")],
            "none",
            &staff,
            Op::Write,
            "a/k",
            true,
        ),
        // Roles and *.
        (
            "role rule applies to holders",
            &[("role:staff", "*", "*", "read")],
            "none",
            &staff,
            Op::Read,
            "k",
            true,
        ),
        (
            "role rule ignores others",
            &[("role:staff", "*", "*", "read")],
            "none",
            &alice,
            Op::Read,
            "k",
            false,
        ),
        (
            "* principal applies to everyone",
            &[("*", "pub/", "*", "read")],
            "none",
            &nobody,
            Op::Read,
            "pub/x",
            true,
        ),
        // Operation filter.
        (
            "rule for another operation is ignored",
            &[("alice", "a/", "write", "none")],
            "full",
            &alice,
            Op::Read,
            "a/k",
            true,
        ),
        (
            "rule for this operation applies",
            &[("alice", "a/", "read", "none")],
            "full",
            &alice,
            Op::Read,
            "a/k",
            false,
        ),
    ];
    for (name, rules, default, who, op, key, expected) in cases {
        assert_eq!(decide(rules, default, who, *op, key), *expected, "case `{name}`");
    }
}
