//! Access control: who may do what, decided by one evaluator for every face.
//!
//! Semantics (the design contract's "Access control"):
//! - A rule matches when its principal (a user id, `role:NAME`, or `*`),
//!   its operation type (or any) and its resource (an exact key, a prefix
//!   `a/b/` or `a/b/*`, `@backend`, or `*`) match the request.
//! - The most specific matching resource wins: exact key, then longer
//!   prefix, then `@backend`, then `*`. At equal specificity an explicit
//!   `None` beats any grant; otherwise the grants combine.
//! - No match: the policy's `default`.
//! - `Read` covers Read and List; `Write` covers Write, Delete and Batch;
//!   `Admin` covers Admin; `Full` covers all; `None` nothing.
//!
//! Users' guide with worked examples: `docs/access-control.md`.

mod delegation;
mod evaluator;
mod operation;
mod principal;
mod types;

pub use delegation::{Delegation, KnownRoles};
pub use evaluator::{AccessEvaluator, Decision, Target};
pub use operation::{AdminCommand, StorageOperation};
pub use principal::Principal;
pub use types::{
    AccessConfig, AccessLevel, AccessPolicy, AccessRule, PrincipalPattern, Provenance, Resource, RuleConfig,
    StorageOperationType,
};
