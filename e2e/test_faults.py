"""Failing parts, with the real binary and loopback only: PostgreSQL going away under uploads,
reads and sign-ins; the S3 store going away; the disk filling up; slow and idle clients.

A part "goes away" through `Link`, a TCP relay between wharf and the part: `cut()` drops every
connection and refuses new ones, as a restarting PostgreSQL or a stopped S3 server does;
`mend()` listens again on the same port. The part itself keeps its data (moto_server keeps
objects only in memory, and the machine's PostgreSQL serves the other suites), so what wharf
committed before and after can be checked against it.
"""
import hashlib
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from urllib.parse import urlparse

import boto3
import pytest
import requests

from conftest import Wharf, free_port, start_moto
from distributions import make_wheel
from test_audit import Session
from test_clients import unique
from test_web import PASSWORD

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Link:
    """A TCP relay on loopback to `target_port` that can be cut and mended."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.lock = threading.Lock()
        self.sockets = set()
        self.listener = None
        self.mend()

    def mend(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        for sock in [self.listener]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self.lock:
            open_sockets, self.sockets = self.sockets, set()
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if listener is not self.listener:
                    client.close()
                    upstream.close()
                    return
                self.sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def upload(server, token, path, timeout=30):
    """POST /legacy/ as twine does; returns the response (whatever its status)."""
    data = path.read_bytes()
    name, version = path.name.split("-")[:2]
    fields = {
        ":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
        "name": name, "version": version, "summary": "A test package",
        "filetype": "bdist_wheel", "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    return requests.post(f"{server.url}/legacy/", data=fields, files={"content": (path.name, data)},
                         auth=("__token__", token), timeout=timeout)


def listed(server, name):
    """The file names and SHA-256s /simple/NAME/ lists (JSON)."""
    answer = requests.get(f"{server.url}/simple/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                          timeout=30)
    assert answer.status_code == 200, answer.text
    return {f["filename"]: (f["url"], f["hashes"]["sha256"]) for f in answer.json()["files"]}


def assert_refused_for_a_while(response):
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("Retry-After") == "5", response.headers
    assert "unavailable" in response.text


class Load:
    """Uploads, reads and sign-ins in parallel threads, each outcome recorded."""

    def __init__(self, server, tmp, token, name, username):
        self.server, self.tmp, self.token, self.name, self.username = server, tmp, token, name, username
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes = []  # (kind, status or exception name, has Retry-After, time)
        self.uploaded = {}  # filename -> sha256, for every upload answered 200
        self.threads = [threading.Thread(target=work, daemon=True)
                        for work in (self._uploads, self._reads, self._reads, self._sign_ins)]

    def record(self, kind, outcome, retry_after=False):
        with self.lock:
            self.outcomes.append((kind, outcome, retry_after, time.monotonic()))

    def attempt(self, kind, call):
        try:
            response = call()
        except requests.RequestException as error:
            self.record(kind, type(error).__name__)
            return None
        self.record(kind, response.status_code, "Retry-After" in response.headers)
        return response

    def _uploads(self):
        count = 0
        while not self.stop.is_set():
            count += 1
            path = make_wheel(self.tmp, self.name, f"2.{count}")
            response = self.attempt("upload", lambda: upload(self.server, self.token, path, timeout=20))
            if response is not None and response.status_code == 200:
                with self.lock:
                    self.uploaded[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            time.sleep(0.1)

    def _reads(self):
        paths = [f"/simple/{self.name}/", f"/pypi/{self.name}/json", "/simple/"]
        count = 0
        while not self.stop.is_set():
            path = paths[count % len(paths)]
            count += 1
            self.attempt("read", lambda: requests.get(self.server.url + path, timeout=20))
            time.sleep(0.05)

    def _sign_ins(self):
        while not self.stop.is_set():
            session = Session(self.server)
            page = self.attempt("sign-in page", lambda: session.http.get(self.server.url + "/account/login/", timeout=20))
            if page is not None and page.status_code == 200:
                token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
                self.attempt("sign-in", lambda: session.http.post(
                    self.server.url + "/account/login/", allow_redirects=False, timeout=20,
                    data={"csrf_token": token, "username": self.username, "password": PASSWORD}))
            time.sleep(0.3)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def summary(self):
        counts = {}
        for kind, outcome, _, _ in self.outcomes:
            counts[(kind, outcome)] = counts.get((kind, outcome), 0) + 1
        return dict(sorted(counts.items(), key=str))


def wait_healthy(server, timeout=60):
    """Seconds until /_health answers 200 again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if requests.get(f"{server.url}/_health", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"wharf did not come back within {timeout} s")


