"""`wharf backup` and `wharf restore` on the scale-out shape: PostgreSQL (a custom-format
`pg_dump`) and S3 (moto_server). A server on a fresh database and bucket receives uploads while
the backup runs; the backup verifies; it is restored into a new empty database and a new empty
bucket, and a server on the restored index serves every project, file (downloaded, sha256
checked) and event of the backup, and its audit chain verifies. A restore into a target that is
not empty is refused and changes nothing; without pg_dump on the PATH the backup stops with one
line and writes nothing."""
import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
import uuid

import boto3
import pytest
import requests

from conftest import BIN, Wharf, start_moto
from distributions import make_sdist, make_wheel
from test_operations import events_of, files_of, upload

JSON = "application/vnd.pypi.simple.v1+json"
PG = os.environ.get("WHARF_E2E_POSTGRES_URL")
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

pytestmark = pytest.mark.skipif(
    not PG, reason="WHARF_E2E_POSTGRES_URL is unset: backup/restore on PostgreSQL + S3 is NOT tested")


def psql(database, sql):
    return subprocess.run(["psql", f"{PG}/{database}", "-qAtc", sql], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def scaleout(tmp_path):
    """Makes databases and buckets on demand; drops them and stops moto afterwards."""
    databases = []
    moto, endpoint = start_moto(tmp_path)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")

    class Resources:
        def database(self):
            name = f"wharf_e2e_{uuid.uuid4().hex[:12]}"
            psql("postgres", f"CREATE DATABASE {name}")
            databases.append(name)
            return name

        def bucket(self):
            name = f"wharf-e2e-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=name)
            return name

        def objects(self, bucket):
            """{key: (etag, size)} of every object in the bucket."""
            found = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    found[item["Key"]] = (item["ETag"], item["Size"])
            return found

    resources = Resources()
    resources.endpoint = endpoint
    resources.env = {**AWS, "AWS_ENDPOINT_URL": endpoint, "WHARF_SECRET_KEY": secrets.token_hex(32)}
    try:
        yield resources
    finally:
        for name in databases:
            subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        moto.terminate()
        moto.wait(timeout=10)


def args_for(tmp, database, bucket):
    return ["--data-dir", str(tmp / "data"), "--database-url", f"{PG}/{database}",
            "--storage-url", f"s3://{bucket}/packages"]


def cli(env, args, *command, path=None):
    environment = {**os.environ, **env}
    if path is not None:
        environment["PATH"] = path
    return subprocess.run([BIN, *args, *command], env=environment, capture_output=True, text=True)


def data_of(database):
    """Every row of the database, as pg_dump writes it (no timestamps in the plain format; the
    random key of its \\restrict lines left out)."""
    dump = subprocess.run(["pg_dump", "--data-only", "--no-owner", f"{PG}/{database}"], check=True,
                          capture_output=True, text=True).stdout
    return [line for line in dump.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]


def counts_in_dump(dump):
    """The rows of each counted table in a custom-format dump, read by pg_restore, not wharf."""
    counts = {}
    for table in ("projects", "releases", "files", "users", "events"):
        sql = subprocess.run(["pg_restore", "--data-only", "--table", table, "--file", "-", str(dump)],
                             check=True, capture_output=True, text=True).stdout
        rows, inside = 0, False
        for line in sql.splitlines():
            if line.startswith(f"COPY public.{table} "):
                inside = True
            elif line == "\\.":
                inside = False
            elif inside:
                rows += 1
        counts[table] = rows
    return counts


def projects_of(server):
    root = requests.get(f"{server.url}/simple/", headers={"Accept": JSON}, timeout=10).json()
    return {project["name"] for project in root["projects"]}


def test_backup_of_postgres_and_s3_while_uploading_restores_into_a_new_database_and_bucket(tmp_path, scaleout):
    env = scaleout.env
    source_db, source_bucket = scaleout.database(), scaleout.bucket()
    (tmp_path / "source").mkdir()
    source = Wharf(tmp_path / "source", env, args_for(tmp_path / "source", source_db, source_bucket))
    restored = None
    try:
        source.create_user("alice")
        token = source.token("alice")
        dists = tmp_path / "dists"
        dists.mkdir()
        for i in range(4):
            upload(source, token, make_wheel(dists, f"before-{i}", "1.0"), f"before-{i}", "1.0")
            upload(source, token, make_sdist(dists, f"before-{i}", "1.0"), f"before-{i}", "1.0")
        uploaded, stop, errors = [], threading.Event(), []

        def keep_uploading():
            i = 0
            try:
                while not stop.is_set() and i < 200:
                    name = f"during-{i}"
                    uploaded.append(upload(source, token, make_wheel(dists, name, "1.0"), name, "1.0"))
                    i += 1
            except Exception as error:  # reported by the main thread
                errors.append(error)

        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        time.sleep(0.5)
        backup = tmp_path / "backup"
        done_before = len(uploaded)
        result = source.cli("backup", "--output", str(backup), check=False)
        done_after = len(uploaded)
        time.sleep(0.5)
        stop.set()
        uploader.join()
        assert not errors, errors
        assert result.returncode == 0 and "backed up" in result.stdout, result.stdout + result.stderr
        assert done_after < len(uploaded), "uploads went on after the backup"
        assert not (tmp_path / "backup.partial").exists()

        # A custom-format dump instead of wharf.db, the blobs, no key (it is the setting).
        parts = {p.name for p in backup.iterdir()}
        assert "database.pgdump" in parts and "wharf.db" not in parts, parts
        assert (backup / "database.pgdump").read_bytes()[:5] == b"PGDMP"
        assert "secret.key" not in parts, parts
        assert "secret_key" in result.stdout + result.stderr, result.stdout + result.stderr
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest["database"] == "postgres" and manifest["server_key"] == "settings", manifest
        # What the dump holds, read by pg_restore: a snapshot taken in the middle, every upload
        # finished before it, none after it.
        dumped = counts_in_dump(backup / "database.pgdump")
        assert 8 + done_before <= dumped["files"] <= 8 + done_after, (dumped, done_before, done_after)
        assert dumped["users"] == 1 and dumped["projects"] == dumped["files"] - 4, dumped
        # A blob for every file of the dump (and a wheel's PEP 658 metadata beside it).
        blobs = [p for p in (backup / "files").rglob("*") if p.is_file()]
        assert len([p for p in blobs if not p.name.endswith(".metadata")]) >= dumped["files"], (len(blobs), dumped)

        verify = source.cli("backup", "--verify", str(backup), check=False)
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr

        # Restore into a new, empty database and a new, empty bucket.
        target_db, target_bucket = scaleout.database(), scaleout.bucket()
        # Without the secret_key the backed-up server had, refused with one line, nothing written.
        keyless = {k: v for k, v in env.items() if k != "WHARF_SECRET_KEY"}
        refused = cli(keyless, args_for(tmp_path / "keyless", target_db, target_bucket), "restore", str(backup))
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "secret_key" in refused.stderr, refused.stderr
        assert not scaleout.objects(target_bucket)
        assert psql(target_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").strip() == "0"
        (tmp_path / "target").mkdir()
        target_args = args_for(tmp_path / "target", target_db, target_bucket)
        restore = cli(env, target_args, "restore", str(backup))
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert len(scaleout.objects(target_bucket)) == len(blobs)

        # A target that is not empty is refused, with one line, and left as it was: the restored
        # database and bucket; an empty database with the restored bucket; the restored
        # database with an empty bucket.
        empty_db, empty_bucket = scaleout.database(), scaleout.bucket()
        for n, (database, bucket) in enumerate([(target_db, target_bucket), (empty_db, target_bucket),
                                                (target_db, empty_bucket)]):
            before = (data_of(database), scaleout.objects(bucket))
            tables_before = psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            again = cli(env, args_for(tmp_path / f"refused-{n}", database, bucket), "restore", str(backup))
            assert again.returncode != 0, (database, bucket, again.stdout, again.stderr)
            lines = again.stderr.strip().splitlines()
            assert len(lines) == 1 and "empty" in lines[0] and "--force" in lines[0], again.stderr
            assert (data_of(database), scaleout.objects(bucket)) == before, (database, bucket)
            assert psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables_before

        restored = Wharf(tmp_path / "target", env, target_args)
        audit = restored.cli("audit", "verify", check=False)
        assert audit.returncode == 0 and "intact" in audit.stdout, audit.stdout + audit.stderr

        # Every project and file of the snapshot, as the source has them, each downloaded.
        files, original = files_of(restored), files_of(source)
        assert len(files) == dumped["files"], (len(files), dumped)
        assert len(projects_of(restored)) == dumped["projects"]
        assert projects_of(restored) <= projects_of(source)
        assert {f"before-{i}" for i in range(4)} <= projects_of(restored)
        assert set(uploaded[:done_before]) <= set(files)
        for filename, (sha256, upload_time, url) in files.items():
            assert original[filename][:2] == (sha256, upload_time), filename
            body = requests.get(requests.compat.urljoin(f"{restored.url}/simple/x/", url), timeout=10).content
            assert hashlib.sha256(body).hexdigest() == sha256, filename

        # Every event of the snapshot, as the source has it.
        restored_events, source_events = events_of(restored), events_of(source)
        assert len(restored_events) == dumped["events"], (len(restored_events), dumped)
        assert restored_events and restored_events == source_events[:len(restored_events)]

        # The same secret_key opens the restored tokens: alice's token uploads to the restored index.
        upload(restored, token, make_wheel(dists, "after-restore", "1.0"), "after-restore", "1.0")
        assert "after-restore" in projects_of(restored)
        assert "after-restore" not in projects_of(source)
        assert not scaleout.objects(empty_bucket)

        # The manifest's counts, which `backup` and `restore` print, are the
        # dump's.
        assert manifest["counts"] == dumped, (manifest["counts"], dumped)
        c = dumped
        assert f"backed up {c['projects']} projects, {c['files']} files, {c['users']} users, {c['events']} events" \
            in result.stdout, result.stdout
        assert f"restored {c['projects']} projects, {c['files']} files" in restore.stdout, restore.stdout
    finally:
        source.stop()
        if restored:
            restored.stop()


def test_backup_without_pg_dump_stops_with_one_line_and_writes_nothing(tmp_path, scaleout):
    env = scaleout.env
    args = args_for(tmp_path, scaleout.database(), scaleout.bucket())
    server = Wharf(tmp_path, env, args)
    try:
        server.create_user("alice")
        upload(server, server.token("alice"), make_wheel(tmp_path, "lonely", "1.0"), "lonely", "1.0")
        backup = tmp_path / "backup"
        result = cli(env, args, "backup", "--output", str(backup), path="/nonexistent")
        assert result.returncode != 0, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "pg_dump" in lines[0], result.stderr
        assert not backup.exists() and not (tmp_path / "backup.partial").exists()
        # With pg_dump back on the PATH, the same command works.
        assert cli(env, args, "backup", "--output", str(backup)).returncode == 0
        assert (backup / "database.pgdump").exists()
    finally:
        server.stop()
