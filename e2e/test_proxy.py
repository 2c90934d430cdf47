"""The PyPI proxy (issue 16) with the real binary and the real clients. The upstream is a second
wharf process on loopback (embedded shape), seeded once per module with twine (and one
`wharf import` for a file with an old upload time); the proxy runs on each deployment shape
(SQLite + disk; PostgreSQL + S3 through moto when WHARF_E2E_POSTGRES_URL is set).

Upstream requests are counted from the upstream's own access log (one `wharf::access` line per
request, with its path).

Covered: proxied pages (JSON and HTML, the proxy's own /files/upstream/ URLs, the upstream's
hashes, requires-python, core-metadata and PEP 700 fields kept; /simple/ lists hosted names
only); pip and uv install a chain that mixes hosted and proxied names through the proxy alone,
and a hosted name that also exists upstream at a higher version installs the hosted files
without the upstream being asked; the page TTL; an upload under a name served from the upstream
refused until `wharf project claim`; private prefixes never asked upstream; the upstream stopped
or hanging (stale-if-error, 502 for names never fetched, hosted names unaffected); a tampered
upstream file refused and not stored; upstream_min_age; blocks; 50 concurrent first requests
for one file make one upstream request.
"""
import concurrent.futures
import hashlib
import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urldefrag

import pytest
import requests

from conftest import SHAPES, VENV_BIN, Wharf, start_moto
from distributions import make_sdist, make_wheel, normalized
from test_clients import run, twine_upload

PYTHON = sys.executable
JSON = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
BUCKET = "wharf-proxy-e2e"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Nothing may prompt or find a credential or another index elsewhere.
CLIENT_ENV = {"PIP_NO_INPUT": "1", "PIP_KEYRING_PROVIDER": "disabled", "PIP_CONFIG_FILE": os.devnull,
              "UV_KEYRING_PROVIDER": "disabled", "NETRC": os.devnull, "UV_NO_CONFIG": "1",
              "PIP_FIND_LINKS": ""}  # this machine sets PIP_FIND_LINKS: the proxy must be the only source
VERSIONS = itertools.count(1)


# --- helpers -----------------------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pip_install(index, target, *requirements, check=True):
    return run(VENV_BIN / "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
               "--keyring-provider", "disabled", "--index-url", index, "--target", target, *requirements,
               env=CLIENT_ENV, check=check)


def uv_install(index, target, *requirements, check=True):
    return run(VENV_BIN / "uv", "pip", "install", "--no-cache", "--no-config", "--keyring-provider", "disabled",
               "--python", PYTHON, "--index-url", index, "--target", target, *requirements,
               env=CLIENT_ENV, check=check)


def dist_infos(target):
    """{module: version} of what an installer put into --target."""
    found = {}
    for path in Path(target).glob("*.dist-info"):
        module, version = path.name[:-len(".dist-info")].rsplit("-", 1)
        found[module] = version
    return found


def output_of(result):
    return " ".join((result.stdout + result.stderr).split())  # twine and pip wrap to the terminal


def page_json(server, name, **kwargs):
    return requests.get(f"{server.url}/simple/{name}/", headers={"Accept": JSON}, timeout=30, **kwargs)


def absolute(page_url, url):
    return urldefrag(urljoin(page_url, url))[0]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(text):
    parser = Links()
    parser.feed(text)
    return parser.anchors


class AccessLog:
    """The upstream's access log: what the proxy asked it, in order."""

    def __init__(self, server):
        self.server = server

    def paths(self, settle=0.4):
        # The log thread writes its lines buffered, flushed whenever its queue is empty.
        time.sleep(settle)
        text = (self.server.tmp / "server.log").read_text(errors="replace")
        paths = []
        for line in text.splitlines():
            if "wharf::access" not in line:
                continue
            match = re.search(r' path="((?:[^"\\]|\\.)*)"', line)
            assert match, line
            paths.append(match.group(1))
        return paths

    def mark(self, settle=0.4):
        return len(self.paths(settle))

    def since(self, mark):
        return self.paths()[mark:]


def page_requests(paths, name):
    return [p for p in paths if p.split("?")[0].rstrip("/") == f"/simple/{name}"]


