"""kill -9 under mixed load, on both backends: uploads, password and TOTP sign-ins, token
creation through the pages and reads run in parallel while the server is killed with SIGKILL
three times and started again on the same data. Afterwards nothing answered as done is lost:
every upload answered 200 is served with its bytes, every sign-in and token answered as done
has its event (and the tokens work), no file row lacks its blob, every blob nothing refers to
is one `wharf gc` finds once it is old enough, and the audit chain, sealed by the sealer after
each restart, verifies."""
import hashlib
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid

import pyotp
import pytest
import requests

from conftest import Wharf, free_port, start_moto
from distributions import make_wheel
from test_audit import Session
from test_faults import S3_ENV, listed, stored_keys, upload
from test_web import PASSWORD

KILLS = 3


class Site:
    """One data set (SQLite + files, or PostgreSQL + S3) and the server currently running on it."""

    def __init__(self, tmp, env, args, shape):
        self.tmp, self.env, self.args, self.shape = tmp, env, args, shape
        self.port = free_port()
        self.runs = 0
        self.server = None
        self.start()

    def start(self):
        self.runs += 1
        run = self.tmp / f"run{self.runs}"
        run.mkdir()
        self.server = Wharf(run, self.env, self.args, port=self.port)

    def kill(self):
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=10)
        self.server.log.close()

    def sql(self, query):
        """Rows of `query` on the site's database, as lists of strings."""
        if self.shape == "embedded":
            import sqlite3
            with sqlite3.connect(self.tmp / "data" / "wharf.db") as db:
                return [[str(v) for v in row] for row in db.execute(query).fetchall()]
        out = subprocess.run(["psql", self.database_url, "-AtXqc", query], capture_output=True,
                             text=True, check=True).stdout
        return [line.split("|") for line in out.splitlines()]

    def event_count(self, tag):
        return int(self.sql(f"SELECT COUNT(*) FROM events WHERE tag = '{tag}'")[0][0])


@pytest.fixture(params=["embedded", "scaleout"])
def site(request, tmp_path):
    cleanups = []
    if request.param == "embedded":
        site = Site(tmp_path, {}, ["--data-dir", str(tmp_path / "data")], "embedded")
    else:
        pg = os.environ.get("WHARF_E2E_POSTGRES_URL")
        if not pg:
            pytest.skip("PostgreSQL not available: kill -9 on PostgreSQL + S3 is NOT tested")
        import boto3
        database = f"wharf_crash_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        cleanups.append(lambda: subprocess.run(["psql", f"{pg}/postgres", "-qc", f"DROP DATABASE {database} WITH (FORCE)"]))
        moto, endpoint = start_moto(tmp_path)
        cleanups.append(lambda: (moto.terminate(), moto.wait(timeout=10)))
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="faults")
        site = Site(tmp_path, {**S3_ENV, "AWS_ENDPOINT_URL": endpoint},
                    ["--data-dir", str(tmp_path / "data"), "--database-url", f"{pg}/{database}",
                     "--storage-url", "s3://faults/packages"], "scaleout")
        site.database_url = f"{pg}/{database}"
        site.s3 = s3
    yield site
    if site.server.process.poll() is None:
        site.server.stop()
    for cleanup in reversed(cleanups):
        cleanup()


def form_token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def set_up_totp(server, username):
    """TOTP for `username` through the pages (recovery codes first, as the site asks)."""
    session = Session(server)
    assert session.sign_in(username).status_code == 303
    codes = re.findall(r"<li><code>([0-9a-f]{16})</code></li>", session.post(
        "/manage/account/recovery-codes/generate", {}, "/manage/account/recovery-codes/").text)
    assert session.post("/manage/account/recovery-codes/burn", {"code": codes[0]}).status_code == 303
    page = session.get("/manage/account/totp-provision").text
    totp = pyotp.TOTP(re.search(r'class="secret"[^>]*>([^<]+)<', page).group(1).replace(" ", ""))
    step = int(time.time()) // 30
    first = totp.at(step * 30)
    answer = session.http.post(server.url + "/manage/account/totp-provision", allow_redirects=False,
                               data={"csrf_token": form_token(page), "code": first})
    assert answer.status_code == 303, answer.text[:300]
    return totp, step


