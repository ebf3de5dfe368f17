//! `RedundantStorage`: copies of every key on several backends.
