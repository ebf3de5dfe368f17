//! Two Unix users with different access rules on one mount: each sees and
//! changes only what its rules allow; refusals are `EACCES` ("Permission
//! denied") and leave audit records.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn two_users_with_different_rules() {
    if !can_mount() || !need("runuser") {
        return;
    }
    // Names of this process's own, so that another run of the suite on
    // the machine cannot remove them under this one.
    let names = unique_names(&["tfu-alice", "tfu-bob", "tfu-team"]);
    let (alice, bob, team) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    let _users = Users::create(&[(alice, &[team]), (bob, &[team])]);
    let dir = tempdir();
    // The test users must reach the mount point.
    sh(dir.path(), "chmod 755 .");
    let config = dir.path().join("tierfs.toml");
    fs::write(
        &config,
        format!(
            r#"
[backends.main]
type = "local"
path = "data"

[audit]
path = "audit/audit.log"

[access]
default = "none"

[[access.rules]]
principal = "root"
resource = "*"
level = "full"

[[access.rules]]
principal = "{alice}"
resource = "alice/"
level = "full"

[[access.rules]]
principal = "{bob}"
resource = "bob/"
level = "full"

[[access.rules]]
principal = "{bob}"
resource = "alice/shared/"
level = "read"

[[access.rules]]
principal = "role:group:{team}"
resource = "team/"
level = "full"
"#
        ),
    )
    .unwrap();
    let spec = MountSpec {
        config: Some(config.clone()),
        args: vec!["--allow-other".into()],
        ..MountSpec::default()
    };
    let m = Mount::start(dir.path(), &dir.path().join("data"), spec);
    // Root sets up the tree with permissive modes, so refusals below come
    // from the access rules, not from file modes.
    sh(&m.mnt, &format!("mkdir -p alice/shared bob team && chmod 777 alice alice/shared bob && chgrp {team} team && chmod 2775 team"));
    let mnt = &m.mnt;

    allowed(alice, mnt, "echo mine > alice/a.txt && cat alice/a.txt");
    allowed(alice, mnt, "echo for bob > alice/shared/note");
    allowed(bob, mnt, "echo bobs > bob/b.txt");

    // Bob may read alice/shared/ only, and write nothing of alice's.
    assert_eq!(allowed(bob, mnt, "cat alice/shared/note"), "for bob\n");
    denied(bob, mnt, "cat alice/a.txt");
    denied(bob, mnt, "echo x > alice/shared/x");
    denied(bob, mnt, "echo x >> alice/shared/note");
    denied(bob, mnt, "rm alice/shared/note");
    denied(bob, mnt, "mkdir alice/bobdir");
    // The listing of alice/ shows bob only what he may read.
    assert_eq!(allowed(bob, mnt, "ls alice"), "shared\n");
    // Alice may not touch bob's files, nor the top level.
    denied(alice, mnt, "cat bob/b.txt");
    denied(alice, mnt, "ls bob");
    denied(alice, mnt, "mkdir alice2");
    denied(alice, mnt, "mv alice/a.txt bob/");
    // Both are in the team group: team/ is theirs (set-group-id: files get the team's group).
    allowed(alice, mnt, "umask 002 && echo from alice > team/t.txt");
    assert_eq!(sh(mnt, "stat -c '%G %a' team/t.txt"), format!("{team} 664\n"));
    allowed(bob, mnt, "cat team/t.txt && echo from bob >> team/t.txt");
    assert_eq!(allowed(alice, mnt, "cat team/t.txt"), "from alice\nfrom bob\n");
    // Files carry their creators as owners.
    let owners = sh(mnt, "stat -c '%U %G %n' alice/a.txt bob/b.txt");
    assert_eq!(owners, format!("{alice} {alice} alice/a.txt\n{bob} {bob} bob/b.txt\n"));
    assert!(m.unmount().success());

    // Every refusal left an audit record naming the principal, and the chain holds.
    let log = fs::read_to_string(dir.path().join("audit/audit.log")).unwrap();
    let denied_for = |who: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"principal\":\"{who}\"")) && l.contains("\"denied\""))
            .count()
    };
    assert!(denied_for(bob) >= 4, "bob's refusals are audited:\n{log}");
    assert!(denied_for(alice) >= 3, "alice's refusals are audited:\n{log}");
    let out = Command::new(TIERFS).args(["audit", "verify", "--config"]).arg(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
