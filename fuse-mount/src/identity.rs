//! Who is calling: the kernel's uid, gid and pid mapped to a principal.
//!
//! - The principal id is the user name from the password database
//!   (`getpwuid_r`), or `uid:N` when the uid has no name; `--user-map
//!   UID=NAME` overrides both.
//! - Every group of the caller (the primary gid from the request and the
//!   supplementary groups from `/proc/PID/status`) becomes a role
//!   `group:NAME` (the group database name, `--group-map GID=NAME`, or the
//!   number), matched by rules written `role:group:NAME`.
//!
//! Answers are cached for a second per (pid, uid, gid), and names for a
//! minute, so a request costs a hash lookup.

use std::collections::HashMap;
use std::ffi::CStr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tierfs_core::access::Principal;
use tierfs_core::{Session, StorageManager};

/// How long a caller's principal is reused.
const CALLER_TTL: Duration = Duration::from_secs(1);
/// How long a user or group name is reused.
const NAME_TTL: Duration = Duration::from_secs(60);
/// Most cached callers before the cache is cleared.
const CACHE_MAX: usize = 4096;

/// The kernel's view of who makes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process (thread) id; 0 when the kernel gives none.
    pub pid: u32,
}

/// Explicit names for uids and gids, from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityMap {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl IdentityMap {
    /// Adds `UID=NAME`.
    pub fn add_user(&mut self, spec: &str) -> Result<(), String> {
        let (id, name) = parse_spec(spec, "--user-map")?;
        self.users.insert(id, name);
        Ok(())
    }

    /// Adds `GID=NAME`.
    pub fn add_group(&mut self, spec: &str) -> Result<(), String> {
        let (id, name) = parse_spec(spec, "--group-map")?;
        self.groups.insert(id, name);
        Ok(())
    }
}

fn parse_spec(spec: &str, flag: &str) -> Result<(u32, String), String> {
    let (id, name) = spec
        .split_once('=')
        .ok_or_else(|| format!("{flag} `{spec}`: write ID=NAME, for example 1000=alice"))?;
    let id = id.trim().parse().map_err(|_| format!("{flag} `{spec}`: `{id}` is not a numeric id"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{flag} `{spec}`: the name must be non-empty, without spaces"));
    }
    Ok((id, name.to_owned()))
}

/// Sessions by (pid, uid, gid), with when they were made.
type CallerCache = Mutex<HashMap<(u32, u32, u32), (Instant, Session)>>;

/// Maps callers to sessions of the manager.
#[derive(Debug)]
pub struct Identities {
    manager: StorageManager,
    map: IdentityMap,
    callers: CallerCache,
    users: Mutex<HashMap<u32, (Instant, String)>>,
    groups: Mutex<HashMap<u32, (Instant, String)>>,
}

impl Identities {
    /// Identities over `manager` with the explicit names of `map`.
    pub fn new(manager: StorageManager, map: IdentityMap) -> Self {
        Identities {
            manager,
            map,
            callers: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The session of `caller`. With `open_access` (no rules, no audit)
    /// the groups are not looked up: they could not change anything.
    pub fn session(&self, caller: &Caller, open_access: bool) -> Session {
        let cache_key =
            if open_access { (0, caller.uid, u32::MAX) } else { (caller.pid, caller.uid, caller.gid) };
        let now = Instant::now();
        if let Some((at, session)) = self.callers.lock().get(&cache_key) {
            if now.duration_since(*at) < CALLER_TTL {
                return session.clone();
            }
        }
        let principal =
            if open_access { Principal::new(self.user_name(caller.uid)) } else { self.principal(caller) };
        let session = self.manager.session(principal);
        let mut callers = self.callers.lock();
        if callers.len() >= CACHE_MAX {
            callers.clear();
        }
        callers.insert(cache_key, (now, session.clone()));
        session
    }

    /// The principal of `caller`, with a `group:NAME` role per group.
    pub fn principal(&self, caller: &Caller) -> Principal {
        let mut gids = vec![caller.gid];
        if caller.pid != 0 {
            for gid in supplementary_groups(caller.pid) {
                if !gids.contains(&gid) {
                    gids.push(gid);
                }
            }
        }
        let mut principal = Principal::new(self.user_name(caller.uid));
        for gid in gids {
            principal = principal.with_role(format!("group:{}", self.group_name(gid)));
        }
        principal
    }

    /// The principal id of `uid`.
    pub fn user_name(&self, uid: u32) -> String {
        if let Some(name) = self.map.users.get(&uid) {
            return name.clone();
        }
        cached(&self.users, uid, || lookup_user(uid).unwrap_or_else(|| format!("uid:{uid}")))
    }

    /// The role name (without `group:`) of `gid`.
    pub fn group_name(&self, gid: u32) -> String {
        if let Some(name) = self.map.groups.get(&gid) {
            return name.clone();
        }
        cached(&self.groups, gid, || lookup_group(gid).unwrap_or_else(|| gid.to_string()))
    }

    /// Forgets cached callers (after a reconfiguration).
    pub fn clear(&self) {
        self.callers.lock().clear();
    }
}

fn cached(cache: &Mutex<HashMap<u32, (Instant, String)>>, id: u32, f: impl FnOnce() -> String) -> String {
    let now = Instant::now();
    if let Some((at, name)) = cache.lock().get(&id) {
        if now.duration_since(*at) < NAME_TTL {
            return name.clone();
        }
    }
    let name = f();
    cache.lock().insert(id, (now, name.clone()));
    name
}

/// The supplementary groups of process `pid` (empty if it is gone).
pub fn supplementary_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return Vec::new() };
    parse_groups(&status)
}

fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// The user name of `uid` from the password database.
pub fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value to be overwritten.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: the pointers are valid for the call and `buf` is as long as we say.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        return Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned());
    }
}

