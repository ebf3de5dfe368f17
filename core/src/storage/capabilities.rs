/// What a backend can do. The manager and the front ends consult this
/// instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `batch` applies all operations or none.
    pub atomic_batch: bool,
    /// `get_range` and ranged `read` fetch only the requested bytes.
    pub range_read: bool,
    /// `rename` moves a key atomically.
    pub rename: bool,
    /// Acknowledged writes survive a restart of the process.
    pub persistent: bool,
    /// `PutOptions::if_not_exists` is honoured atomically.
    pub conditional_put: bool,
    /// `read` and `write` stream without holding the whole value in memory.
    pub streaming: bool,
    /// `patch` is native: atomic (all of it or nothing, across a crash
    /// too), and without moving the whole value through the backend's I/O
    /// (local writes the patched ranges; memory copies the value in RAM).
    /// Without it `patch` still works, by rewriting the value.
    pub partial_write: bool,
}
