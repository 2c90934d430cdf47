"""Scale-out with the real binary: two `wharf serve` processes on one PostgreSQL database and one
S3 bucket (moto_server), behind Debian's nginx as the load balancer (X-Forwarded-For, with
trusted_proxies = nginx's address). An upload through one process installs through the other
and through nginx; a session made on one is good on the other; the audit log records the
client's address behind nginx and not a forged header; the audit chain verifies afterwards."""
import os
import secrets
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import BIN, SERVER_LOGS, VENV_BIN, free_port, remember_secret, start_moto, wait_for
from distributions import make_wheel
from test_audit import Session
from test_clients import installed, run, twine_upload, unique
from test_web import PASSWORD

NGINX = "/usr/sbin/nginx"
CLIENT = "127.0.0.2"  # the client's own address: loopback, but not nginx's 127.0.0.1
FORGED = "203.0.113.9"
VIA_NGINX = "e2e-through-nginx"  # the user agent of the requests sent through nginx


class Process:
    """One `wharf serve` of the pair: its own port, the shared database, bucket, key and base URL."""

    def __init__(self, tmp, name, env, args, base_url):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path = tmp / f"wharf-{name}.log"
        self.log = open(log_path, "w")
        SERVER_LOGS.append(log_path)
        self.process = subprocess.Popen(
            [BIN, *args, "serve", "--bind", f"127.0.0.1:{self.port}", "--base-url", base_url],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Site:
    """What the tests see: the two processes, nginx's URL, and the CLI on the same data."""

    def __init__(self, env, args, a, b, url):
        self.env, self.args, self.a, self.b, self.url = env, args, a, b, url

    def cli(self, *command, input=None, check=True):
        result = subprocess.run([BIN, *self.args, *command], env=self.env, input=input,
                                capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"wharf {' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def psql(self, sql):
        return subprocess.run(["psql", self.database_url, "-AtXqc", sql], capture_output=True,
                              text=True, check=True).stdout


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
lock_file {tmp}/nginx.lock;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {tmp}/nginx-access.log;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream wharf {{
    server 127.0.0.1:{a};
    server 127.0.0.1:{b};
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 1g;
    proxy_request_buffering off;
    location / {{
      proxy_pass http://wharf;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pg = os.environ.get("WHARF_E2E_POSTGRES_URL")
    if not pg:
        pytest.skip("WHARF_E2E_POSTGRES_URL is not set: two wharf processes behind nginx on PostgreSQL + S3 are NOT tested")
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} is missing (apt-get install nginx-light): the scale-out behind nginx is NOT tested")
    tmp = tmp_path_factory.mktemp("scaleout")
    cleanups = []
    try:
        database = f"wharf_e2e_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        cleanups.append(lambda: subprocess.run(["psql", f"{pg}/postgres", "-qc", f"DROP DATABASE {database} WITH (FORCE)"]))
        moto, endpoint = start_moto(tmp)
        cleanups.append(lambda: (moto.terminate(), moto.wait(timeout=10)))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="wharf-scaleout")
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "WHARF_SECRET_KEY": secrets.token_hex(32),
            "WHARF_TRUSTED_PROXIES": "127.0.0.1",
        }
        remember_secret(env["WHARF_SECRET_KEY"])
        database_url = f"{pg}/{database}"

        def args(data):
            return ["--data-dir", str(tmp / data), "--database-url", database_url,
                    "--storage-url", "s3://wharf-scaleout/packages"]

        nginx_port = free_port()
        nginx_url = f"http://127.0.0.1:{nginx_port}"
        # Each process has its own data directory: all they share is the database, the bucket and the key.
        a = Process(tmp, "a", env, args("data-a"), nginx_url)
        cleanups.append(a.stop)
        wait_for(f"{a.url}/_ready", a.process)  # A migrates the database first
        b = Process(tmp, "b", env, args("data-b"), nginx_url)
        cleanups.append(b.stop)
        wait_for(f"{b.url}/_ready", b.process)

        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(tmp=nginx_dir, a=a.port, b=b.port, port=nginx_port))
        nginx_log = open(nginx_dir / "nginx.out", "w")
        nginx = subprocess.Popen([NGINX, "-p", str(nginx_dir), "-e", str(nginx_dir / "nginx-error.log"),
                                  "-c", str(nginx_dir / "nginx.conf")], stdout=nginx_log, stderr=subprocess.STDOUT)

        def stop_nginx():
            if nginx.poll() is None:
                nginx.terminate()  # SIGTERM: fast shutdown of the master and its worker
                nginx.wait(timeout=10)
            nginx_log.close()
        cleanups.append(stop_nginx)
        try:
            wait_for(f"{nginx_url}/_health", nginx)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{(nginx_dir / 'nginx-error.log').read_text(errors='replace')}")

        site = Site(env, args("data-cli"), a, b, nginx_url)
        site.database_url = database_url
        site.nginx_dir = nginx_dir
        site.cli("user", "create", "root", "--email", "root@example.org", "--admin", input=f"{PASSWORD}\n")
        site.cli("user", "create", "alice", "--email", "alice@example.org", input=f"{PASSWORD}\n")
        yield site
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as error:  # keep cleaning up the rest
                print(f"cleanup failed: {error!r}")


class FromClient(HTTPAdapter):
    """Connects from 127.0.0.2, as a client that is not nginx would."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (CLIENT, 0)
        super().init_poolmanager(*args, **kwargs)


def from_client(session, user_agent="e2e-scaleout"):
    session.mount("http://", FromClient())
    session.headers["User-Agent"] = user_agent
    return session


class At:
    """A Session's target: one process, or nginx."""

    def __init__(self, url):
        self.url = url


def eventually(check, timeout=10):
    """Another process sees a change within cache_refresh_ms (1 s by default): wait a little."""
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.25)


def test_upload_through_one_process_installs_through_the_other_and_nginx(site, tmp_path):
    token = site.cli("token", "create", "alice").stdout.strip()
    remember_secret(token)
    assert token.startswith("pypi-")
    name = unique("e2e-scaleout")
    twine_upload(At(site.a.url), token, make_wheel(tmp_path, name, "1.0"))

    # The file is in the bucket, not on either process's disk.
    s3 = boto3.client("s3", endpoint_url=site.env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="wharf-scaleout").get("Contents", [])]
    assert keys and all(k.startswith("packages/") for k in keys), keys

    project = name.lower()
    page = eventually(lambda: requests.get(f"{site.b.url}/simple/{project}/").status_code == 200)
    assert page, f"GET {site.b.url}/simple/{project}/ did not answer 200 within 10 s of the upload to A"
    module = name.replace("-", "_")
    for label, index in [("B", f"{site.b.url}/simple/"), ("nginx", f"{site.url}/simple/")]:
        target = tmp_path / f"pip-{label}"
        run(VENV_BIN / "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--index-url", index,
            "--target", target, name)
        assert installed(target) == [module], label


