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
}
