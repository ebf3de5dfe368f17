//! Scenario tests of the policies and the manager, with real backends and
//! injected faults.

mod cache;
mod classes;
mod custom;
mod full_disk;
mod health;
mod local_patch;
mod manager;
mod quotas;
mod read_only;
mod redundant;
mod sharded;
mod tiered;
