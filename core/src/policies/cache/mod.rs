//! `CacheStorage`: a cache tier in front of a primary backend.
