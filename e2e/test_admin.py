"""Admins run the accounts with the real binary: the `wharf user` and `wharf project` admin
commands print only their result and fail with one line; the /admin/users/ and
/admin/projects/ pages pass axe in Chromium; and an admin disables an account by keyboard
alone, after which the user's token is refused."""
import re

import requests

from conftest import Wharf
from test_clients import twine_upload
from test_web import PASSWORD, assert_accessible, sign_in, tab_to
from distributions import make_wheel


def start(tmp_path):
    wharf = Wharf(tmp_path, {}, ["--data-dir", str(tmp_path / "data")])
    wharf.cli("user", "create", "root", "--email", "root@example.org", "--admin",
              input=PASSWORD + "\n")
    wharf.create_user("bob")
    return wharf


def test_admin_commands_print_their_result_and_fail_with_one_line(tmp_path):
    wharf = start(tmp_path)
    try:
        listed = wharf.cli("user", "list")
        lines = listed.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines] == ["bob", "root"], listed.stdout
        assert lines[1].split("\t")[1] == "root@example.org"
        assert lines[1].endswith("\tadmin,unverified") or lines[1].endswith("\tadmin"), lines[1]
        assert listed.stderr == ""
        assert wharf.cli("user", "list", "--admins").stdout.count("\n") == 1
        assert wharf.cli("user", "set-admin", "bob").stdout == "bob is an admin\n"
        assert wharf.cli("user", "set-admin", "bob", "--off").stdout == "bob is no longer an admin\n"
        assert wharf.cli("user", "disable", "bob").stdout == "bob is disabled\n"
        assert wharf.cli("user", "list", "--disabled").stdout.startswith("bob\t")
        shown = wharf.cli("user", "show", "bob").stdout
        assert "username: bob\n" in shown and "flags: disabled" in shown, shown
        assert wharf.cli("user", "enable", "bob").stdout == "bob is enabled\n"
        for args, message in [
            (["user", "show", "nobody"], "no user named 'nobody'"),
            (["user", "enable", "bob"], "user 'bob' is enabled already"),
            (["user", "reset-2fa", "bob"], "user 'bob' has no two-factor methods or recovery codes"),
            (["project", "delete", "missing"], "no project named 'missing'"),
            (["project", "transfer", "missing", "--to", "bob"], "no project named 'missing'"),
        ]:
            failed = wharf.cli(*args, check=False)
            assert failed.returncode == 1, args
            assert failed.stdout == "", args
            assert failed.stderr == f"error: {message}\n", (args, failed.stderr)

        dist = tmp_path / "dist"
        dist.mkdir()
        twine_upload(wharf, wharf.token("bob"), make_wheel(dist, "bobs-tool", "1.0"))
        moved = wharf.cli("project", "transfer", "bobs-tool", "--to", "root")
        assert moved.stdout == "bobs-tool is owned by root alone (roles removed: bob)\n"
        assert wharf.cli("project", "delete", "bobs-tool").stdout == "deleted bobs-tool\n"
        assert requests.get(f"{wharf.url}/simple/bobs-tool/").status_code == 404
    finally:
        wharf.stop()


def test_the_admin_pages_pass_axe_and_disabling_works_by_keyboard(tmp_path, page):
    wharf = start(tmp_path)
    try:
        token = wharf.token("bob")
        dist = tmp_path / "dist"
        dist.mkdir()
        twine_upload(wharf, token, make_wheel(dist, "bobs-tool", "1.0"))
        sign_in(page, wharf, "root")
        for path in ["/admin/users/", "/admin/users/?q=bob", "/admin/users/bob/", "/admin/projects/",
                     "/admin/tokens/", "/admin/events/"]:
            page.goto(wharf.url + path)
            assert page.locator("h1").count() == 1, path
            assert_accessible(page, path)

        page.goto(f"{wharf.url}/admin/users/")
        tab_to(page, "bob")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/admin/users/bob/$"))
        tab_to(page, "Disable bob's account")
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        assert "account is disabled" in page.locator("main").inner_text()
        assert_accessible(page, "/admin/users/bob/ after disabling")
        refused = requests.get(f"{wharf.url}/simple/", auth=("__token__", token))
        assert refused.status_code == 200, "a public index still reads anonymously"
        upload = requests.post(f"{wharf.url}/legacy/", auth=("__token__", token),
                               data={":action": "file_upload"})
        assert upload.status_code == 403 and "account disabled" in upload.text.lower(), upload.text

        page.goto(f"{wharf.url}/admin/projects/")
        page.click("summary >> text=Manage bobs-tool")
        assert_accessible(page, "/admin/projects/ with a project's actions open")
    finally:
        wharf.stop()