def postgres_url():
    url = os.environ.get("WHARF_E2E_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL not available: the PostgreSQL and S3 outage tests are NOT run")
    return url


@pytest.fixture
def database():
    pg = postgres_url()
    name = f"wharf_faults_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    yield pg, name
    subprocess.run(["psql", f"{pg}/postgres", "-qc", f"DROP DATABASE {name} WITH (FORCE)"], check=True)


@pytest.fixture
def moto(tmp_path):
    process, endpoint = start_moto(tmp_path)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="faults")
    yield endpoint, client
    process.terminate()
    process.wait(timeout=10)


def stored_keys(client):
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="faults"):
        keys |= {item["Key"] for item in page.get("Contents", [])}
    return keys


def test_postgres_going_away_under_load_answers_503_and_loses_nothing(tmp_path, database, moto):
    pg, db_name = database
    endpoint, s3 = moto
    link = Link(urlparse(pg).port or 5432)
    through_link = f"postgres://postgres@127.0.0.1:{link.port}/{db_name}"
    server = Wharf(tmp_path, {**S3_ENV, "AWS_ENDPOINT_URL": endpoint},
                   ["--data-dir", str(tmp_path / "data"), "--database-url", through_link,
                    "--storage-url", "s3://faults/packages"])
    try:
        server.create_user("alice")
        token = server.token("alice")
        name = unique("outage")
        first = make_wheel(tmp_path, name, "1.0")
        assert upload(server, token, first).status_code == 200
        with Load(server, tmp_path, token, name, "alice") as load:
            time.sleep(3)
            cut_at = time.monotonic()
            link.cut()
            time.sleep(8)
            link.mend()
            mended_at = time.monotonic()
            recovery = wait_healthy(server)
            time.sleep(4)
        summary = load.summary()
        print(f"PostgreSQL away for 8 s: back {recovery:.2f} s after the link was mended; outcomes {summary}")

        allowed = {"upload": {200, 503}, "read": {200, 503}, "sign-in page": {200, 503}, "sign-in": {303, 503}}
        odd = [(kind, outcome) for kind, outcome, _, _ in load.outcomes if outcome not in allowed[kind]]
        assert not odd, f"statuses other than success or 503 (or a hang): {odd[:10]}; all: {summary}"
        unavailable = [o for o in load.outcomes if o[1] == 503]
        assert unavailable, f"no request saw the outage: {summary}"
        assert all(retry for _, _, retry, _ in unavailable), "a 503 without Retry-After"
        during = [o for o in load.outcomes if cut_at + 1 < o[3] < mended_at]
        assert during and all(o[1] == 503 for o in during if o[0] == "upload"), summary
        # Every kind of work succeeds again once the database is back, without a restart.
        for kind, ok in (("upload", 200), ("read", 200), ("sign-in", 303)):
            assert any(k == kind and o == ok and t > mended_at + recovery for k, o, _, t in load.outcomes), \
                f"no {kind} succeeded after the outage: {summary}"

        # No upload answered 200 is lost, each file is served with its bytes, every file row
        # has its blob, and the chain of events verifies.
        files = listed(server, name)
        assert set(load.uploaded) <= set(files), sorted(set(load.uploaded) - set(files))
        for filename, sha256 in load.uploaded.items():
            url, listed_sha = files[filename]
            assert listed_sha == sha256
            body = requests.get(requests.compat.urljoin(f"{server.url}/simple/{name}/", url), timeout=30).content
            assert hashlib.sha256(body).hexdigest() == sha256, filename
        rows = subprocess.run(["psql", f"{pg}/{db_name}", "-Atc", "SELECT path FROM files"],
                              capture_output=True, text=True, check=True).stdout.split()
        keys = stored_keys(s3)
        assert {f"packages/{row}" for row in rows} <= keys
        assert server.cli("audit", "verify").returncode == 0
    finally:
        server.stop()
        link.cut()


