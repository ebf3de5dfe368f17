//! Scenarios of `RedundantStorage`.
