"""Operating wharf: `wharf backup` of a server that is receiving uploads, restored into a fresh
directory and compared; `wharf import --from-simple` from a second wharf on loopback."""
import hashlib
import json
import threading
import time

import requests

from conftest import Wharf
from distributions import make_sdist, make_wheel, normalized

JSON = "application/vnd.pypi.simple.v1+json"


def upload(server, token, path, name, version):
    data = path.read_bytes()
    fields = {
        ":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
        "name": name, "version": version, "summary": "A test package",
        "filetype": "bdist_wheel" if path.suffix == ".whl" else "sdist",
        "pyversion": "py3" if path.suffix == ".whl" else "source",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    response = requests.post(f"{server.url}/legacy/", data=fields, files={"content": (path.name, data)},
                             auth=("__token__", token), timeout=30)
    assert response.status_code == 200, response.text
    return path.name


def files_of(server):
    """{filename: (sha256, upload-time)} of every project, through the Simple API."""
    found = {}
    root = requests.get(f"{server.url}/simple/", headers={"Accept": JSON}, timeout=10).json()
    for project in root["projects"]:
        page = requests.get(f"{server.url}/simple/{normalized(project['name'])}/",
                            headers={"Accept": JSON}, timeout=10).json()
        for f in page["files"]:
            found[f["filename"]] = (f["hashes"]["sha256"], f.get("upload-time"), f["url"])
    return found


def events_of(server):
    lines = server.cli("audit", "export").stdout.splitlines()
    keep = ("seq", "hash", "tag", "time", "source_type", "source_id", "additional", "ip_address")
    return [tuple(json.dumps(event.get(k), sort_keys=True) for k in keep) for event in map(json.loads, lines)]


def new_server(tmp, name):
    directory = tmp / name
    directory.mkdir()
    server = Wharf(directory, {}, ["--data-dir", str(directory / "data")])
    server.create_user("alice")
    return server


def test_backup_while_uploading_restores_every_project_file_and_event(tmp_path):
    source = new_server(tmp_path, "source")
    restored = None
    try:
        token = source.token("alice")
        dists = tmp_path / "dists"
        dists.mkdir()
        for i in range(5):
            upload(source, token, make_wheel(dists, f"before-{i}", "1.0"), f"before-{i}", "1.0")
        uploaded, stop = [], threading.Event()

        def keep_uploading():
            i = 0
            while not stop.is_set() and i < 200:
                name = f"during-{i}"
                uploaded.append(upload(source, token, make_wheel(dists, name, "1.0"), name, "1.0"))
                i += 1

        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        time.sleep(0.5)
        backup = tmp_path / "backup"
        done_before = len(uploaded)
        result = source.cli("backup", "--output", str(backup))
        done_after = len(uploaded)
        time.sleep(0.3)
        stop.set()
        uploader.join()
        assert "backed up" in result.stdout, result.stdout + result.stderr
        manifest = json.loads((backup / "manifest.json").read_text())
        # A snapshot taken in the middle: every upload finished before it, none after it.
        assert 5 + done_before <= manifest["counts"]["files"] <= 5 + done_after, (manifest["counts"], done_before, done_after)
        assert done_after < len(uploaded), "uploads went on after the backup"
        assert "intact" in source.cli("backup", "--verify", str(backup)).stdout

        target = tmp_path / "restored"
        restore = subprocess_cli(["--data-dir", str(target / "data"), "restore", str(backup)])
        assert restore.returncode == 0, restore.stderr
        # A second restore into the same directory is refused.
        again = subprocess_cli(["--data-dir", str(target / "data"), "restore", str(backup)])
        assert again.returncode == 1 and "not empty" in again.stderr, again.stderr

        restored = Wharf(target, {}, ["--data-dir", str(target / "data")])
        assert "intact" in restored.cli("audit", "verify").stdout
        files = files_of(restored)
        original = files_of(source)
        assert len(files) == manifest["counts"]["files"]
        for filename, (sha256, upload_time, url) in files.items():
            assert original[filename][:2] == (sha256, upload_time)
            body = requests.get(requests.compat.urljoin(f"{restored.url}/simple/x/", url), timeout=10).content
            assert hashlib.sha256(body).hexdigest() == sha256, filename
        # Every event of the snapshot, as the source has it.
        restored_events = events_of(restored)
        source_events = events_of(source)
        assert restored_events and restored_events == source_events[:len(restored_events)]
        assert len(restored_events) == manifest["counts"]["events"]
    finally:
        source.stop()
        if restored:
            restored.stop()


def subprocess_cli(args):
    import subprocess
    from conftest import BIN
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def test_import_from_simple_of_another_wharf_keeps_files_and_times(tmp_path):
    source = new_server(tmp_path, "source")
    target = new_server(tmp_path, "target")
    try:
        token = source.token("alice")
        dists = tmp_path / "dists"
        dists.mkdir()
        for i in range(3):
            upload(source, token, make_wheel(dists, f"proj-{i}", "1.0"), f"proj-{i}", "1.0")
            upload(source, token, make_sdist(dists, f"proj-{i}", "1.0"), f"proj-{i}", "1.0")
        result = target.cli("import", "--from-simple", f"{source.url}/simple/", "--owner", "alice")
        assert "imported 6 files" in result.stdout, result.stdout + result.stderr
        original, imported = files_of(source), files_of(target)
        assert {k: v[:2] for k, v in imported.items()} == {k: v[:2] for k, v in original.items()}
        assert "intact" in target.cli("audit", "verify").stdout
        tags = [json.loads(line)["tag"] for line in target.cli("audit", "export").stdout.splitlines()]
        assert tags.count("file:import") == 6
        # Installable from the target.
        for filename, (sha256, _, url) in imported.items():
            body = requests.get(requests.compat.urljoin(f"{target.url}/simple/x/", url), timeout=10).content
            assert hashlib.sha256(body).hexdigest() == sha256
        again = target.cli("import", "--from-simple", f"{source.url}/simple/", "--owner", "alice")
        assert "imported 0 files" in again.stdout and "6 already present" in again.stdout, again.stdout
    finally:
        source.stop()
        target.stop()