def test_a_session_made_on_one_process_is_good_on_the_other_and_through_nginx(site):
    signed_in = Session(At(site.a.url))
    answer = signed_in.sign_in("alice")
    assert answer.status_code == 303, answer.text[:500]
    cookies = dict(signed_in.http.cookies)
    assert any("session" in name for name in cookies), cookies
    for label, url in [("A", site.a.url), ("B", site.b.url), ("nginx", site.url)]:
        # A fresh client with only the cookie: nothing else carries the session.
        response = requests.get(f"{url}/manage/account/", cookies=cookies, allow_redirects=False)
        assert response.status_code == 200, (label, response.status_code, response.headers.get("location"))
        assert "alice" in response.text, label
    # Without the cookie, the same page sends one to sign in: the 200s above were the session's.
    for url in [site.b.url, site.url]:
        assert requests.get(f"{url}/manage/account/", allow_redirects=False).status_code in (302, 303)

    # Signing in through nginx (whichever process answers each request, the form's CSRF token
    # and the session hold), then the session is good on both processes directly.
    through = Session(At(site.url))
    answer = through.sign_in("alice")
    assert answer.status_code == 303, answer.text[:500]
    cookies = dict(through.http.cookies)
    for label, url in [("A", site.a.url), ("B", site.b.url), ("nginx", site.url)]:
        response = requests.get(f"{url}/manage/account/", cookies=cookies, allow_redirects=False)
        assert response.status_code == 200, (label, response.status_code, response.headers.get("location"))


