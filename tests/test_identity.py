"""Who uses Cockpit and what they may do: the operating system's user, never a name from the
environment, a flag or the config; a role from a root-owned mapping of users and groups, which
`--role` and `--readonly` can only lower; an unsafe mapping refused in one line; and the TUI
refusing in place what the role does not allow.

The tests run as root, so a mapping file they write is root's, as a real one must be."""

from __future__ import annotations

import grp
import os
import pwd

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cockpit import identity
from cockpit.cli import main
from cockpit.config import Config
from cockpit.identity import ROLES, IdentityError, OsUser, RoleMap, os_user, resolve
from cockpit.screens.dashboard import DashboardScreen
from cockpit.store.models import AuditRow, ClockRow
from tests.screen_text import notices, screen_text
from tests.test_tui import SIZE, open_app, table_keys, until

ME = pwd.getpwuid(os.getuid()).pw_name
NOBODY = 65534


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err.strip()


# --- the user is the operating system's -----------------------------------------------------------


def test_the_user_is_the_process_uid_s_whatever_the_environment_says(monkeypatch):
    for var in ("USER", "LOGNAME", "USERNAME"):
        monkeypatch.setenv(var, "mallory")
    cfg = Config()
    assert cfg.user == ME == os_user().name
    assert cfg.identity.uid == os.getuid()
    assert os_user().groups[0] == grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name  # the primary group first


def test_the_command_line_cannot_name_another_user(demo_db, capsys):
    code, _, err = run(capsys, "--user", "mallory", "hosts", "--db", demo_db)
    assert code == 2
    assert one_line(err) == (f"cockpit: error: argument --user: no longer taken: you are the operating system's user "
                             f"({ME}); roles come from the role mapping")
    code, _, err = run(capsys, "hosts", "--user", "mallory", "--db", demo_db)
    assert code == 2 and one_line(err) == "cockpit hosts: error: unrecognized arguments: --user mallory"


