"""The real clients against the real server: twine and uv publish upload, pip and uv install."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import requests

from conftest import VENV_BIN
from distributions import make_sdist, make_wheel, normalized

PYTHON = sys.executable


def run(*command, env=None, check=True):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def twine_upload(wharf, token, *files, check=True, extra=()):
    return run(VENV_BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar",
               "--repository-url", f"{wharf.url}/legacy/", "-u", "__token__", "-p", token, *extra, *files,
               check=check)


def installed(target):
    return sorted(p.name.split("-")[0] for p in Path(target).glob("*.dist-info"))


def test_twine_upload_then_pip_and_uv_install_with_a_dependency(wharf, tmp_path):
    token = wharf.token("alice")
    app, dep = unique("e2e-app"), unique("e2e-dep")
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [
        make_wheel(dist, dep, "1.0"),
        make_wheel(dist, app, "1.0", requires_dist=[f"{dep}>=1.0"], requires_python=">=3.8"),
        make_sdist(dist, app, "1.0", requires_dist=[f"{dep}>=1.0"]),
    ]
    twine_upload(wharf, token, *files)
    index = f"{wharf.url}/simple/"
    run(VENV_BIN / "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--index-url", index,
        "--target", tmp_path / "pip", app)
    assert installed(tmp_path / "pip") == sorted([app.replace("-", "_"), dep.replace("-", "_")])
    run(VENV_BIN / "uv", "pip", "install", "--no-cache", "--python", PYTHON, "--index-url", index,
        "--target", tmp_path / "uv", app)
    assert installed(tmp_path / "uv") == sorted([app.replace("-", "_"), dep.replace("-", "_")])


def test_sdists_install_with_pip_and_uv(wharf, tmp_path):
    token = wharf.token("alice")
    name = unique("e2e-sdist")
    sdist = make_sdist(tmp_path, name, "2.0")
    twine_upload(wharf, token, sdist)
    index = f"{wharf.url}/simple/"
    run(VENV_BIN / "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-binary", ":all:",
        "--index-url", index, "--target", tmp_path / "pip", name)
    assert installed(tmp_path / "pip") == [name.replace("-", "_")]
    run(VENV_BIN / "uv", "pip", "install", "--no-cache", "--python", PYTHON, "--no-binary", name,
        "--index-url", index, "--target", tmp_path / "uv", name)
    assert installed(tmp_path / "uv") == [name.replace("-", "_")]


def test_uv_publish_with_a_project_token(wharf, tmp_path):
    token = wharf.token("alice")
    name = unique("e2e-uvpub")
    twine_upload(wharf, token, make_wheel(tmp_path, name, "1.0"))
    scoped = wharf.token("alice", "--project", name, "--description", f"uv {name}")
    later = make_wheel(tmp_path, name, "1.1")
    run(VENV_BIN / "uv", "publish", "--no-cache", "--publish-url", f"{wharf.url}/legacy/", "--token", scoped, later)
    versions = requests.get(f"{wharf.url}/simple/{normalized(name)}/",
                            headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()["versions"]
    assert versions == ["1.0", "1.1"]

    # The same token may not upload to another project; uv shows the server's reason.
    other = unique("e2e-other")
    twine_upload(wharf, token, make_wheel(tmp_path, other, "1.0"))
    refused = run(VENV_BIN / "uv", "publish", "--no-cache", "--publish-url", f"{wharf.url}/legacy/",
                  "--token", scoped, make_wheel(tmp_path, other, "2.0"), check=False)
    assert refused.returncode != 0
    assert "project-scoped token is not valid for project" in refused.stderr, refused.stderr


def test_pip_download_reads_the_metadata_file(wharf, tmp_path):
    token = wharf.token("alice")
    name = unique("e2e-meta")
    twine_upload(wharf, token, make_wheel(tmp_path, name, "1.0"))
    result = run(VENV_BIN / "pip", "download", "--no-cache-dir", "--disable-pip-version-check", "-v",
                 "--index-url", f"{wharf.url}/simple/", "-d", tmp_path / "dl", name)
    assert ".whl.metadata" in result.stdout, result.stdout
    assert len(list((tmp_path / "dl").glob("*.whl"))) == 1


def test_twine_shows_the_servers_reasons(wharf, tmp_path):
    token = wharf.token("alice")
    name = unique("e2e-errors")
    wheel = make_wheel(tmp_path, name, "1.0")
    twine_upload(wharf, token, wheel)
    # An identical re-upload is accepted (twine 7 refuses --skip-existing for non-PyPI URLs).
    twine_upload(wharf, token, wheel)
    # A different file under the same name is refused with PyPI's message.
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    different = make_wheel(other_dir, name, "1.0", files={"extra.py": b"x = 1\n"})
    refused = twine_upload(wharf, token, different, check=False)
    assert refused.returncode != 0
    assert "File already exists" in refused.stdout + refused.stderr
    # A wrong token and a user token of someone without a role.
    wrong = twine_upload(wharf, "pypi-AgEIbm90LXJlYWw", make_wheel(tmp_path, name, "1.1"), check=False)
    assert "Invalid or non-existent authentication information" in wrong.stdout + wrong.stderr
    # Someone with a valid token but no role on the project.
    mallory = f"mallory{uuid.uuid4().hex[:6]}"
    wharf.create_user(mallory)
    denied = twine_upload(wharf, wharf.token(mallory), make_wheel(tmp_path, name, "1.2"), check=False)
    assert f"The user '{mallory}' isn't allowed to upload to project" in denied.stdout + denied.stderr


def test_the_scaleout_shape_stores_files_in_s3(wharf, tmp_path):
    if wharf.shape != "scaleout":
        return
    import boto3
    token = wharf.token("alice")
    name = unique("e2e-s3")
    twine_upload(wharf, token, make_wheel(tmp_path, name, "1.0"))
    s3 = boto3.client("s3", endpoint_url=wharf.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="wharf-e2e").get("Contents", [])]
    module = normalized(name).replace("-", "_")
    assert any(k.startswith("packages/") and k.endswith(f"{module}-1.0-py3-none-any.whl") for k in keys), keys
    assert any(k.endswith(".whl.metadata") for k in keys), keys
    assert not (wharf.tmp / "data" / "files").exists(), "nothing on local disk"