def file_requests(paths, filename):
    return [p for p in paths if p.split("?")[0].endswith("/" + filename)]


# --- the servers -------------------------------------------------------------------------------

class Shape:
    """Starts wharf processes on one deployment shape, each with its own database and storage."""

    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self.cleanups = []
        if name == "scaleout":
            self.pg = os.environ.get("WHARF_E2E_POSTGRES_URL")
            if not self.pg:
                pytest.skip("PostgreSQL not available: the proxy on the scale-out shape is NOT tested")
            moto, self.s3_endpoint = start_moto(tmp)
            self.cleanups.append(lambda: (moto.terminate(), moto.wait(timeout=10)))
            self.s3().create_bucket(Bucket=BUCKET)

    def s3(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def start(self, label, env):
        tmp = self.tmp / label
        tmp.mkdir()
        if self.name == "embedded":
            server = Wharf(tmp, env, ["--data-dir", str(tmp / "data")])
        else:
            database = f"wharf_e2e_{uuid.uuid4().hex[:12]}"
            subprocess.run(["psql", f"{self.pg}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
            self.cleanups.append(lambda: subprocess.run(
                ["psql", f"{self.pg}/postgres", "-qc", f"DROP DATABASE {database} WITH (FORCE)"]))
            server = Wharf(tmp, {**S3_ENV, "AWS_ENDPOINT_URL": self.s3_endpoint, **env},
                           ["--data-dir", str(tmp / "data"), "--database-url", f"{self.pg}/{database}",
                            "--storage-url", f"s3://{BUCKET}/{label}"])
        server.shape = self.name
        server.label = label
        self.cleanups.append(lambda: stop(server))
        return server

    def stored(self, server):
        """The names of every object in the server's storage."""
        if self.name == "embedded":
            return [str(p.relative_to(server.tmp / "data")) for p in (server.tmp / "data").rglob("*") if p.is_file()]
        keys = []
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{server.label}/"):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def close(self):
        for cleanup in reversed(self.cleanups):
            cleanup()


def stop(server):
    if server.process.poll() is None:
        server.stop()


def proxy_env(upstream, **settings):
    return {"WHARF_UPSTREAM_URL": f"{upstream.url}/simple/", "WHARF_UPSTREAM_TTL": "1s",
            "WHARF_UPSTREAM_TIMEOUT": "2s", **{f"WHARF_{k.upper()}": v for k, v in settings.items()}}


def seed(server, *files):
    """Uploads files to server with twine; returns {filename: {sha256, path}}."""
    twine_upload(server, server.token("alice"), *files)
    return {Path(f).name: {"sha256": sha256(Path(f).read_bytes()), "path": Path(f)} for f in files}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upstream")
    server = Wharf(tmp, {}, ["--data-dir", str(tmp / "data")])
    server.shape = "embedded"
    try:
        server.create_user("alice")
        dist = tmp / "dist"
        dist.mkdir()
        # One file whose upload time is ten days ago (`wharf import` keeps a file's mtime).
        old = tmp / "old"
        old.mkdir()
        aged_old = make_wheel(old, "aged", "1.0")
        ten_days_ago = time.time() - 10 * 86400
        os.utime(aged_old, (ten_days_ago, ten_days_ago))
        imported = server.cli("import", str(old), "--owner", "alice")
        assert "imported 1 files" in imported.stdout, imported.stdout + imported.stderr
        server.files = {aged_old.name: {"sha256": sha256(aged_old.read_bytes()), "path": aged_old}}
        server.files.update(seed(server,
            make_wheel(dist, "lib-b", "1.0"),
            make_wheel(dist, "lib-a", "1.0", requires_dist=["lib-b>=1.0"], requires_python=">=3.8"),
            make_sdist(dist, "lib-a", "1.0", requires_dist=["lib-b>=1.0"], requires_python=">=3.8"),
            make_wheel(dist, "shared", "2.0"),
            make_wheel(dist, "claimable", "1.0"),
            make_wheel(dist, "tampered", "1.0"),
            make_wheel(dist, "popular", "1.0", files={"popular/blob.bin": os.urandom(2 * 1024 * 1024)}),
            make_wheel(dist, "blockme", "1.0"),
            make_wheel(dist, "blockme", "2.0"),
            make_wheel(dist, "acme-secret", "1.0"),
            make_wheel(dist, "internal-tool", "1.0"),
            make_wheel(dist, "aged", "2.0"),
            make_wheel(dist, "refreshed", "1.0"),
        ))
        # The tampered file: its bytes on the upstream's disk changed after upload (same size), so
        # the upstream's page still carries the original hash. No proxy exists yet.
        stored = list((tmp / "data" / "files").rglob("tampered-1.0-py3-none-any.whl"))
        assert len(stored) == 1, stored
        data = bytearray(stored[0].read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
        stored[0].write_bytes(bytes(data))
        server.tampered_sha256 = sha256(bytes(data))
        server.access = AccessLog(server)
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module", params=SHAPES)
def shape(request, tmp_path_factory):
    backend = Shape(request.param, tmp_path_factory.mktemp(f"proxy-{request.param}"))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def proxy(shape, upstream):
    server = shape.start("proxy", proxy_env(upstream, private_prefixes="acme-,internal-"))
    server.create_user("alice")
    dist = server.tmp / "dist"
    dist.mkdir()
    server.hosted = seed(server,
        make_wheel(dist, "app", "1.0", requires_dist=["lib-a>=1.0", "shared"]),
        make_wheel(dist, "shared", "1.0"),
        make_wheel(dist, "acme-tools", "1.0"),
    )
    server.backend = shape
    return server


def upstream_file(upstream, filename):
    return upstream.files[filename]


def proxied_url(proxy, name, filename, sha):
    return f"{proxy.url}/files/upstream/{name}/{sha}/{filename}"


# --- pages -------------------------------------------------------------------------------------

def test_a_proxied_page_has_the_upstreams_files_at_the_proxys_urls(proxy, upstream):
    theirs = page_json(upstream, "lib-a")
    assert theirs.status_code == 200, theirs.text
    theirs = theirs.json()
    mine = page_json(proxy, "lib-a")
    assert mine.status_code == 200, (mine.status_code, mine.text)
    assert mine.headers["Content-Type"].startswith(JSON), mine.headers
    ours = mine.json()
    assert ours["name"] == "lib-a"
    assert ours["versions"] == theirs["versions"] == ["1.0"], (ours["versions"], theirs["versions"])
    assert [f["filename"] for f in ours["files"]] == [f["filename"] for f in theirs["files"]]
    for upstream_entry, entry in zip(theirs["files"], ours["files"]):
        filename = entry["filename"]
        sha = upstream_file(upstream, filename)["sha256"]
        assert entry["hashes"]["sha256"] == sha == upstream_entry["hashes"]["sha256"], entry
        assert absolute(mine.url, entry["url"]) == proxied_url(proxy, "lib-a", filename, sha), entry["url"]
        for key in ["requires-python", "core-metadata", "yanked", "size", "upload-time"]:
            assert entry.get(key) == upstream_entry.get(key), (key, entry.get(key), upstream_entry.get(key))
        assert entry["requires-python"] == ">=3.8"
        download = requests.get(absolute(mine.url, entry["url"]), timeout=30)
        assert download.status_code == 200, (download.status_code, download.text[:300])
        assert sha256(download.content) == sha, filename
        if entry["core-metadata"]:
            metadata = requests.get(absolute(mine.url, entry["url"]) + ".metadata", timeout=30)
            assert metadata.status_code == 200, (metadata.status_code, metadata.text[:300])
            assert sha256(metadata.content) == entry["core-metadata"]["sha256"]
            assert b"Requires-Dist: lib-b>=1.0" in metadata.content
    assert any(f["core-metadata"] for f in ours["files"]), "the wheel's metadata hash is kept"


def test_proxied_pages_negotiate_as_hosted_pages_do(proxy, upstream):
    for accept in [JSON, HTML_V1, "text/html", None, f"{JSON}, {HTML_V1};q=0.5", "*/*"]:
        headers = {"Accept": accept} if accept else {}
        hosted = requests.get(f"{proxy.url}/simple/app/", headers=headers, timeout=30)
        proxied = requests.get(f"{proxy.url}/simple/lib-a/", headers=headers, timeout=30)
        assert hosted.status_code == proxied.status_code == 200, (accept, hosted.status_code, proxied.status_code)
        assert proxied.headers["Content-Type"] == hosted.headers["Content-Type"], \
            (accept, proxied.headers["Content-Type"], hosted.headers["Content-Type"])
        assert proxied.headers.get("Vary") == hosted.headers.get("Vary"), (accept, proxied.headers, hosted.headers)
    page = requests.get(f"{proxy.url}/simple/lib-a/", headers={"Accept": "text/html"}, timeout=30)
    links = {a["href"].split("#")[0].rsplit("/", 1)[-1]: a for a in anchors(page.text)}
    assert sorted(links) == ["lib_a-1.0-py3-none-any.whl", "lib_a-1.0.tar.gz"], links
    for filename, anchor in links.items():
        sha = upstream_file(upstream, filename)["sha256"]
        url, fragment = urldefrag(urljoin(page.url, anchor["href"]))
        assert url == proxied_url(proxy, "lib-a", filename, sha), url
        assert fragment == f"sha256={sha}", fragment
        assert anchor.get("data-requires-python") == ">=3.8", anchor
    assert links["lib_a-1.0-py3-none-any.whl"].get("data-core-metadata", "").startswith("sha256="), links
    assert "data-core-metadata" not in links["lib_a-1.0.tar.gz"], links


def test_the_root_lists_hosted_projects_only(proxy):
    assert page_json(proxy, "lib-b").status_code == 200  # served from the upstream now
    root = requests.get(f"{proxy.url}/simple/", headers={"Accept": JSON}, timeout=30)
    assert root.status_code == 200, root.text
    names = sorted(p["name"] for p in root.json()["projects"])
    assert names == ["acme-tools", "app", "shared"], names
    text = requests.get(f"{proxy.url}/simple/", headers={"Accept": "text/html"}, timeout=30).text
    assert "lib-a" not in text and "lib-b" not in text and "app" in text, text


def test_a_name_the_upstream_does_not_have_is_404(proxy, upstream):
    mark = upstream.access.mark()
    missing = page_json(proxy, "nowhere-to-be-found")
    assert missing.status_code == 404, (missing.status_code, missing.text)
    assert page_requests(upstream.access.since(mark), "nowhere-to-be-found"), "the upstream was asked"


def test_a_page_is_used_for_its_ttl_then_asked_again(proxy, upstream, tmp_path):
    first = page_json(proxy, "refreshed")
    assert first.status_code == 200, first.text
    mark = upstream.access.mark()
    again = page_json(proxy, "refreshed")
    assert again.json()["versions"] == first.json()["versions"]
    assert page_requests(upstream.access.since(mark), "refreshed") == [], "asked again within the TTL"
    version = f"1.{next(VERSIONS)}.{uuid.uuid4().int % 1000}"
    twine_upload(upstream, upstream.token("alice"), make_wheel(tmp_path, "refreshed", version))
    time.sleep(1.5)
    mark = upstream.access.mark(settle=0)
    later = page_json(proxy, "refreshed")
    assert version in later.json()["versions"], (version, later.json()["versions"])
    assert f"refreshed-{version}-py3-none-any.whl" in [f["filename"] for f in later.json()["files"]]
    assert len(page_requests(upstream.access.since(mark), "refreshed")) == 1


# --- installing through the proxy alone ----------------------------------------------------------

def test_pip_and_uv_install_a_chain_of_hosted_and_proxied_names(proxy, upstream, tmp_path):
    index = f"{proxy.url}/simple/"
    wanted = {"app": "1.0", "lib_a": "1.0", "lib_b": "1.0", "shared": "1.0"}
    mark = upstream.access.mark()
    pip_install(index, tmp_path / "pip", "app")
    assert dist_infos(tmp_path / "pip") == wanted, "shared must be the hosted 1.0, not the upstream's 2.0"
    after_pip = upstream.access.mark()
    uv_install(index, tmp_path / "uv", "app")
    assert dist_infos(tmp_path / "uv") == wanted
    # A direct request of the hosted name installs the hosted version too.
    pip_install(index, tmp_path / "pip-shared", "shared")
    assert dist_infos(tmp_path / "pip-shared") == {"shared": "1.0"}
    uv_install(index, tmp_path / "uv-shared", "shared")
    assert dist_infos(tmp_path / "uv-shared") == {"shared": "1.0"}
    assert requests.get(f"{proxy.url}/simple/shared/", headers={"Accept": JSON}).json()["versions"] == ["1.0"]
    everything = upstream.access.since(mark)
    assert not [p for p in everything if "shared" in p.lower()], \
        f"the upstream was asked about the hosted name: {[p for p in everything if 'shared' in p.lower()]}"
    # Files fetched for pip were served to uv from the proxy's storage.
    for filename in ["lib_a-1.0-py3-none-any.whl", "lib_b-1.0-py3-none-any.whl"]:
        assert file_requests(upstream.access.since(after_pip), filename) == [], f"{filename} fetched again"
    assert not [p for p in upstream.access.paths() if p.startswith("/simple/shared") or p.startswith("/simple/app")]
    assert [p for p in upstream.access.paths() if p.startswith("/simple/lib-b/")], "the log is read at all"


# --- the hosted-or-proxied rule ------------------------------------------------------------------

def test_an_upload_under_a_proxied_name_is_refused_until_claimed(proxy, upstream, tmp_path):
    served = page_json(proxy, "claimable")
    assert served.status_code == 200 and served.json()["files"], served.text
    token = proxy.token("alice")
    mine = make_wheel(tmp_path, "claimable", "5.0")
    refused = twine_upload(proxy, token, mine, check=False)
    output = output_of(refused)
    assert refused.returncode != 0, output
    assert "403" in output, output
    assert "upstream" in output.lower() and "wharf project claim" in output, output
    assert page_json(proxy, "claimable").json()["versions"] == ["1.0"], "nothing was hosted"

    claim = proxy.cli("project", "claim", "claimable", check=False)
    assert claim.returncode == 0, claim.stdout + claim.stderr
    assert claim.stdout.strip() and "\n" not in claim.stdout.strip(), claim.stdout
    twine_upload(proxy, token, mine)
    time.sleep(1.5)  # past the TTL: a cached upstream page could not hide a merge
    mark = upstream.access.mark()
    for _ in range(2):
        page = page_json(proxy, "claimable")
        assert page.status_code == 200, page.text
        assert page.json()["versions"] == ["5.0"], page.json()
        files = page.json()["files"]
        assert [f["filename"] for f in files] == ["claimable-5.0-py3-none-any.whl"], files
        assert "/files/upstream/" not in absolute(page.url, files[0]["url"]), files[0]["url"]
    html_page = requests.get(f"{proxy.url}/simple/claimable/", headers={"Accept": "text/html"}).text
    assert "claimable-1.0" not in html_page and "claimable-5.0" in html_page, html_page
    assert not [p for p in upstream.access.since(mark) if "claimable" in p], "the upstream was asked after the claim"
    pip_install(f"{proxy.url}/simple/", tmp_path / "pip", "claimable")
    assert dist_infos(tmp_path / "pip") == {"claimable": "5.0"}


def test_private_prefixes_are_never_asked_upstream(proxy, upstream, tmp_path):
    sha = upstream_file(upstream, "acme_secret-1.0-py3-none-any.whl")["sha256"]
    for name in ["acme-secret", "acme_secret", "Acme.Secret", "ACME-SECRET", "internal-tool", "internal_tool"]:
        answer = requests.get(f"{proxy.url}/simple/{name}/", headers={"Accept": JSON}, timeout=30)
        assert answer.status_code == 404, (name, answer.status_code, answer.text[:300])
    direct = requests.get(proxied_url(proxy, "acme-secret", "acme_secret-1.0-py3-none-any.whl", sha), timeout=30)
    assert direct.status_code in (403, 404), (direct.status_code, direct.text[:300])
    failed = pip_install(f"{proxy.url}/simple/", tmp_path / "pip", "acme-secret", check=False)
    assert failed.returncode != 0, output_of(failed)
    failed = uv_install(f"{proxy.url}/simple/", tmp_path / "uv", "internal-tool", check=False)
    assert failed.returncode != 0, output_of(failed)
    # A hosted name with the prefix is served as any hosted name.
    pip_install(f"{proxy.url}/simple/", tmp_path / "hosted", "acme-tools")
    assert dist_infos(tmp_path / "hosted") == {"acme_tools": "1.0"}
    assert page_json(proxy, "lib-b").status_code == 200
    paths = upstream.access.paths()
    leaked = [p for p in paths if re.search(r"acme|internal", p, re.I)]
    assert leaked == [], f"private names asked upstream: {leaked}"
    assert [p for p in paths if p.startswith("/simple/lib-b/")], "the log is read at all"


# --- supply-chain rules --------------------------------------------------------------------------

def test_a_tampered_upstream_file_is_refused_and_not_stored(proxy, upstream, tmp_path):
    filename = "tampered-1.0-py3-none-any.whl"
    original = upstream_file(upstream, filename)["sha256"]
    # The upstream itself serves the changed bytes under the original hash.
    theirs = page_json(upstream, "tampered").json()["files"][0]
    assert theirs["hashes"]["sha256"] == original
    assert sha256(requests.get(absolute(f"{upstream.url}/simple/tampered/", theirs["url"])).content) \
        == upstream.tampered_sha256 != original

    page = page_json(proxy, "tampered")
    assert page.status_code == 200, page.text
    entry = page.json()["files"][0]
    assert entry["hashes"]["sha256"] == original, "the proxy lists the upstream's hash"
    url = absolute(page.url, entry["url"])
    for attempt in ["first", "second"]:
        try:
            answer = requests.get(url, timeout=30)
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as cut:
            assert attempt == "first", f"the second request should answer 502, not cut off: {cut}"
            continue
        if attempt == "first" and answer.status_code == 200:
            pytest.fail(f"the tampered file was delivered whole (sha256 {sha256(answer.content)}, "
                        f"{len(answer.content)} bytes, upstream hash {original})")
        assert answer.status_code == 502, (attempt, answer.status_code, answer.text[:300])
        assert "upstream" in (answer.reason + answer.text).lower(), (answer.reason, answer.text[:300])
    failed = pip_install(f"{proxy.url}/simple/", tmp_path / "pip", "tampered", check=False)
    assert failed.returncode != 0, output_of(failed)
    assert "tampered" not in dist_infos(tmp_path / "pip")
    failed = uv_install(f"{proxy.url}/simple/", tmp_path / "uv", "tampered", check=False)
    assert failed.returncode != 0, output_of(failed)

    # A good file fetched the same way is stored: the listing below sees proxied files.
    good = page_json(proxy, "lib-b").json()["files"][0]
    assert requests.get(absolute(page.url, good["url"]), timeout=30).status_code == 200
    time.sleep(0.5)
    stored = proxy.backend.stored(proxy)
    assert [s for s in stored if s.endswith("/lib_b-1.0-py3-none-any.whl")], stored
    assert [s for s in stored if s.endswith(filename)] == [], "the tampered file was kept"


def test_upstream_min_age_hides_young_files(shape, upstream, tmp_path):
    young = shape.start("min-age", proxy_env(upstream, upstream_min_age="3d"))
    index = f"{young.url}/simple/"
    page = page_json(young, "aged")
    assert page.status_code == 200, page.text
    assert [f["filename"] for f in page.json()["files"]] == ["aged-1.0-py3-none-any.whl"], page.json()
    html_page = requests.get(f"{young.url}/simple/aged/", headers={"Accept": "text/html"}).text
    assert "aged-2.0" not in html_page and "aged-1.0" in html_page, html_page
    pip_install(index, tmp_path / "pip", "aged")
    assert dist_infos(tmp_path / "pip") == {"aged": "1.0"}, "the release before the young one"
    uv_install(index, tmp_path / "uv", "aged")
    assert dist_infos(tmp_path / "uv") == {"aged": "1.0"}
    failed = pip_install(index, tmp_path / "pip2", "aged==2.0", check=False)
    assert failed.returncode != 0, output_of(failed)

    only_young = page_json(young, "lib-b")
    assert only_young.status_code == 404 or only_young.json()["files"] == [], only_young.text
    failed = pip_install(index, tmp_path / "pip3", "lib-b", check=False)
    assert failed.returncode != 0 and "lib-b" in output_of(failed).lower(), output_of(failed)
    assert not (tmp_path / "pip3").exists() or dist_infos(tmp_path / "pip3") == {}


def test_upstream_min_age_hidden_files_are_not_served_by_url(shape, upstream):
    young = shape.start("min-age-url", proxy_env(upstream, upstream_min_age="3d"))
    assert page_json(young, "aged").status_code == 200
    filename = "aged-2.0-py3-none-any.whl"
    sha = upstream_file(upstream, filename)["sha256"]
    direct = requests.get(proxied_url(young, "aged", filename, sha), timeout=30)
    assert direct.status_code in (403, 404), (direct.status_code, direct.text[:300])
    old = "aged-1.0-py3-none-any.whl"
    served = requests.get(proxied_url(young, "aged", old, upstream_file(upstream, old)["sha256"]), timeout=30)
    assert served.status_code == 200 and sha256(served.content) == upstream_file(upstream, old)["sha256"]


def test_blocked_projects_and_versions_are_not_served_even_from_cache(proxy, upstream, tmp_path):
    first, second = "blockme-1.0-py3-none-any.whl", "blockme-2.0-py3-none-any.whl"
    urls = {f: proxied_url(proxy, "blockme", f, upstream_file(upstream, f)["sha256"]) for f in (first, second)}
    page = page_json(proxy, "blockme")
    assert page.status_code == 200, page.text
    assert sorted(f["filename"] for f in page.json()["files"]) == [first, second], page.json()
    for filename, url in urls.items():  # both cached now
        answer = requests.get(url, timeout=30)
        assert answer.status_code == 200 and sha256(answer.content) == upstream_file(upstream, filename)["sha256"]

    def listed():
        answer = page_json(proxy, "blockme")
        if answer.status_code in (403, 404):
            return []
        assert answer.status_code == 200, answer.text
        return sorted(f["filename"] for f in answer.json()["files"])

    def status(filename):
        return requests.get(urls[filename], timeout=30).status_code

    def settles(expected):
        # A block made by the CLI reaches the serving process through the journal, within
        # cache_refresh_ms (1 s by default); the files' URLs refuse at once.
        deadline = time.time() + 5
        while listed() != expected and time.time() < deadline:
            time.sleep(0.1)
        return listed() == expected

    blocked = proxy.cli("proxy", "block", "blockme==2.0", "--reason", "CVE-2026-0001 in 2.0", check=False)
    assert blocked.returncode == 0, blocked.stdout + blocked.stderr
    assert blocked.stdout.strip() == "blocked blockme==2.0", blocked.stdout
    assert status(second) == 403
    assert settles([first])
    assert status(second) in (403, 404) and status(first) == 200
    html_page = requests.get(f"{proxy.url}/simple/blockme/", headers={"Accept": "text/html"}).text
    assert "blockme-2.0" not in html_page, html_page
    pip_install(f"{proxy.url}/simple/", tmp_path / "pip", "blockme")
    assert dist_infos(tmp_path / "pip") == {"blockme": "1.0"}

    blocked = proxy.cli("proxy", "block", "blockme", "--reason", "maintainer account taken over", check=False)
    assert blocked.returncode == 0, blocked.stdout + blocked.stderr
    assert settles([])
    assert status(first) in (403, 404) and status(second) in (403, 404)
    failed = pip_install(f"{proxy.url}/simple/", tmp_path / "pip2", "blockme", check=False)
    assert failed.returncode != 0, output_of(failed)
    failed = uv_install(f"{proxy.url}/simple/", tmp_path / "uv2", "blockme", check=False)
    assert failed.returncode != 0, output_of(failed)

    unblocked = proxy.cli("proxy", "unblock", "blockme", check=False)
    assert unblocked.returncode == 0, unblocked.stdout + unblocked.stderr
    assert settles([first]) and status(first) == 200
    unblocked = proxy.cli("proxy", "unblock", "blockme==2.0", check=False)
    assert unblocked.returncode == 0, unblocked.stdout + unblocked.stderr
    assert settles([first, second])
    assert status(first) == 200 and status(second) == 200


# --- single flight -------------------------------------------------------------------------------

def test_fifty_concurrent_first_requests_make_one_upstream_request(proxy, upstream):
    filename = "popular-1.0-py3-none-any.whl"
    expected = upstream_file(upstream, filename)["sha256"]
    page = page_json(proxy, "popular")
    assert page.status_code == 200, page.text
    url = absolute(page.url, page.json()["files"][0]["url"])
    assert url == proxied_url(proxy, "popular", filename, expected)
    mark = upstream.access.mark()
    barrier = threading.Barrier(50)

    def fetch(_):
        with requests.Session() as session:
            barrier.wait(timeout=30)
            answer = session.get(url, timeout=60)
            return answer.status_code, sha256(answer.content), len(answer.content)

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(fetch, range(50)))
    assert [r for r in results if r[:2] != (200, expected)] == [], results
    asked = file_requests(upstream.access.since(mark), filename)
    assert len(asked) == 1, f"{len(asked)} upstream requests for one file: {asked}"
    # And afterwards it comes from the proxy's storage.
    mark = upstream.access.mark(settle=0)
    assert sha256(requests.get(url, timeout=30).content) == expected
    assert file_requests(upstream.access.since(mark), filename) == []


# --- the upstream down or slow -------------------------------------------------------------------

def test_the_upstream_stopped_or_hanging(shape, tmp_path_factory, tmp_path):
    tmp = tmp_path_factory.mktemp("upstream-down")
    origin = Wharf(tmp, {}, ["--data-dir", str(tmp / "data")])
    try:
        origin.create_user("alice")
        dist = tmp / "dist"
        dist.mkdir()
        twine_upload(origin, origin.token("alice"), make_wheel(dist, "sturdy", "1.0"),
                     make_wheel(dist, "sturdy-dep", "1.0"))
        proxy = shape.start("outage", proxy_env(origin))
        proxy.create_user("alice")
        twine_upload(proxy, proxy.token("alice"), make_wheel(tmp_path, "local-one", "1.0"))
        index = f"{proxy.url}/simple/"
        pip_install(index, tmp_path / "before", "sturdy")
        assert dist_infos(tmp_path / "before") == {"sturdy": "1.0"}
    finally:
        stop(origin)

    time.sleep(1.5)  # past the TTL: the proxy must ask, and the upstream is gone
    pip_install(index, tmp_path / "stopped", "sturdy")
    assert dist_infos(tmp_path / "stopped") == {"sturdy": "1.0"}
    page = page_json(proxy, "sturdy")
    assert page.status_code == 200 and [f["filename"] for f in page.json()["files"]] == ["sturdy-1.0-py3-none-any.whl"]
    never = page_json(proxy, "sturdy-dep")
    assert never.status_code == 502, (never.status_code, never.text[:300])
    assert "upstream" in (never.reason + never.text).lower(), (never.reason, never.text[:300])
    failed = pip_install(index, tmp_path / "never", "sturdy-dep", check=False)
    assert failed.returncode != 0, output_of(failed)
    assert page_json(proxy, "local-one").status_code == 200

    # Now something listens on the upstream's port and never answers: the timeout (2s) applies.
    port = int(origin.url.rsplit(":", 1)[1])
    hang = socket.socket()
    hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hang.bind(("127.0.0.1", port))
    hang.listen(128)
    try:
        start = time.monotonic()
        slow = page_json(proxy, "sturdy-dep")
        elapsed = time.monotonic() - start
        assert slow.status_code == 502, (slow.status_code, slow.text[:300])
        assert "upstream" in (slow.reason + slow.text).lower(), (slow.reason, slow.text[:300])
        assert elapsed < 10, f"502 after {elapsed:.1f}s with upstream_timeout = 2s"
        start = time.monotonic()
        assert page_json(proxy, "local-one").status_code == 200
        assert time.monotonic() - start < 1, "a hosted page waited for the upstream"
        time.sleep(1.5)
        pip_install(index, tmp_path / "hanging", "sturdy")
        assert dist_infos(tmp_path / "hanging") == {"sturdy": "1.0"}
    finally:
        hang.close()
