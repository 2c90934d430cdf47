"""Byte ranges on /files against the real binary, on both shapes (local files and S3): the
answers a client resuming a download relies on, and pip resuming one through a proxy that cuts
the first download short."""
import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import VENV_BIN
from distributions import make_wheel, module_name


@pytest.fixture(scope="module")
def wheel(wharf, tmp_path_factory):
    """A wheel of ~1 MiB that does not compress, uploaded; its name, URL and bytes."""
    name = f"e2e-ranges-{uuid.uuid4().hex[:8]}"
    dist = tmp_path_factory.mktemp("dist")
    path = make_wheel(dist, name, "1.0", files={f"{module_name(name)}/blob.bin": os.urandom(1 << 20)})
    token = wharf.token("alice")
    subprocess.run([str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
                    "--repository-url", f"{wharf.url}/legacy/", "-u", "__token__", "-p", token, str(path)],
                   check=True, capture_output=True)
    url = requests.get(f"{wharf.url}/pypi/{name}/1.0/json").json()["urls"][0]["url"]
    return name, url, path.read_bytes()


def test_a_file_answers_single_ranges(wheel):
    _, url, content = wheel
    size = len(content)
    whole = requests.get(url)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["Accept-Ranges"] == "bytes"
    etag = whole.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    for range_, start, end in [("bytes=0-1023", 0, 1024), (f"bytes={size - 100}-", size - 100, size),
                               ("bytes=-10", size - 10, size), (f"bytes=500000-{size * 2}", 500000, size)]:
        response = requests.get(url, headers={"Range": range_})
        assert response.status_code == 206, range_
        assert response.content == content[start:end], range_
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert response.headers["Content-Length"] == str(end - start)

    past = requests.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{size}"
    several = requests.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == content

    resumed = requests.get(url, headers={"Range": "bytes=1000-", "If-Range": etag})
    assert resumed.status_code == 206 and resumed.content == content[1000:]
    by_date = requests.get(url, headers={"Range": "bytes=1000-", "If-Range": whole.headers["Last-Modified"]})
    assert by_date.status_code == 206 and by_date.content == content[1000:]
    stale = requests.get(url, headers={"Range": "bytes=1000-", "If-Range": '"another"'})
    assert stale.status_code == 200 and stale.content == content

    head = requests.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(size)
    assert head.headers["ETag"] == etag


class CuttingProxy(BaseHTTPRequestHandler):
    """Passes requests on to wharf, but sends only half of the first wheel it is asked for."""
    protocol_version = "HTTP/1.1"
    upstream = None
    seen = []
    cut = False

    def do_GET(self):
        forwarded = {k: v for k, v in self.headers.items() if k.lower() in ("range", "if-range", "accept", "user-agent")}
        upstream = requests.get(self.upstream + self.path, headers=forwarded, stream=True, allow_redirects=False)
        body = upstream.raw.read(decode_content=False)
        wheel = self.path.startswith("/files/") and self.path.endswith(".whl")
        cut = wheel and not CuttingProxy.cut
        if wheel:
            CuttingProxy.seen.append((forwarded.get("Range"), forwarded.get("If-Range"), upstream.status_code))
            CuttingProxy.cut = True
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_pip_resumes_an_interrupted_download(wharf, wheel, tmp_path):
    name, _, content = wheel
    CuttingProxy.upstream, CuttingProxy.seen, CuttingProxy.cut = wharf.url, [], False
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), CuttingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [str(VENV_BIN / "pip"), "download", "--no-cache-dir", "--disable-pip-version-check", "--no-deps",
             "--resume-retries", "2", "--index-url", f"http://127.0.0.1:{proxy.server_address[1]}/simple/",
             "--dest", str(tmp_path), name],
            capture_output=True, text=True)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resume" in (result.stdout + result.stderr).lower()
    downloaded = list(tmp_path.glob("*.whl"))
    assert len(downloaded) == 1 and downloaded[0].read_bytes() == content
    # The first download was cut short; the second asked for the rest of that very file.
    (first, second) = CuttingProxy.seen
    assert first == (None, None, 200)
    assert second[0] == f"bytes={len(content) // 2}-" and second[1].startswith('"') and second[2] == 206
