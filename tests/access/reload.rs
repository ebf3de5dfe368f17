//! Reloads under a concurrent workload: nothing lost or applied twice, and
//! no error but the intended denials.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tierfs_core::{Config, ErrorKind, Key, Storage};

use super::{as_user, manager};

const BASE: &str = r#"
[backends.main]
type = "local"
path = "{dir}/store"
[access]
default = "none"
[[access.rules]]
principal = "root"
resource = "*"
level = "full"
[[access.rules]]
principal = "*"
resource = "work/"
level = "full"
"#;

/// The same, with task 7's area made read-only.
const RESTRICTED: &str = "[[access.rules]]\nprincipal = \"t7\"\nresource = \"work/t7/\"\nlevel = \"read\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_nothing() {
    let (m, dir) = manager(BASE).await;
    let base = BASE.replace("{dir}", dir.path().to_str().unwrap());
    let permissive = Config::parse(&base, None).unwrap();
    let restricted = Config::parse(&format!("{base}{RESTRICTED}"), None).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let denials = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (session, stop, denials) = (as_user(&m, &format!("t{t}"), &[]), stop.clone(), denials.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let k = Key::new(format!("work/t{t}/{i}")).unwrap();
                match session.put(&k, Bytes::from(format!("{t}:{i}")), Default::default()).await {
                    Ok(_) => acked.push(i),
                    Err(e) if e.kind() == ErrorKind::PermissionDenied && t == 7 => {
                        denials.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("task {t}: unexpected error {e}"),
                }
                if let Some(prev) = acked.last() {
                    let k = Key::new(format!("work/t{t}/{prev}")).unwrap();
                    let v = session.get(&k).await.unwrap_or_else(|e| panic!("task {t}: read failed: {e}"));
                    assert_eq!(v, Bytes::from(format!("{t}:{prev}")));
                }
                i += 1;
            }
            (t, i, acked)
        }));
    }
    let admin = m.session("root");
    for round in 0..20 {
        let config = if round % 2 == 0 { restricted.clone() } else { permissive.clone() };
        admin.reload_config(config).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // A reload that fails validation changes nothing.
    let mut broken = permissive.clone();
    broken.policy = Some(tierfs_core::config::PolicyConfig::always_local("nope"));
    assert_eq!(admin.reload_config(broken).await.unwrap_err().kind(), ErrorKind::Config);
    stop.store(true, Ordering::Relaxed);

    let root = as_user(&m, "root", &[]);
    for task in tasks {
        let (t, attempts, acked) = task.await.unwrap();
        assert!(!acked.is_empty(), "task {t} made no progress");
        let acked_set: std::collections::HashSet<u32> = acked.iter().copied().collect();
        for i in 0..attempts {
            let k = Key::new(format!("work/t{t}/{i}")).unwrap();
            match root.get(&k).await {
                Ok(v) => {
                    assert!(acked_set.contains(&i), "task {t}: key {i} present though refused");
                    assert_eq!(v, Bytes::from(format!("{t}:{i}")));
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                    assert!(!acked_set.contains(&i), "task {t}: acknowledged write {i} lost");
                }
            }
        }
    }
    assert!(denials.load(Ordering::Relaxed) > 0, "the restricted configuration never applied");
}