def failures_of(site, username):
    """The addresses recorded for the failed sign-ins with this (unknown) username."""
    rows = site.psql("SELECT ip_address FROM events WHERE tag = 'account:login:failure' "
                     f"AND additional LIKE '%\"{username}\"%' ORDER BY id")
    return rows.split()


def test_the_audit_log_has_the_client_behind_nginx_and_not_a_forged_header(site):
    # Through nginx from 127.0.0.2: nginx (127.0.0.1, trusted) passes the client on.
    via_nginx = f"nobody{uuid.uuid4().hex[:8]}"
    s = Session(At(site.url))
    from_client(s.http, VIA_NGINX)
    assert s.sign_in(via_nginx, "not the password").status_code == 401
    assert failures_of(site, via_nginx) == [CLIENT]

    # Through nginx with a forged X-Forwarded-For: nginx appends the real peer, and wharf takes
    # the right-most address that is not a trusted proxy: still 127.0.0.2.
    forged_via_nginx = f"nobody{uuid.uuid4().hex[:8]}"
    s = Session(At(site.url))
    from_client(s.http, VIA_NGINX)
    s.http.headers["X-Forwarded-For"] = FORGED
    assert s.sign_in(forged_via_nginx, "not the password").status_code == 401
    assert failures_of(site, forged_via_nginx) == [CLIENT]

    # Straight to each process from 127.0.0.2 (not a trusted proxy) with a forged header: ignored.
    for process in (site.a, site.b):
        direct = f"nobody{uuid.uuid4().hex[:8]}"
        s = Session(At(process.url))
        from_client(s.http)
        s.http.headers["X-Forwarded-For"] = FORGED
        s.http.headers["Forwarded"] = f"for={FORGED}"
        assert s.sign_in(direct, "not the password").status_code == 401
        assert failures_of(site, direct) == [CLIENT], process.url

    # A successful sign-in through nginx is recorded with the client's address too.
    s = Session(At(site.url))
    from_client(s.http, VIA_NGINX)
    assert s.sign_in("root").status_code == 303
    rows = site.psql("SELECT e.ip_address FROM events e JOIN users u ON e.source_id = u.id "
                     "WHERE u.username = 'root' AND e.tag = 'account:login:success' ORDER BY e.id")
    assert rows.split() == [CLIENT], rows
    # nginx spread those requests over both processes, and each saw the client behind it.
    for process in (site.a, site.b):
        log = Path(process.log.name).read_text(errors="replace")
        assert f'client_ip="{CLIENT}" user_agent="{VIA_NGINX}"' in log, process.log.name
        assert f'client_ip="127.0.0.1" user_agent="{VIA_NGINX}"' not in log, process.log.name
    # The forged address reached no event at all.
    assert site.psql(f"SELECT count(*) FROM events WHERE ip_address = '{FORGED}'").strip() == "0"

    # The admin's event list, asked for by address through nginx, shows the same.
    page = s.get(f"/admin/events/?ip={CLIENT}")
    assert page.status_code == 200
    assert via_nginx in page.text and forged_via_nginx in page.text
    forged_page = s.get(f"/admin/events/?ip={FORGED}")
    assert forged_page.status_code == 200
    assert via_nginx not in forged_page.text and forged_via_nginx not in forged_page.text


def test_the_audit_chain_verifies_after_both_processes_wrote_to_it(site):
    count = int(site.psql("SELECT count(*) FROM events").strip())
    assert count >= 8, count  # the users, the token, the upload, the sign-ins of the tests above
    result = None

    def intact():
        nonlocal result
        result = site.cli("audit", "verify", check=False)
        return result.returncode == 0

    # The events of both processes are sealed into one chain (allow the sealers a moment).
    assert eventually(intact), (result.returncode, result.stdout, result.stderr)
    assert "intact" in result.stdout, result.stdout
    export = site.cli("audit", "export")
    lines = export.stdout.splitlines()
    assert len(lines) == int(site.psql("SELECT count(*) FROM events").strip())
    assert any(f'"{CLIENT}"' in line for line in lines)
