"""Access control and audit through ``as_principal``: a configuration with
``[access]`` rules and an ``[audit]`` log, administration at run time."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

import tierfs

CONFIG = """
[backends.main]
type = "memory"

[access]
default = "none"

[[access.rules]]
principal = "*"
resource = "public/"
level = "read"

[[access.rules]]
principal = "role:staff"
resource = "*"
level = "full"

[[access.rules]]
principal = "role:staff"
resource = "public/"
level = "write"

[[access.rules]]
principal = "carol"
resource = "public/salaries.csv"
level = "none"

[[access.rules]]
principal = "lead"
resource = "team/"
level = "full"

[[access.rules]]
principal = "root"
resource = "*"
level = "full"

# The most specific resource decides: root needs its grant at each level.
[[access.rules]]
principal = "root"
resource = "public/"
level = "full"

[[access.rules]]
principal = "root"
resource = "public/salaries.csv"
level = "full"

[[access.rules]]
principal = "root"
resource = "team/"
level = "full"

[audit]
path = "{dir}/audit/audit.log"
"""


@pytest.fixture
def admin(write_config) -> tierfs.Store:
    store = tierfs.open(write_config(CONFIG), principal="root")
    yield store
    store.close()


def test_worked_example(admin: tierfs.Store) -> None:
    admin.put("public/a.txt", b"hello")
    admin.put("public/salaries.csv", b"secret")
    admin.put("home/x", b"home")
    bob = admin.as_principal("bob")
    carol = admin.as_principal("carol", roles=["staff"])

    assert bob.get("public/a.txt") == b"hello"
    with pytest.raises(tierfs.PermissionDenied) as info:
        bob.put("public/a.txt", b"defaced")
    assert info.value.key == "public/a.txt"
    with pytest.raises(PermissionError):
        bob.get("home/x")

    carol.put("public/a.txt", b"edited")
    # A metadata change is a write, checked and audited as one.
    with pytest.raises(tierfs.PermissionDenied):
        bob.set_metadata("public/a.txt", {"owner": "bob"})
    assert carol.set_metadata("public/a.txt", {"owner": "carol"}).metadata == {"owner": "carol"}
    carol.delete("home/x")
    with pytest.raises(tierfs.PermissionDenied):
        carol.get("public/salaries.csv")
    assert admin.get("public/a.txt") == b"edited"


def test_listing_hides_what_cannot_be_read(admin: tierfs.Store) -> None:
    for k in ["public/a.txt", "public/salaries.csv", "home/x"]:
        admin.put(k, b"x")
    carol = admin.as_principal("carol", roles=["staff"])
    assert [e.key for e in carol.list("public/")] == ["public/a.txt"]
    bob = admin.as_principal("bob")
    assert [e.key for e in bob.list("", recursive=False)] == ["public/"]
    with pytest.raises(tierfs.PermissionDenied):
        list(bob.list("home/"))


def test_batch_is_checked_whole(admin: tierfs.Store) -> None:
    staff = admin.as_principal("dan", roles=["staff"])
    carol = admin.as_principal("carol", roles=["staff"])
    staff.batch([("put", "home/1", b"1")])
    with pytest.raises(tierfs.PermissionDenied):
        carol.batch([("put", "home/2", b"2"), ("put", "public/salaries.csv", b"x")])
    assert not admin.exists("home/2")


def test_audit_records_allowed_and_denied(admin: tierfs.Store) -> None:
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    admin.put("public/a.txt", b"hello")
    bob = admin.as_principal("bob")
    bob.get("public/a.txt")
    with pytest.raises(tierfs.PermissionDenied):
        bob.put("public/a.txt", b"nope")
    records = admin.audit_log(principal="bob")
    assert [(r["operation"], r["result"]) for r in records] == [("read", "allowed"), ("write", "denied")]
    denied = admin.audit_log(principal="bob", result="denied")
    assert len(denied) == 1 and denied[0]["keys"] == ["public/a.txt"]
    r = denied[0]
    assert set(r) >= {"seq", "time", "timestamp", "principal", "operation", "keys", "result", "detail", "prev", "hash"}
    assert r["timestamp"] >= start
    assert admin.audit_log(since=time.time() + 60) == []
    assert len(admin.audit_log(key_prefix="public/", limit=1)) == 1
    with pytest.raises(tierfs.InvalidInput):
        admin.audit_log(result="maybe")
    with pytest.raises(tierfs.PermissionDenied):
        bob.audit_log()


def test_rules_at_run_time_and_delegation(admin: tierfs.Store) -> None:
    admin.put("shared/doc", b"doc")
    bob = admin.as_principal("bob")
    with pytest.raises(tierfs.PermissionDenied):
        bob.get("shared/doc")
    admin.add_rule("bob", "shared/", "*", "read")
    assert bob.get("shared/doc") == b"doc"
    rules = admin.access_policy()["rules"]
    added = {"principal": "bob", "resource": "shared/", "operation": "*", "level": "read"}
    # A rule added at run time records who added it, with what authority.
    assert {**added, "added_by": "root", "authority": "*"} in rules
    admin.remove_rule("bob", "shared/", "*", "read")
    with pytest.raises(tierfs.PermissionDenied):
        bob.get("shared/doc")
    with pytest.raises(tierfs.NotFound):
        admin.remove_rule("bob", "shared/", "*", "read")

    lead = admin.as_principal("lead")
    admin.put("team/doc", b"team")
    lead.add_rule("bob", "team/doc", level="read")
    assert bob.get("team/doc") == b"team"
    with pytest.raises(tierfs.PermissionDenied):
        lead.add_rule("bob", "other/", level="read")
    with pytest.raises(tierfs.PermissionDenied):
        bob.add_rule("bob", "*", level="full")
    with pytest.raises(tierfs.PermissionDenied):
        bob.access_policy()
    admin_ops = [r["operation"] for r in admin.audit_log(principal="lead")]
    assert "admin:add_rule" in admin_ops or any(op.startswith("admin:") for op in admin_ops)


def test_a_delegate_cannot_lift_a_deny_or_lock_out_an_administrator(admin: tierfs.Store) -> None:
    admin.put("team/secret.txt", b"the secret")
    admin.add_rule("lead", "team/secret.txt", "read", "none")
    lead = admin.as_principal("lead")
    # root's deny is root's: lead can neither remove it nor read past it.
    with pytest.raises(tierfs.PermissionDenied, match="added by `root`"):
        lead.remove_rule("lead", "team/secret.txt", "read", "none")
    with pytest.raises(tierfs.PermissionDenied):
        lead.get("team/secret.txt")
    with pytest.raises(tierfs.PermissionDenied):
        lead.add_rule("lead", "team/secret.txt", "read", "read")
    # Nor can lead shut root out of team/.
    with pytest.raises(tierfs.PermissionDenied, match="`root`"):
        lead.add_rule("root", "team/", "*", "none")
    with pytest.raises(tierfs.PermissionDenied):
        lead.add_rule("*", "team/", "*", "none")
    assert admin.get("team/secret.txt") == b"the secret"
    # lead's own rules are lead's to remove; root can always undo.
    lead.add_rule("bob", "team/doc", "*", "read")
    rules = admin.access_policy()["rules"]
    assert {"principal": "bob", "resource": "team/doc", "operation": "*", "level": "read",
            "added_by": "lead", "authority": "team/"} in rules
    lead.remove_rule("bob", "team/doc", "*", "read")
    admin.remove_rule("lead", "team/secret.txt", "read", "none")
    assert lead.get("team/secret.txt") == b"the secret"
    refused = admin.audit_log(principal="lead", result="denied")
    assert sum(r["operation"].startswith("admin:") for r in refused) == 4


def test_explain_is_for_ones_own_rights_or_an_administrators(admin: tierfs.Store) -> None:
    admin.put("home/x", b"private")
    bob = admin.as_principal("bob")
    own = bob.explain("read", "home/x")
    assert own["allowed"] is False and own["cache"] is None
    with pytest.raises(tierfs.PermissionDenied):
        bob.explain("read", "home/x", principal="root")
    assert admin.explain("read", "home/x", principal="bob")["allowed"] is False
    assert admin.explain("read", "home/x")["cache"] == "none"
    explained = [(r["principal"], r["result"]) for r in admin.audit_log(key_prefix="home/x") if r["operation"] == "explain"]
    assert explained == [("bob", "allowed"), ("bob", "denied"), ("root", "allowed"), ("root", "allowed")]


def test_set_access_policy_and_explain(admin: tierfs.Store) -> None:
    e = admin.explain("read", "public/salaries.csv", principal="carol")
    assert not e["allowed"] and e["rule"]["principal"] == "carol"
    policy = admin.access_policy()
    policy["rules"].append({"principal": "bob", "resource": "home/", "level": "write"})
    admin.set_access_policy(policy)
    bob = admin.as_principal("bob")
    bob.put("home/bob.txt", b"mine")
    assert admin.get("home/bob.txt") == b"mine"
    with pytest.raises(tierfs.InvalidInput):
        admin.set_access_policy({"rules": [{"principal": "x"}]})


def test_admin_needs_admin(admin: tierfs.Store) -> None:
    bob = admin.as_principal("bob")
    with pytest.raises(tierfs.PermissionDenied):
        bob.add_backend("scratch", "memory")
    with pytest.raises(tierfs.PermissionDenied):
        bob.set_policy({"type": "always_local", "backend": "main"})
    admin.add_backend("scratch", "memory")
    assert "scratch" in admin.backends()