class Work:
    """The mixed load, in threads that carry on through the outages; what was answered as done."""

    def __init__(self, site, tmp, token, name, totp, used_step):
        self.site, self.tmp, self.token, self.name, self.totp = site, tmp, token, name, totp
        # The step of the code the set-up used.
        self.last_step = used_step
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.uploaded = {}  # filename -> sha256 of every upload answered 200
        self.done = {"sign-in": 0, "totp sign-in": 0, "token": 0}
        self.attempts = {"upload": 0, "sign-in": 0, "totp sign-in": 0, "token": 0, "read": 0}
        self.tokens = []  # every token answered as created
        self.threads = [threading.Thread(target=work, daemon=True) for work in
                        (self._uploads, self._reads, self._sign_ins, self._totp_sign_ins, self._tokens)]

    @property
    def url(self):
        return self.site.server.url

    def _count(self, kind):
        with self.lock:
            self.attempts[kind] += 1

    def _guarded(self, work):
        """Runs `work` until stopped; a request cut by the kill is simply over."""
        while not self.stop.is_set():
            try:
                work()
            except (requests.RequestException, AttributeError):
                # AttributeError: a page cut short has no CSRF token to find.
                time.sleep(0.2)

    def _uploads(self):
        count = [0]

        def one():
            count[0] += 1
            path = make_wheel(self.tmp, self.name, f"1.{count[0]}")
            self._count("upload")
            if upload(self.site.server, self.token, path, timeout=20).status_code == 200:
                with self.lock:
                    self.uploaded[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            time.sleep(0.05)
        self._guarded(one)

    def _reads(self):
        def one():
            self._count("read")
            requests.get(f"{self.url}/simple/{self.name}/", timeout=20)
        self._guarded(one)

    def _sign_ins(self):
        def one():
            session = Session(self.site.server)
            self._count("sign-in")
            if session.sign_in("plain").status_code == 303:
                self._count_done("sign-in")
            time.sleep(0.2)
        self._guarded(one)

    def _count_done(self, what):
        with self.lock:
            self.done[what] += 1

    def _totp_sign_ins(self):
        def one():
            # Each step's code once, in order; the server takes the next step's code already.
            step = self.last_step + 1
            if step > int(time.time()) // 30 + 1:
                time.sleep(0.5)
                return
            self.last_step = step
            code = self.totp.at(step * 30)
            session = Session(self.site.server)
            self._count("totp sign-in")
            session.sign_in("secure")
            answer = session.post("/account/two-factor/totp", {"code": code}, "/account/two-factor/")
            if answer.status_code == 303:
                self._count_done("totp sign-in")
        self._guarded(one)

    def _tokens(self):
        count = [0]
        session = Session(self.site.server)

        def one():
            if session.server is not self.site.server or not session.http.cookies:
                session.server = self.site.server
                session.http.cookies.clear()
                self._count("sign-in")
                if session.sign_in("maker").status_code != 303:
                    return
                self._count_done("sign-in")
            count[0] += 1
            self._count("token")
            answer = session.post("/manage/account/tokens/", {
                "name": f"crash {count[0]}", "kind": "upload", "scope": "account", "expires": ""})
            found = re.search(r'id="token-value"[^>]*>(pypi-[^<]+)<', answer.text)
            if answer.status_code == 200 and found:
                with self.lock:
                    self.done["token"] += 1
                    self.tokens.append(found.group(1))
            time.sleep(0.2)
        self._guarded(one)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_kill_9_under_mixed_load_loses_nothing_answered(site, tmp_path):
    server = site.server
    for user in ("alice", "plain", "secure", "maker"):
        server.create_user(user)
    token = server.token("alice")
    totp, first_step = set_up_totp(server, "secure")
    name = f"crash-{uuid.uuid4().hex[:8]}"
    assert upload(server, token, make_wheel(tmp_path, name, "1.0")).status_code == 200
    logins_before = site.event_count("account:login:success")

    rng = random.Random(17)
    with Work(site, tmp_path, token, name, totp, first_step) as work:
        for _ in range(KILLS):
            time.sleep(rng.uniform(2.5, 4.5))
            site.kill()
            time.sleep(0.5)
            site.start()
        time.sleep(3)
    print(f"kill -9 x{KILLS} on {site.shape}: attempts {work.attempts}, done {work.done}, "
          f"uploads answered 200: {len(work.uploaded)}")
    for kind in ("sign-in", "totp sign-in", "token"):
        assert work.done[kind] > 0, f"no {kind} succeeded: {work.done}"
    assert work.uploaded, "no upload succeeded"

    # Every upload answered 200 is listed and served with its bytes.
    files = listed(site.server, name)
    assert set(work.uploaded) <= set(files), sorted(set(work.uploaded) - set(files))
    for filename, sha256 in work.uploaded.items():
        url, listed_sha = files[filename]
        assert listed_sha == sha256, filename
        body = requests.get(requests.compat.urljoin(f"{site.server.url}/simple/{name}/", url), timeout=30).content
        assert hashlib.sha256(body).hexdigest() == sha256, filename

    # Every sign-in and token answered as done has its event; at most the requests the kills
    # cut short (one per thread and kill) committed without being answered.
    logins = site.event_count("account:login:success") - logins_before
    answered = work.done["sign-in"] + work.done["totp sign-in"]
    # Three threads sign in (password, TOTP, and the token maker's once per run).
    assert answered <= logins <= answered + 3 * KILLS, (logins, work.done)
    tokens = site.event_count("account:api_token:added")
    assert work.done["token"] <= tokens <= work.done["token"] + KILLS, (tokens, work.done)
    # The last tokens made were committed, not only answered: each uploads a project of
    # the maker's own.
    for index, made in enumerate(work.tokens[-3:]):
        path = make_wheel(tmp_path, f"{name}-maker{index}", "1.0")
        assert upload(site.server, made, path).status_code == 200, "a token answered as created is unknown"

    # No file row without its blob; every blob nothing refers to is one gc finds once old.
    referenced = {row[0] for row in site.sql("SELECT path FROM files")}
    referenced |= {f"{path}.metadata" for path in referenced}
    if site.shape == "embedded":
        root = tmp_path / "data" / "files"
        stored = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    else:
        stored = {key.removeprefix("packages/") for key in stored_keys(site.s3)}
    rows = {row[0] for row in site.sql("SELECT path FROM files")}
    assert rows <= stored, sorted(rows - stored)
    orphans = stored - referenced
    if site.shape == "embedded":
        # Age every blob past gc's grace period: gc must name exactly the orphans.
        old = time.time() - 2 * 3600
        for path in stored:
            os.utime(root / path, (old, old))
    gc = site.server.cli("gc", "--dry-run").stdout
    named = set(re.findall(r"would remove unreferenced blob (\S+)", gc))
    assert not (named & referenced), f"gc would remove a live blob: {sorted(named & referenced)}"
    if site.shape == "embedded":
        assert named == orphans, (sorted(named), sorted(orphans))
    print(f"blobs stored {len(stored)}, orphans left by the kills {len(orphans)} (all found by gc)")

    # The sealer seals what each run left unsealed, and the chain verifies.
    deadline = time.time() + 30
    while time.time() < deadline:
        metrics = requests.get(f"{site.server.url}/metrics", timeout=10).text
        unsealed = re.search(r"^wharf_events_unsealed (\d+)", metrics, re.M)
        if unsealed and unsealed.group(1) == "0":
            break
        time.sleep(0.5)
    else:
        raise AssertionError("events stayed unsealed after the restart")
    verified = site.server.cli("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
