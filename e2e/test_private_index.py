"""A private index (`read_access = "users"`) with the real binary and the real clients: pip and
uv install a project and its dependency with a read-only token in the index URL, and fail with
401 without one; twine cannot upload with the read-only token and shows why; the API answers
401 with `WWW-Authenticate: Basic realm="wharf"` to anonymous and password readers, marks what
it serves to token readers `private`, and the web pages send anonymous browsers to sign in."""
import base64
import html
import os
import sys

import pytest
import requests

from conftest import VENV_BIN, Wharf
from distributions import make_sdist, make_wheel, normalized
from test_audit import Session
from test_clients import installed, run, twine_upload, unique
from test_web import PASSWORD

PYTHON = sys.executable
PRIVATE = "This index is private: authenticate with an API token"
NO_PASSWORDS = "Username/Password authentication is not accepted: use an API token"
READ_ONLY = "this token is read-only"


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("private")
    server = Wharf(tmp, {"WHARF_READ_ACCESS": "users"}, ["--data-dir", str(tmp / "data")])
    try:
        server.create_user("alice")
        server.app, server.dep = unique("private-app"), unique("private-dep")
        dist = tmp / "dist"
        dist.mkdir()
        twine_upload(server, server.token("alice"),
                     make_wheel(dist, server.dep, "1.0"),
                     make_wheel(dist, server.app, "1.0", requires_dist=[f"{server.dep}>=1.0"]),
                     make_sdist(dist, server.app, "1.0", requires_dist=[f"{server.dep}>=1.0"]))
        server.reader = server.token("alice", "--read-only", "--description", "CI downloads")
        yield server
    finally:
        server.stop()


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def with_token(url, token):
    scheme, rest = url.split("://", 1)
    return f"{scheme}://__token__:{token}@{rest}"


# Nothing may prompt or find a credential elsewhere: no keyring, no ~/.netrc, no config file.
NO_CREDENTIALS = {"PIP_NO_INPUT": "1", "PIP_KEYRING_PROVIDER": "disabled", "PIP_CONFIG_FILE": os.devnull,
                  "UV_KEYRING_PROVIDER": "disabled", "NETRC": os.devnull, "UV_NO_CONFIG": "1"}


def pip_install(index, target, name, *extra, check=True):
    return run(VENV_BIN / "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-input", *extra,
               "--keyring-provider", "disabled", "--index-url", index, "--target", target, name,
               env=NO_CREDENTIALS, check=check)


def uv_install(index, target, name, check=True, env=None):
    index_args = ["--index-url", index] if index else []
    return run(VENV_BIN / "uv", "pip", "install", "--no-cache", "--no-config", "--keyring-provider", "disabled",
               "--python", PYTHON, *index_args, "--target", target, name,
               env={**NO_CREDENTIALS, **(env or {})}, check=check)


def expected(*names):
    return sorted(normalized(n).replace("-", "_") for n in names)


def files_url(server, project):
    page = requests.get(f"{server.url}/simple/{normalized(project)}/", headers={
        "Accept": "application/vnd.pypi.simple.v1+json", **basic("__token__", server.reader)})
    assert page.status_code == 200, page.text
    url = page.json()["files"][0]["url"]
    return requests.compat.urljoin(page.url, url)


def test_pip_and_uv_install_with_a_read_only_token(private, tmp_path):
    index = with_token(f"{private.url}/simple/", private.reader)
    pip_install(index, tmp_path / "pip", private.app)
    assert installed(tmp_path / "pip") == expected(private.app, private.dep)
    uv_install(index, tmp_path / "uv", private.app)
    assert installed(tmp_path / "uv") == expected(private.app, private.dep)
    # uv's own way: a named index, its credential in UV_INDEX_<NAME>_USERNAME/_PASSWORD.
    uv_install(None, tmp_path / "uv-env", private.app, env={
        "UV_DEFAULT_INDEX": f"wharf={private.url}/simple/",
        "UV_INDEX_WHARF_USERNAME": "__token__", "UV_INDEX_WHARF_PASSWORD": private.reader})
    assert installed(tmp_path / "uv-env") == expected(private.app, private.dep)
    # The upload token reads too.
    pip_install(with_token(f"{private.url}/simple/", private.token("alice")), tmp_path / "pip2", private.app)
    assert installed(tmp_path / "pip2") == expected(private.app, private.dep)


