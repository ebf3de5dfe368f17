//! Two Unix users with different access rules on one mount: each sees and
//! changes only what its rules allow; refusals are `EACCES` ("Permission
//! denied") and leave audit records.

mod common;

use std::fs;
use std::process::Command;

use common::*;

const ALICE: &str = "tierfs-alice";
const BOB: &str = "tierfs-bob";
const TEAM: &str = "tierfs-team";

#[test]
fn two_users_with_different_rules() {
    if !can_mount() || !need("runuser") {
        return;
    }
    let _users = Users::create(&[(ALICE, &[TEAM]), (BOB, &[TEAM])]);
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
principal = "{ALICE}"
resource = "alice/"
level = "full"

[[access.rules]]
principal = "{BOB}"
resource = "bob/"
level = "full"

[[access.rules]]
principal = "{BOB}"
resource = "alice/shared/"
level = "read"

[[access.rules]]
principal = "role:group:{TEAM}"
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
    sh(&m.mnt, &format!("mkdir -p alice/shared bob team && chmod 777 alice alice/shared bob && chgrp {TEAM} team && chmod 2775 team"));
    let mnt = &m.mnt;

    allowed(ALICE, mnt, "echo mine > alice/a.txt && cat alice/a.txt");
    allowed(ALICE, mnt, "echo for bob > alice/shared/note");
    allowed(BOB, mnt, "echo bobs > bob/b.txt");

    // Bob may read alice/shared/ only, and write nothing of alice's.
    assert_eq!(allowed(BOB, mnt, "cat alice/shared/note"), "for bob\n");
    denied(BOB, mnt, "cat alice/a.txt");
    denied(BOB, mnt, "echo x > alice/shared/x");
    denied(BOB, mnt, "echo x >> alice/shared/note");
    denied(BOB, mnt, "rm alice/shared/note");
    denied(BOB, mnt, "mkdir alice/bobdir");
    // The listing of alice/ shows bob only what he may read.
    assert_eq!(allowed(BOB, mnt, "ls alice"), "shared\n");
    // Alice may not touch bob's files, nor the top level.
    denied(ALICE, mnt, "cat bob/b.txt");
    denied(ALICE, mnt, "ls bob");
    denied(ALICE, mnt, "mkdir alice2");
    denied(ALICE, mnt, "mv alice/a.txt bob/");
    // Both are in the team group: team/ is theirs (set-group-id: files get the team's group).
    allowed(ALICE, mnt, "umask 002 && echo from alice > team/t.txt");
    assert_eq!(sh(mnt, "stat -c '%G %a' team/t.txt"), format!("{TEAM} 664\n"));
    allowed(BOB, mnt, "cat team/t.txt && echo from bob >> team/t.txt");
    assert_eq!(allowed(ALICE, mnt, "cat team/t.txt"), "from alice\nfrom bob\n");
    // Files carry their creators as owners.
    let owners = sh(mnt, "stat -c '%U %G %n' alice/a.txt bob/b.txt");
    assert_eq!(owners, format!("{ALICE} {ALICE} alice/a.txt\n{BOB} {BOB} bob/b.txt\n"));
    assert!(m.unmount().success());

    // Every refusal left an audit record naming the principal, and the chain holds.
    let log = fs::read_to_string(dir.path().join("audit/audit.log")).unwrap();
    let denied_for = |who: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"principal\":\"{who}\"")) && l.contains("\"denied\""))
            .count()
    };
    assert!(denied_for(BOB) >= 4, "bob's refusals are audited:\n{log}");
    assert!(denied_for(ALICE) >= 3, "alice's refusals are audited:\n{log}");
    let out = Command::new(TIERFS).args(["audit", "verify", "--config"]).arg(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