def test_a_config_that_names_a_user_is_refused_saying_why(tmp_path, demo_db, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("speed: 2\nuser: mallory\n")
    code, _, err = run(capsys, "hosts", "--config", str(cfg), "--db", demo_db)
    assert code == 2
    assert one_line(err) == (f"cockpit: {cfg}:2: user: no longer read: you are the operating system's user ({ME}); "
                             "roles come from the role mapping")


def test_the_audit_names_the_os_user_from_which_host(demo_db, capsys):
    import socket

    code, _, _ = run(capsys, "--readonly", "move", "--to", "shared", "--from", "feed-web", "--count", "1", "--yes",
                     "--db", demo_db)
    assert code == 2  # refused: read-only, and audited
    from cockpit.store.db import open_store

    db = open_store(demo_db)
    (a,) = AuditRow.select()
    assert (a.user, a.role, a.host, a.outcome) == (ME, "operator", socket.gethostname(), "refused")
    db.close()


# --- the mapping ------------------------------------------------------------------------------------


def test_a_user_s_own_entry_gives_their_role(roles):
    roles.write(f"users: {{{ME}: admin, alice: viewer}}\ngroups: {{{os_user().groups[0]}: viewer}}\n")
    me = resolve()
    assert (me.user, me.granted, me.role) == (ME, "admin", "admin")
    assert me.because == f"user {ME} in {roles.path}"


def test_a_group_gives_its_role_to_its_members_primary_and_supplementary(roles):
    roles.write(f"groups: {{{os_user().groups[0]}: operator}}\n")
    assert resolve().granted == "operator"  # this process's primary group
    # a member of a supplementary group (the postgres user is in ssl-cert on Debian, for one)
    group = next(g for g in grp.getgrall() if g.gr_mem and g.gr_mem[0] in {p.pw_name for p in pwd.getpwall()})
    member = pwd.getpwnam(group.gr_mem[0])
    assert group.gr_gid != member.pw_gid  # supplementary, not primary
    roles.write(f"groups: {{{group.gr_name}: admin, nogroup: operator}}\n")
    them = resolve(uid=member.pw_uid)
    assert (them.user, them.granted) == (member.pw_name, "admin")
    assert them.because == f"group {group.gr_name} in {roles.path}"
    assert group.gr_name in them.groups


def test_users_in_no_entry_are_viewers(roles):
    roles.write("users: {alice: admin}\ngroups: {sre-leads: admin}\n")
    assert resolve().granted == "viewer"
    assert resolve(uid=NOBODY).role == "viewer"
    assert resolve().because == f"no entry for {ME} or their groups in {roles.path}"


def test_without_a_mapping_root_is_an_admin_and_everyone_else_a_viewer(tmp_path, monkeypatch):
    monkeypatch.delenv("COCKPIT_ROLES")
    monkeypatch.setattr(identity, "DEFAULT_ROLES_FILE", str(tmp_path / "etc" / "roles.yaml"))  # none there
    assert resolve(uid=0).granted == "admin"
    nobody = resolve(uid=NOBODY)
    assert (nobody.user, nobody.granted) == ("nobody", "viewer")


USERS = st.sampled_from(["alice", "bob", "carol"])
GROUPS = st.sampled_from(["sre", "ops", "dba", "web"])
ROLE = st.sampled_from(ROLES)


@given(users=st.dictionaries(USERS, ROLE), groups=st.dictionaries(GROUPS, ROLE), user=USERS,
       member_of=st.lists(GROUPS, unique=True, max_size=4))
def test_the_own_entry_decides_else_the_highest_group_else_viewer(users, groups, user, member_of):
    role, _ = RoleMap("m.yaml", users, groups).grant(OsUser(user, 1000, tuple(member_of)))
    if user in users:
        assert role == users[user]
    elif any(g in groups for g in member_of):
        assert role == max((groups[g] for g in member_of if g in groups), key=ROLES.index)
    else:
        assert role == "viewer"


# --- --role and --readonly only lower -----------------------------------------------------------------


@given(granted=ROLE, asked=ROLE)
def test_a_role_can_be_lowered_never_raised(granted, asked):
    me = identity.Identity(ME, 0, (), granted, "test", granted)
    if ROLES.index(asked) <= ROLES.index(granted):
        assert me.lowered(asked, "--role").role == asked
    else:
        with pytest.raises(IdentityError, match="a role can only be lowered, never raised"):
            me.lowered(asked, "--role")


def test_role_lowers_what_the_mapping_gives_and_cannot_raise_it(roles, demo_db, capsys):
    roles.grant("operator")
    assert resolve("viewer").role == "viewer"
    code, _, err = run(capsys, "--role", "admin", "hosts", "--db", demo_db)
    assert code == 2
    assert one_line(err) == (f"cockpit: --role admin: {ME} is an operator (user {ME} in {roles.path}); "
                             "a role can only be lowered, never raised")
    code, out, _ = run(capsys, "--role", "viewer", "hosts", "--db", demo_db)
    assert code == 0 and out.startswith("HOST")


def test_a_config_role_above_the_mapping_is_refused_naming_the_file(roles, tmp_path, demo_db, capsys):
    roles.grant("viewer")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("role: operator\n")
    code, _, err = run(capsys, "hosts", "--config", str(cfg), "--db", demo_db)
    assert code == 2 and one_line(err).startswith(f"cockpit: {cfg}: role operator: {ME} is a viewer")


def test_a_viewer_asked_for_by_role_cannot_act_and_the_refusal_says_where_the_role_comes_from(roles, demo_db,
                                                                                              capsys):
    roles.grant("admin")
    code, _, err = run(capsys, "--role", "viewer", "move", "--to", "shared", "--from", "feed-web", "--count", "1",
                       "--yes", "--db", demo_db)
    assert code == 2
    assert one_line(err) == (f"cockpit: Move hosts between pools: needs role operator; you are viewer "
                             f"(--role viewer; the mapping gives {ME} admin)")


# --- unsafe mapping files are refused ------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o664, "its group"), (0o646, "others"), (0o666, "its group and others")])
def test_a_mapping_others_may_write_is_refused(roles, mode, who):
    roles.grant("admin")
    os.chmod(roles.path, mode)
    with pytest.raises(IdentityError) as e:
        resolve()
    assert str(e.value) == (f"role mapping {roles.path}: writable by {who} (mode {mode:04o}): refused "
                            "(only root may change it: chmod go-w)")


def test_a_mapping_owned_by_another_user_is_refused(roles):
    roles.grant("admin")
    os.chown(roles.path, NOBODY, NOBODY)
    with pytest.raises(IdentityError, match=rf"owned by nobody \(uid {NOBODY}\), not root: refused"):
        resolve()


def test_an_unsafe_mapping_stops_the_cli_in_one_line(roles, demo_db, capsys):
    roles.grant("admin")
    os.chown(roles.path, NOBODY, 0)
    code, _, err = run(capsys, "hosts", "--db", demo_db)
    assert code == 2
    assert one_line(err) == (f"cockpit: role mapping {roles.path}: owned by nobody (uid {NOBODY}), not root: refused "
                             "(only root may decide roles)")


def test_a_mapping_named_in_the_config_is_held_to_the_same_rules(roles, tmp_path, demo_db, capsys, monkeypatch):
    monkeypatch.delenv("COCKPIT_ROLES")
    theirs = tmp_path / "mine.yaml"
    theirs.write_text(f"users: {{{ME}: admin}}\n")
    os.chmod(theirs, 0o644)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("roles_file: mine.yaml\n")  # relative to the config file
    assert run(capsys, "--role", "admin", "hosts", "--config", str(cfg), "--db", demo_db)[0] == 0
    os.chown(theirs, NOBODY, NOBODY)
    code, _, err = run(capsys, "hosts", "--config", str(cfg), "--db", demo_db)
    assert code == 2 and f"role mapping {theirs}: owned by nobody" in one_line(err)


@pytest.mark.parametrize(("text", "problem"), [
    ("users: {alice: god}\n", "users.alice: expected one of viewer, operator, admin; got 'god'"),
    ("users: {'al ice': admin}\n", "users.al ice: expected a user name, got 'al ice'"),
    ("people: {alice: admin}\n", "people: unknown key (expected one of: groups, users)"),
    ("users: [alice]\n", "users: expected a mapping, got a list"),
    ("", "the file is empty"),
])
def test_a_mapping_that_is_not_one_is_refused_with_its_line(roles, text, problem):
    roles.write(text)
    with pytest.raises(IdentityError) as e:
        resolve()
    assert str(e.value).startswith(f"role mapping {roles.path}:") and problem in str(e.value)


def test_a_mapping_that_is_missing_or_not_a_file_is_refused(roles, tmp_path, monkeypatch):
    monkeypatch.setenv("COCKPIT_ROLES", str(tmp_path / "nope.yaml"))
    with pytest.raises(IdentityError, match="nope.yaml: no such file"):
        resolve()
    os.mkfifo(tmp_path / "fifo.yaml")
    monkeypatch.setenv("COCKPIT_ROLES", str(tmp_path / "fifo.yaml"))
    with pytest.raises(IdentityError, match="fifo.yaml: not a regular file: refused"):
        resolve()


# --- the TUI: what the role does not allow is left out, and refused in place ----------------------------


async def test_the_tui_refuses_an_operator_action_to_a_viewer_in_place(roles, demo_db):
    roles.write("users: {alice: admin}\n")  # nothing for this user: a viewer
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        text = screen_text(app)
        assert f"{ME} (viewer)" in text.splitlines()[0]
        assert "Pause" not in text and "Hot event" not in text  # not offered
        await pilot.press("space")
        why = (f"Pause or resume the platform clock: needs role operator; you are viewer "
               f"(no entry for {ME} or their groups in {roles.path})")
        await until(pilot, lambda: why in notices(app))
        assert isinstance(app.screen, DashboardScreen)
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 1)
    assert ClockRow.get_by_id(1).paused is False
    a = AuditRow.get()
    assert (a.user, a.role, a.action) == (ME, "viewer", "sim.pause")
    s.close()
