"""`wharf import DIR` of N files against the same N files through `POST /legacy/`, in one run.

Usage: WHARF_BIN=path/to/wharf python bench/import_vs_upload.py [N] [JOBS]   (default 4800, 4)

Both sides get the same parallelism: JOBS uploader threads (requests, keep-alive sessions)
against a running `serve`, and `wharf import --jobs JOBS` into a second fresh data directory
while its own `serve` runs. Each file is a small generated wheel (N/2 projects, two versions).
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from conftest import Wharf  # noqa: E402
from distributions import make_wheel  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4800
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 4


def main():
    tmp = Path(tempfile.mkdtemp())
    dists = tmp / "dists"
    dists.mkdir()
    files = []
    for i in range(N):
        name, version = f"bench-{i // 2}", f"1.{i % 2}"
        files.append((make_wheel(dists, name, version), name, version))
    servers = []
    try:
        for label in ("upload", "import"):
            (tmp / label).mkdir()
            server = Wharf(tmp / label, {}, ["--data-dir", str(tmp / label / "data")])
            server.create_user("alice")
            servers.append(server)
        upload_server, import_server = servers
        token = upload_server.token("alice")
        local = threading.local()

        def upload(item):
            path, name, version = item
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            data = path.read_bytes()
            fields = {":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
                      "name": name, "version": version, "summary": "A test package",
                      "filetype": "bdist_wheel", "pyversion": "py3",
                      "sha256_digest": hashlib.sha256(data).hexdigest()}
            response = session.post(f"{upload_server.url}/legacy/", data=fields,
                                    files={"content": (path.name, data)}, auth=("__token__", token))
            assert response.status_code == 200, response.text

        started = time.perf_counter()
        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(upload, files))
        uploads = time.perf_counter() - started

        started = time.perf_counter()
        result = import_server.cli("import", str(dists), "--owner", "alice", "--jobs", str(JOBS))
        imports = time.perf_counter() - started
        assert f"imported {N} files" in result.stdout, result.stdout + result.stderr

        print(f"files: {N}, parallelism: {JOBS}, binary: {os.environ.get('WHARF_BIN')}")
        print(f"POST /legacy/: {uploads:.1f} s ({N / uploads:.0f} files/s)")
        print(f"wharf import:  {imports:.1f} s ({N / imports:.0f} files/s)")
        print(f"import / upload time: {imports / uploads:.2f}x")
    finally:
        for server in servers:
            server.stop()
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