def test_the_s3_store_going_away_fails_uploads_cleanly_and_files_come_back(tmp_path, database, moto):
    pg, db_name = database
    endpoint, _ = moto
    link = Link(urlparse(endpoint).port)
    server = Wharf(tmp_path, {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{link.port}"},
                   ["--data-dir", str(tmp_path / "data"), "--database-url", f"{pg}/{db_name}",
                    "--storage-url", "s3://faults/packages"])
    try:
        server.create_user("alice")
        token = server.token("alice")
        name = unique("s3away")
        first = make_wheel(tmp_path, name, "1.0")
        assert upload(server, token, first).status_code == 200
        url, sha256 = listed(server, name)[first.name]
        file_url = requests.compat.urljoin(f"{server.url}/simple/{name}/", url)

        link.cut()
        second = make_wheel(tmp_path, name, "1.1")
        started = time.monotonic()
        refused = upload(server, token, second)
        took = time.monotonic() - started
        print(f"an upload with S3 away answered {refused.status_code} in {took:.2f} s")
        assert_refused_for_a_while(refused)
        assert took < 20, f"the upload took {took:.1f} s to fail"
        # The index's pages are still served, and list nothing of the refused upload.
        assert set(listed(server, name)) == {first.name}
        assert requests.get(f"{server.url}/project/{name}/", timeout=30).status_code == 200
        assert_refused_for_a_while(requests.get(file_url, timeout=30))

        link.mend()
        assert hashlib.sha256(requests.get(file_url, timeout=30).content).hexdigest() == sha256
        # Nothing half-stored stands in the way: the same file uploads now.
        assert upload(server, token, second).status_code == 200
        assert set(listed(server, name)) == {first.name, second.name}
        assert server.cli("audit", "verify").returncode == 0
    finally:
        server.stop()
        link.cut()


def random_wheel(directory, name, version, size):
    """A wheel with `size` incompressible bytes in it."""
    return make_wheel(directory, name, version, files={f"{name}/blob.bin": os.urandom(size)})


def test_a_full_disk_refuses_uploads_with_507_keeps_reading_and_recovers(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root: the full-disk test is NOT run")
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(data)], check=True)
    server = None
    try:
        server = Wharf(tmp_path, {}, ["--data-dir", str(data)])
        server.create_user("alice")
        token = server.token("alice")
        name = "diskfull"
        first = make_wheel(tmp_path, name, "1.0")
        assert upload(server, token, first).status_code == 200
        url, sha256 = listed(server, name)[first.name]
        file_url = requests.compat.urljoin(f"{server.url}/simple/{name}/", url)

        # Fill the disk, then leave a little room: less than the next upload needs.
        ballast = data / "ballast"
        with open(ballast, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * (1 << 20))
                    out.flush()
            except OSError:
                pass
        with open(ballast, "r+b") as out:
            out.truncate(max(0, ballast.stat().st_size - (256 << 10)))
        big = random_wheel(tmp_path, name, "2.0", 4 << 20)
        refused = upload(server, token, big)
        print(f"an upload to a full disk answered {refused.status_code}: {refused.reason}")
        assert refused.status_code == 507, (refused.status_code, refused.text[:300])
        assert "disk is full" in refused.reason
        assert set(listed(server, name)) == {first.name}
        assert hashlib.sha256(requests.get(file_url, timeout=30).content).hexdigest() == sha256
        assert requests.get(f"{server.url}/project/{name}/", timeout=30).status_code == 200
        leftovers = [p for p in (data / "tmp").rglob("*") if p.is_file()] if (data / "tmp").exists() else []
        assert not leftovers, leftovers

        ballast.unlink()
        assert upload(server, token, big).status_code == 200
        assert set(listed(server, name)) == {first.name, big.name}
        check = subprocess.run(["sqlite3", str(data / "wharf.db"), "PRAGMA integrity_check"],
                               capture_output=True, text=True)
        if check.returncode == 0:
            assert check.stdout.strip() == "ok", check.stdout
        else:
            import sqlite3
            with sqlite3.connect(data / "wharf.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert server.cli("audit", "verify").returncode == 0
    finally:
        if server:
            server.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.fixture
def strict_server(tmp_path):
    env = {"WHARF_HEADER_TIMEOUT": "2s", "WHARF_REQUEST_TIMEOUT": "3s", "WHARF_MAX_CONNECTIONS": "50"}
    server = Wharf(tmp_path, env, ["--data-dir", str(tmp_path / "data")])
    server.create_user("alice")
    yield server
    server.stop()


def closed_within(sock, seconds, drip=None):
    """Seconds until the server closes `sock` (reading what it sends), or None; `drip` is sent
    a byte every half second meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.5)
    received = b""
    while time.monotonic() - started < seconds:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return time.monotonic() - started, received
            received += chunk
        except socket.timeout:
            if drip:
                try:
                    sock.sendall(drip)
                except OSError:
                    return time.monotonic() - started, received
        except OSError:
            return time.monotonic() - started, received
    return None, received


def test_slow_headers_and_a_dripped_body_are_cut_off(strict_server):
    port = strict_server.port
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")
    took, _ = closed_within(slow, 15, drip=b"X")
    print(f"slow headers: closed after {took} s (header_timeout 2s)")
    assert took is not None, "a client dripping its headers kept its connection"

    token = strict_server.token("alice")
    import base64
    credentials = base64.b64encode(f"__token__:{token}".encode()).decode()
    dripping = socket.create_connection(("127.0.0.1", port))
    dripping.sendall(
        b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + f"Authorization: Basic {credentials}\r\nContent-Length: 100000\r\n\r\n".encode()
        + b"--b\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\n")
    took, answer = closed_within(dripping, 15, drip=b"f")
    print(f"dripped body: answered {answer[:40]!r} after {took} s (request_timeout 3s)")
    assert took is not None, "a client dripping its body kept its connection"
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    # The server is not worse for it.
    assert requests.get(f"{strict_server.url}/simple/", timeout=10).status_code == 200


def test_idle_connections_are_bounded_and_closed(strict_server):
    url = f"{strict_server.url}/simple/"
    # Below max_connections: idle connections cost the others nothing.
    idle = [socket.create_connection(("127.0.0.1", strict_server.port)) for _ in range(40)]
    with requests.Session() as http:
        assert all(http.get(url, timeout=10).status_code == 200 for _ in range(20))
    # Far beyond it: the idle ones are closed after header_timeout, and a normal client is
    # served once they are (it waits in the backlog meanwhile, and is not refused).
    idle += [socket.create_connection(("127.0.0.1", strict_server.port)) for _ in range(200)]
    assert requests.get(url, timeout=60).status_code == 200
    still_open = [sock for sock in idle if closed_within(sock, 30)[0] is None]
    assert not still_open, f"{len(still_open)} idle connections were never closed"
    for sock in idle:
        sock.close()


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


def timed_reads(url, count, seconds=0):
    """The latencies of `count` reads, or of as many as `seconds` take if more."""
    latencies = []
    until = time.monotonic() + seconds
    with requests.Session() as http:
        while len(latencies) < count or time.monotonic() < until:
            started = time.perf_counter()
            assert http.get(url, timeout=10).status_code == 200
            latencies.append(time.perf_counter() - started)
    return latencies


def test_normal_requests_keep_their_latency_during_a_slow_client_attack(strict_server):
    """40 attackers (of max_connections 50) dripping headers or bodies, reconnecting as soon
    as they are cut off, while a normal client reads: its p99 stays far below the timeouts
    (a request that had to wait for an attacker's slot would take the 2 s header_timeout)."""
    url = f"{strict_server.url}/simple/"
    baseline = timed_reads(url, 300)
    stop = threading.Event()
    cut_off = [0]

    def attacker(request, drip):
        while not stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", strict_server.port), timeout=5)
                sock.sendall(request)
                took, _ = closed_within(sock, 10, drip=drip)
                sock.close()
                if took is not None:
                    cut_off[0] += 1
            except OSError:
                time.sleep(0.1)

    slow_headers = b"GET /simple/ HTTP/1.1\r\nHost: x\r\n"
    slow_body = (b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: 100000\r\n\r\n--b\r\n")
    attackers = [threading.Thread(target=attacker, args=(slow_headers if i % 2 else slow_body, b"X"), daemon=True)
                 for i in range(40)]
    for thread in attackers:
        thread.start()
    time.sleep(1)
    # Long enough for every attacker to be cut off by the timeouts at least once.
    during = timed_reads(url, 300, seconds=8)
    stop.set()
    for thread in attackers:
        thread.join(timeout=15)
    p99_before, p99_during = percentile(baseline, 0.99), percentile(during, 0.99)
    print(f"GET /simple/ p50 {percentile(baseline, 0.5) * 1000:.2f} -> {percentile(during, 0.5) * 1000:.2f} ms, "
          f"p99 {p99_before * 1000:.2f} -> {p99_during * 1000:.2f} ms during 40 slow clients "
          f"({p99_during / p99_before:.1f}x; attackers cut off {cut_off[0]} times)")
    assert cut_off[0] >= 40, "the attackers were not cut off by the timeouts"
    assert p99_during < 0.5, f"p99 {p99_during:.3f} s during the attack"
