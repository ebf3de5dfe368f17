use std::fmt;

/// Who performs an operation: a user id and the roles it holds.
///
/// In-process callers (Rust, Python, Node) name their principal; the FUSE
/// daemon builds it from the kernel's uid and gids (`group:NAME` roles).
///
/// ```
/// use tierfs_core::access::Principal;
///
/// let alice = Principal::new("alice").with_role("staff");
/// assert!(alice.has_role("staff"));
/// assert_eq!(alice.to_string(), "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    id: String,
    roles: Vec<String>,
}

impl Principal {
    /// A principal with no roles.
    pub fn new(id: impl Into<String>) -> Self {
        Principal { id: id.into(), roles: Vec::new() }
    }

    /// Adds a role (written without the `role:` prefix).
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// The user id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The roles held.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether `role` is held.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The principal the embedded default trusts: the current OS user.
    pub fn current_user() -> Self {
        let name = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid:{}", unsafe { libc::getuid() })
        });
        Principal::new(name)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl From<&str> for Principal {
    fn from(id: &str) -> Self {
        Principal::new(id)
    }
}

impl From<String> for Principal {
    fn from(id: String) -> Self {
        Principal::new(id)
    }
}
