"""The security history with the real binary: a scripted month of activity (sign-ins with and
without 2FA, tokens of both scopes, failed attempts) and the admin figures it must show
exactly; `wharf audit verify` notices rows edited in the database; axe on the history pages."""
import re
import sqlite3
import subprocess
import time
import uuid

import pyotp
import pytest
import requests

from conftest import BIN, Wharf, remember_secret
from distributions import make_wheel
from test_clients import twine_upload, unique
from test_web import PASSWORD, assert_accessible, sign_in


class Session:
    """A browser without a browser: cookies, and each form with its page's CSRF token."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()

    def get(self, path):
        return self.http.get(self.server.url + path, allow_redirects=False)

    def post(self, path, fields, form_page=None):
        page = self.http.get(self.server.url + (form_page or path)).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return self.http.post(self.server.url + path, data={"csrf_token": token, **fields}, allow_redirects=False)

    def sign_in(self, username, password=PASSWORD):
        answer = self.post("/account/login/", {"username": username, "password": password})
        for name, value in self.http.cookies.items():
            if "session" in name:
                remember_secret(value)
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    server = Wharf(tmp, {}, ["--data-dir", str(tmp / "data")])
    server.cli("user", "create", "root", "--email", "root@example.org", "--admin", input=f"{PASSWORD}\n")
    yield server
    server.stop()


def test_a_month_of_activity_gives_the_exact_figures(server, tmp_path):
    expected = {"sign_ins": 0, "totp": 0, "recovery": 0, "failed": 0, "project_tokens": 0, "account_tokens": 0, "uploads": 0}
    plain = f"plain{uuid.uuid4().hex[:6]}"
    secure = f"secure{uuid.uuid4().hex[:6]}"
    server.create_user(plain)
    server.create_user(secure)

    for _ in range(3):
        assert Session(server).sign_in(plain).status_code == 303
        expected["sign_ins"] += 1
    for _ in range(2):
        assert Session(server).sign_in(plain, "not the password").status_code == 401
        expected["failed"] += 1

    # The secure user sets up TOTP (recovery codes first), then signs in with it and with a code.
    s = Session(server)
    s.sign_in(secure)
    expected["sign_ins"] += 1
    codes = re.findall(r"<li><code>([0-9a-f]{16})</code></li>", s.post("/manage/account/recovery-codes/generate", {}, "/manage/account/recovery-codes/").text)
    assert s.post("/manage/account/recovery-codes/burn", {"code": codes[0]}).status_code == 303
    page = s.get("/manage/account/totp-provision").text
    secret = re.search(r'class="secret"[^>]*>([^<]+)<', page).group(1).replace(" ", "")
    totp = pyotp.TOTP(secret)
    first = totp.now()
    for value in [secret, first, *codes]:
        remember_secret(value)
    assert s.http.post(server.url + "/manage/account/totp-provision", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1), "code": first,
    }, allow_redirects=False).status_code == 303

    s = Session(server)
    assert s.sign_in(secure).headers["location"] == "/account/two-factor/"
    while totp.now() == first:
        time.sleep(1)
    remember_secret(totp.now())
    assert s.post("/account/two-factor/totp", {"code": totp.now()}, "/account/two-factor/").status_code == 303
    expected["sign_ins"] += 1
    expected["totp"] += 1
    s = Session(server)
    s.sign_in(secure)
    assert s.post("/account/recovery-code/", {"code": codes[1]}).status_code == 303
    expected["sign_ins"] += 1
    expected["recovery"] += 1

    # Tokens of both scopes, and uploads with them.
    dist = tmp_path / "dist"
    dist.mkdir()
    project = unique("e2e-month")
    account_token = server.token(plain)
    expected["account_tokens"] += 1
    twine_upload(server, account_token, make_wheel(dist, project, "1.0"))
    expected["uploads"] += 1
    project_token = server.token(plain, "--project", project)
    expected["project_tokens"] += 1
    twine_upload(server, project_token, make_wheel(dist, project, "2.0"))
    expected["uploads"] += 1
    assert twine_upload(server, "pypi-garbage", make_wheel(dist, project, "3.0"), check=False).returncode != 0

    admin = Session(server)
    admin.sign_in("root")
    expected["sign_ins"] += 1
    stats = admin.get("/admin/stats/").text
    month = time.strftime("%Y-%m", time.gmtime())
    row = re.search(rf"<tr><th scope=\"row\">{month}</th>(.*?)</tr>", stats, re.S).group(1)
    cells = [int(re.sub(r"[^0-9]", "", c) or 0) if "%" not in c else c for c in re.findall(r"<td>(.*?)</td>", row)]
    sign_ins, with_2fa, share, totp_n, key, passkey, recovery, failed = cells
    with_two = expected["totp"] + expected["recovery"]
    assert (sign_ins, with_2fa, totp_n, key, passkey, recovery, failed) == (
        expected["sign_ins"], with_two, expected["totp"], 0, 0, expected["recovery"], expected["failed"])
    assert share == f"{round(with_two * 100 / expected['sign_ins'], 1)}%"
    tokens_row = re.findall(rf"<tr><th scope=\"row\">{month}</th>(.*?)</tr>", stats, re.S)[1]
    project_n, account_n, uploads, failed_tokens, _ = [int(c) for c in re.findall(r"<td>(\d+)</td>", tokens_row)]
    assert (project_n, account_n, uploads) == (expected["project_tokens"], expected["account_tokens"], expected["uploads"])
    assert failed_tokens >= 1
    metrics = requests.get(f"{server.url}/metrics").text
    assert f'wharf_sign_ins_total{{two_factor_method="totp"}} {expected["totp"]}' in metrics


def test_audit_verify_notices_an_edited_row(server):
    def verify():
        return subprocess.run([BIN, *server.args, "audit", "verify"], capture_output=True, text=True)

    Session(server).sign_in("root")
    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    database = server.tmp / "data" / "wharf.db"
    with sqlite3.connect(database, timeout=30) as db:
        db.execute("UPDATE events SET ip_address = '203.0.113.66' WHERE seq = 2")
    broken = verify()
    assert broken.returncode != 0
    assert "event 2" in broken.stderr and "altered" in broken.stderr
    export = subprocess.run([BIN, *server.args, "audit", "export", "--user", "root"], capture_output=True, text=True)
    assert export.returncode == 0
    assert all('"source_type":"user"' in line for line in export.stdout.splitlines())


def test_history_pages_pass_axe(server, page):
    sign_in(page, server, "root")
    for path in ["/manage/account/history/", "/admin/events/", "/admin/events/?tag=account%3Alogin%3Asuccess&sort=tag", "/admin/stats/"]:
        page.goto(server.url + path)
        assert page.locator("h1").count() == 1, path
        assert_accessible(page, path)
