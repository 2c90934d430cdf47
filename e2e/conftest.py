"""Starts the real wharf binary for the end-to-end tests, on both deployment shapes:

- embedded: SQLite and files on local disk (always);
- scale-out: PostgreSQL and S3-compatible storage, a real moto_server on loopback (when
  WHARF_E2E_POSTGRES_URL is set; scripts/test sets it whenever PostgreSQL runs).
"""
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright
import shutil

sys.path.insert(0, str(Path(__file__).parent))

BIN = os.environ.get("WHARF_BIN", str(Path.home() / ".cache/wharf/target/debug/wharf"))
VENV_BIN = Path(sys.executable).parent

# Every server log of the run, and the secrets the tests handled (passwords, session cookies,
# TOTP codes; API tokens are found by their prefix): none may appear in any log.
SERVER_LOGS = []
SECRETS = {"correct horse battery staple", "correct horse battery", "long enough password"}


def remember_secret(value):
    if value:
        SECRETS.add(str(value))


def pytest_sessionfinish(session, exitstatus):
    import re
    leaks = []
    for path in SERVER_LOGS:
        if not Path(path).exists():
            continue
        text = Path(path).read_text(errors="replace")
        for token in re.findall(r"pypi-[A-Za-z0-9_-]{20,}", text):
            leaks.append((path, "an API token", token[:16]))
        for secret in SECRETS:
            pattern = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
            if re.search(pattern, text):
                leaks.append((path, "a secret", secret[:6]))
    if leaks:
        print("\n!!! secrets reached the server logs:", *leaks[:20], sep="\n  ")
        session.exitstatus = 1
    elif SERVER_LOGS:
        print(f"\nno secret in {len(SERVER_LOGS)} server logs ({len(SECRETS)} secrets and every API token looked for)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, process, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Wharf:
    """A running server and the CLI pointed at the same data."""

    def __init__(self, tmp, env, args, host="127.0.0.1", base_url=None, port=None):
        self.env = {**os.environ, **env}
        self.args = args
        # A port chosen beforehand when another party must know the address first.
        self.port = port or free_port()
        # WebAuthn wants a domain, not an IP address: its tests use host="localhost".
        self.url = f"http://{host}:{self.port}"
        # The address the site is reached at, when a proxy stands in front (TLS).
        self.base_url = base_url or self.url
        self.tmp = tmp
        self.log = open(tmp / "server.log", "w")
        SERVER_LOGS.append(tmp / "server.log")
        self.process = subprocess.Popen(
            [BIN, *args, "serve", "--bind", f"127.0.0.1:{self.port}", "--base-url", self.base_url],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(f"{self.url}/_health", self.process)

    def cli(self, *command, input=None, check=True):
        return subprocess.run([BIN, *self.args, *command], env=self.env, input=input,
                              capture_output=True, text=True, check=check)

    def create_user(self, username):
        self.cli("user", "create", username, "--email", f"{username}@example.org",
                 input="correct horse battery staple\n")

    def token(self, username, *options):
        token = self.cli("token", "create", username, *options).stdout.strip()
        remember_secret(token)
        return token

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def start_moto(tmp):
    port = free_port()
    log = open(tmp / "moto.log", "w")
    process = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    wait_for(f"http://127.0.0.1:{port}/moto-api/", process)
    return process, f"http://127.0.0.1:{port}"


SHAPES = ["embedded", "scaleout"]


@pytest.fixture(scope="session", params=SHAPES)
def wharf(request, tmp_path_factory):
    shape = request.param
    tmp = tmp_path_factory.mktemp(shape)
    cleanups = []
    if shape == "embedded":
        server = Wharf(tmp, {}, ["--data-dir", str(tmp / "data")])
    else:
        pg = os.environ.get("WHARF_E2E_POSTGRES_URL")
        if not pg:
            pytest.skip("PostgreSQL not available: the scale-out shape is NOT tested")
        database = f"wharf_e2e_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        cleanups.append(lambda: subprocess.run(["psql", f"{pg}/postgres", "-qc", f"DROP DATABASE {database} WITH (FORCE)"]))
        moto, endpoint = start_moto(tmp)
        cleanups.append(lambda: (moto.terminate(), moto.wait(timeout=10)))
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import boto3
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="wharf-e2e")
        server = Wharf(tmp, env, ["--data-dir", str(tmp / "data"), "--database-url", f"{pg}/{database}",
                                  "--storage-url", "s3://wharf-e2e/packages"])
        server.s3_endpoint = endpoint
    server.shape = shape
    server.tmp = tmp
    server.create_user("alice")
    yield server
    server.stop()
    for cleanup in reversed(cleanups):
        cleanup()


# The browser for the web UI tests: Debian's Chromium driven by Playwright, one per run.
def chromium_path():
    path = os.environ.get("WHARF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Chromium is needed for the browser tests: apt-get install chromium")
    return path


@pytest.fixture(scope="session")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()