def test_pip_and_uv_fail_with_401_without_a_token(private, tmp_path):
    index = f"{private.url}/simple/"
    pip = pip_install(index, tmp_path / "pip", private.app, "-vv", check=False)
    assert pip.returncode != 0
    assert f"401 Client Error: {PRIVATE}" in pip.stdout + pip.stderr, pip.stdout + pip.stderr
    assert not (tmp_path / "pip").exists() or installed(tmp_path / "pip") == []
    uv = uv_install(index, tmp_path / "uv", private.app, check=False)
    assert uv.returncode != 0
    assert "could not be queried due to a lack of valid authentication credentials (401 Unauthorized)" \
        in uv.stdout + uv.stderr, uv.stdout + uv.stderr
    assert not (tmp_path / "uv").exists() or installed(tmp_path / "uv") == []


def test_twine_cannot_upload_with_the_read_only_token(private, tmp_path):
    refused = twine_upload(private, private.reader, make_wheel(tmp_path, private.app, "2.0"), check=False)
    assert refused.returncode != 0
    output = " ".join((refused.stdout + refused.stderr).split())  # twine wraps to the terminal
    assert "403 Forbidden" in output and f"Invalid API Token: {READ_ONLY}" in output, output
    versions = requests.get(f"{private.url}/pypi/{private.app}/json",
                            headers=basic("__token__", private.reader)).json()["releases"]
    assert sorted(versions) == ["1.0"]


def test_the_api_answers_401_to_anonymous_and_password_readers(private):
    app = normalized(private.app)
    file = files_url(private, private.app)
    urls = [f"{private.url}/simple/", f"{private.url}/simple/{app}/", file, f"{file}.metadata",
            f"{private.url}/pypi/{app}/json", f"{private.url}/pypi/{app}/1.0/json"]
    for url in urls:
        anonymous = requests.get(url, allow_redirects=False)
        assert anonymous.status_code == 401, (url, anonymous.status_code)
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="wharf"', url
        assert anonymous.headers["Cache-Control"] == "no-store", url
        assert anonymous.reason.startswith(PRIVATE), (url, anonymous.reason)
        assert PRIVATE in html.unescape(anonymous.text), url
        as_json = requests.get(url, headers={"Accept": "application/json"}).json()
        assert as_json["code"].startswith(f"401 {PRIVATE}"), (url, as_json)

        password = requests.get(url, headers=basic("alice", PASSWORD), allow_redirects=False)
        assert password.status_code == 401, (url, password.status_code)
        assert password.headers["WWW-Authenticate"] == 'Basic realm="wharf"', url
        assert password.reason.startswith(NO_PASSWORDS), (url, password.reason)
        assert NO_PASSWORDS in html.unescape(password.text), url

        wrong = requests.get(url, headers=basic("__token__", "pypi-AgEIbm90LXJlYWw"), allow_redirects=False)
        assert wrong.status_code == 401, (url, wrong.status_code)
        assert wrong.headers["WWW-Authenticate"] == 'Basic realm="wharf"', url

        reader = requests.get(url, headers=basic("__token__", private.reader), allow_redirects=False)
        assert reader.status_code == 200, (url, reader.status_code, reader.text)
        assert "private" in reader.headers["Cache-Control"], (url, reader.headers["Cache-Control"])
        assert "public" not in reader.headers["Cache-Control"], (url, reader.headers["Cache-Control"])

    simple = requests.get(f"{private.url}/simple/{app}/", headers=basic("__token__", private.reader))
    assert private.app.split("-")[0] in simple.text and ".whl" in simple.text
    assert requests.get(f"{private.url}/_health").status_code == 200


def test_the_web_pages_send_anonymous_browsers_to_sign_in(private):
    app = normalized(private.app)
    for path in ["/", f"/search/?q={app}", f"/project/{app}/", f"/project/{app}/1.0/", "/user/alice/"]:
        anonymous = requests.get(private.url + path, allow_redirects=False)
        assert anonymous.status_code in (302, 303), (path, anonymous.status_code)
        assert anonymous.headers["Location"].startswith("/account/login/?next="), (path, anonymous.headers)
    for path in ["/account/login/", "/account/register/", "/help/", "/_health"]:
        assert requests.get(private.url + path, allow_redirects=False).status_code == 200, path

    # Signed in, the pages show and their download links work with the session alone.
    browser = Session(private)
    assert browser.sign_in("alice").status_code == 303
    project = browser.get(f"/project/{app}/")
    assert project.status_code == 200 and private.app in project.text
    download = browser.http.get(files_url(private, private.app), allow_redirects=False)
    assert download.status_code == 200 and download.content[:2] in (b"PK", b"\x1f\x8b")
