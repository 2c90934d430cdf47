"""Hostile archives against a server of their own, so its peak memory is theirs alone."""
import hashlib
import tarfile
import zlib

import pytest
import requests

from conftest import Wharf

GIB = 1 << 30


def peak_rss_mib(pid):
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def long_name_sdist(path, top):
    """A .tar.gz of about 1 MiB: one GNU long-name ('L') member of 1 GiB, then PKG-INFO."""
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = GIB
    pkg_info = tarfile.TarInfo(f"{top}/PKG-INFO")
    metadata = f"Metadata-Version: 2.1\nName: {top.split('-')[0]}\nVersion: 1.0\n".encode()
    pkg_info.size = len(metadata)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
    with open(path, "wb") as out:
        out.write(compressor.compress(header.tobuf(tarfile.GNU_FORMAT)))
        zeros = bytes(1 << 20)
        for _ in range(GIB // len(zeros)):
            out.write(compressor.compress(zeros))
        out.write(compressor.compress(pkg_info.tobuf(tarfile.GNU_FORMAT) + metadata))
        out.write(compressor.compress(bytes(512 - len(metadata) % 512) + bytes(1024)))
        out.write(compressor.flush())
    return path


@pytest.fixture
def lone_server(tmp_path):
    server = Wharf(tmp_path, {}, ["--data-dir", str(tmp_path / "data")])
    server.create_user("alice")
    yield server
    server.stop()


def test_a_gigabyte_long_name_sdist_is_refused_in_little_memory(lone_server, tmp_path):
    path = long_name_sdist(tmp_path / "bomb-1.0.tar.gz", "bomb-1.0")
    content = path.read_bytes()
    assert len(content) < 2 * 1024 * 1024
    token = lone_server.token("alice")
    before = peak_rss_mib(lone_server.process.pid)
    response = requests.post(
        f"{lone_server.url}/legacy/",
        auth=("__token__", token),
        data={
            ":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
            "name": "bomb", "version": "1.0", "filetype": "sdist", "pyversion": "source",
            "sha256_digest": hashlib.sha256(content).hexdigest(),
        },
        files={"content": ("bomb-1.0.tar.gz", content, "application/octet-stream")},
        timeout=300,
    )
    peak = peak_rss_mib(lone_server.process.pid)
    print(f"peak RSS before the upload {before:.1f} MiB, after {peak:.1f} MiB")
    assert response.status_code == 400, response.text
    assert "long name, long link or PAX header" in response.reason, response.reason
    assert peak < 100, f"peak RSS {peak:.1f} MiB"
    assert requests.get(f"{lone_server.url}/simple/bomb/").status_code == 404
