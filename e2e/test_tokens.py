"""API tokens with the real clients: created in the browser and used by twine, read and
restricted offline by the public pypitoken library, revoked by themselves and by a signed
leak report, and axe on every token page."""
import base64
import json
import re
import time
import uuid

import pypitoken
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import Wharf
from distributions import make_wheel
from test_clients import twine_upload, unique
from test_web import PASSWORD, assert_accessible, sign_in


def test_a_token_created_in_the_browser_uploads_with_twine(wharf, page, tmp_path):
    sign_in(page, wharf, "alice")
    page.goto(f"{wharf.url}/manage/account/tokens/")
    assert_accessible(page, "tokens")
    name = f"browser {uuid.uuid4().hex[:6]}"
    page.fill("#name", name)
    page.check("#scope-account-radio")
    page.select_option("#expires", "30")
    page.click("button >> text=Create token")
    token = page.locator("#token-value").input_value()
    assert token.startswith("pypi-")
    assert token in page.locator("pre.snippet").first.inner_text()
    assert_accessible(page, "new token")

    project = unique("e2e-token")
    dist = tmp_path / "dist"
    dist.mkdir()
    twine_upload(wharf, token, make_wheel(dist, project, "1.0"))

    page.goto(f"{wharf.url}/manage/account/tokens/")
    row = page.locator("tr", has_text=name)
    assert "Never" not in row.locator("td").nth(3).inner_text(), "last used is shown"
    assert token not in page.content(), "never shown again"
    row.locator("a").click()
    assert project in page.locator("table").inner_text()
    assert_accessible(page, "token usage trail")
    page.goto(f"{wharf.url}/manage/project/{project}/tokens/")
    assert name in page.locator("table").inner_text()
    assert_accessible(page, "project tokens")


def test_pypitoken_reads_and_restricts_our_tokens(wharf, tmp_path):
    project, other = unique("e2e-pt"), unique("e2e-pt-other")
    dist = tmp_path / "dist"
    dist.mkdir()
    twine_upload(wharf, wharf.token("alice"), make_wheel(dist, project, "1.0"))

    scoped = pypitoken.Token.load(wharf.token("alice", "--project", project))
    assert scoped.domain == "127.0.0.1"
    names = [r for r in scoped.restrictions if isinstance(r, pypitoken.ProjectNamesRestriction)]
    assert names and names[0].project_names == [project.lower()]

    account = pypitoken.Token.load(wharf.token("alice"))
    assert any(isinstance(r, pypitoken.UserIDRestriction) for r in account.restrictions)

    # Restricted offline to another project: refused here, accepted there.
    narrowed = pypitoken.Token.load(wharf.token("alice"))
    narrowed.restrict(project_names=[other])
    refused = twine_upload(wharf, narrowed.dump(), make_wheel(dist, project, "2.0"), check=False)
    assert refused.returncode != 0
    assert "project-scoped token is not valid for project" in refused.stdout + refused.stderr
    twine_upload(wharf, narrowed.dump(), make_wheel(dist, other, "1.0"))

    # Restricted offline to a time window that is over: "token is expired".
    expired = pypitoken.Token.load(wharf.token("alice"))
    now = int(time.time())
    expired.restrict(not_before=now - 100, not_after=now - 10)
    refused = twine_upload(wharf, expired.dump(), make_wheel(dist, project, "3.0"), check=False)
    assert refused.returncode != 0
    assert "token is expired" in refused.stdout + refused.stderr

    # The legacy JSON caveats still verify.
    legacy = pypitoken.Token.load(wharf.token("alice"))
    legacy.restrict(legacy_project_names=[project], legacy_not_before=now - 10, legacy_not_after=now + 600)
    twine_upload(wharf, legacy.dump(), make_wheel(dist, project, "4.0"))
    legacy_other = twine_upload(wharf, legacy.dump(), make_wheel(dist, other, "2.0"), check=False)
    assert legacy_other.returncode != 0


@pytest.fixture(scope="module")
def leak_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaks")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp / "keys.pem").write_bytes(pem)
    server = Wharf(tmp, {"WHARF_LEAK_REPORT_KEYS": str(tmp / "keys.pem")}, ["--data-dir", str(tmp / "data")])
    server.create_user("alice")
    server.key = key
    yield server
    server.stop()


def report(server, body, key):
    signature = base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    return requests.post(f"{server.url}/_/secrets/disclose-token", data=body, headers={
        "GITHUB-PUBLIC-KEY-IDENTIFIER": "test-key", "GITHUB-PUBLIC-KEY-SIGNATURE": signature,
        "Content-Type": "application/json",
    })


def test_tokens_are_revoked_by_themselves_and_by_signed_leak_reports(leak_server, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    project = unique("e2e-leak")

    token = leak_server.token("alice")
    assert requests.post(f"{leak_server.url}/_/tokens/revoke", headers={"Authorization": f"token {token}"}).status_code == 204
    refused = twine_upload(leak_server, token, make_wheel(dist, project, "1.0"), check=False)
    assert refused.returncode != 0

    token = leak_server.token("alice")
    body = json.dumps([{"token": token, "type": "pypi_api_token", "url": "https://example.com/leaked", "source": "content"}]).encode()
    assert requests.post(f"{leak_server.url}/_/secrets/disclose-token", data=body).status_code == 404
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert report(leak_server, body, other_key).status_code == 400
    twine_upload(leak_server, token, make_wheel(dist, project, "1.0"))
    assert report(leak_server, body, leak_server.key).status_code == 204
    refused = twine_upload(leak_server, token, make_wheel(dist, project, "2.0"), check=False)
    assert refused.returncode != 0
    mail = [p.read_text() for p in (leak_server.tmp / "data" / "outbox").glob("*.eml")]
    assert any("https://example.com/leaked" in m.replace("=\n", "") for m in mail)


def test_ten_megabytes_of_junk_as_the_token_is_refused_cleanly(wharf):
    junk = "x" * (10 * 1024 * 1024)
    auth = "Basic " + base64.b64encode(f"__token__:{junk}".encode()).decode()
    response = requests.post(f"{wharf.url}/legacy/", headers={"Authorization": auth},
                             data={":action": "file_upload"}, timeout=60)
    assert response.status_code == 431
    assert requests.get(f"{wharf.url}/_health").status_code == 200
