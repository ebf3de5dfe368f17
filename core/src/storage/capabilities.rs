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
    /// Other hosts using the same store see the values (a network
    /// service such as an S3 bucket), so the data outlives this machine.
    pub shared: bool,
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

impl Capabilities {
    /// Every capability: the start of an intersection.
    pub const ALL: Capabilities = Capabilities {
        atomic_batch: true,
        range_read: true,
        rename: true,
        persistent: true,
        shared: true,
        conditional_put: true,
        streaming: true,
        partial_write: true,
    };

    /// What both offer: each capability holds only if it holds for both
    /// (a layer over several stores offers what all of them can).
    ///
    /// ```
    /// use tierfs_core::Capabilities;
    ///
    /// let a = Capabilities { rename: false, ..Capabilities::ALL };
    /// let b = Capabilities { streaming: false, ..Capabilities::ALL };
    /// let both = a.and(b);
    /// assert!(!both.rename && !both.streaming && both.range_read);
    /// ```
    pub fn and(self, other: Capabilities) -> Capabilities {
        Capabilities {
            atomic_batch: self.atomic_batch && other.atomic_batch,
            range_read: self.range_read && other.range_read,
            rename: self.rename && other.rename,
            persistent: self.persistent && other.persistent,
            shared: self.shared && other.shared,
            conditional_put: self.conditional_put && other.conditional_put,
            streaming: self.streaming && other.streaming,
            partial_write: self.partial_write && other.partial_write,
        }
    }
}