/// The group name of `gid` from the group database.
pub fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero group is a valid value to be overwritten.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: the pointers are valid for the call and `buf` is as long as we say.
        let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`.
        return Some(unsafe { CStr::from_ptr(grp.gr_name) }.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierfs_core::Config;

    #[test]
    fn specs_parse() {
        let mut map = IdentityMap::default();
        map.add_user("1000=alice").unwrap();
        map.add_group(" 50 = staff ").unwrap();
        assert_eq!(map.users[&1000], "alice");
        assert_eq!(map.groups[&50], "staff");
        assert!(map.add_user("alice").is_err());
        assert!(map.add_user("x=alice").is_err());
        assert!(map.add_user("1=a b").is_err());
    }

    #[test]
    fn groups_from_proc_status() {
        assert_eq!(parse_groups("Name:\tx\nGroups:\t4 24 27 \nNgid:\t0\n"), vec![4, 24, 27]);
        assert_eq!(parse_groups("Groups:\n"), Vec::<u32>::new());
        assert_eq!(parse_groups("Name: x\n"), Vec::<u32>::new());
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(lookup_user(0).as_deref(), Some("root"));
        assert_eq!(lookup_group(0).as_deref(), Some("root"));
        assert_eq!(lookup_user(4_000_000_000), None);
    }

    #[tokio::test]
    async fn principals_carry_group_roles() {
        let manager = StorageManager::open(Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap())
            .await
            .unwrap();
        let mut map = IdentityMap::default();
        map.add_user("4000000000=ghost").unwrap();
        map.add_group("4000000001=phantoms").unwrap();
        let ids = Identities::new(manager, map);
        let caller = Caller { uid: 4_000_000_000, gid: 4_000_000_001, pid: 0 };
        let p = ids.principal(&caller);
        assert_eq!(p.id(), "ghost");
        assert!(p.has_role("group:phantoms"));
        let unknown = Caller { uid: 4_000_000_002, gid: 4_000_000_003, pid: std::process::id() };
        let p = ids.principal(&unknown);
        assert_eq!(p.id(), "uid:4000000002");
        assert!(p.has_role("group:4000000003"));
        assert_eq!(ids.session(&caller, false).principal().id(), "ghost");
        assert_eq!(ids.session(&caller, true).principal().roles().len(), 0);
    }
}
