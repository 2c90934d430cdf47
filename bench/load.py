"""Loads N generated projects (two or three files each) into a running wharf, in parallel.

Usage: python load.py URL TOKEN N
"""
import base64
import concurrent.futures
import hashlib
import io
import sys
import zipfile

import requests


def wheel(module, version):
    """A wheel whose METADATA says what the upload form says, with a RECORD of every file."""
    dist_info = f"{module}-{version}.dist-info"
    members = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n"
                                  "Requires-Python: >=3.8\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue()


def upload(session, url, token, name, version):
    filename, data = wheel(name.replace("-", "_"), version)
    fields = {
        ":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1", "name": name,
        "version": version, "summary": f"Benchmark project {name}", "requires_python": ">=3.8",
        "filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    response = session.post(f"{url}/legacy/", data=fields, auth=("__token__", token),
                            files={"content": (filename, data, "application/octet-stream")})
    response.raise_for_status()


def load_project(url, token, index):
    session = requests.Session()
    name = f"bench-project-{index:05d}"
    for version in ["1.0", "1.1", "2.0"][: 2 + index % 2]:
        upload(session, url, token, name, version)


def main():
    url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: load_project(url, token, i), range(count)))


if __name__ == "__main__":
    main()
