"""Sign-in through the organization's identity provider, against a real, certified OpenID
Connect provider (node's `oidc-provider`, run on loopback from e2e/idp/) in Chromium: a first
sign-in creates the account, another links an existing one with its password, addresses
outside `email_domains` and forged callbacks are refused, `sso_only` leaves the password form
to administrators, and re-authentication goes back to the provider. axe checks every page of
the flow."""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SERVER_LOGS, Wharf, free_port, remember_secret, wait_for
from test_web import PASSWORD, assert_accessible, outbox

IDP_SOURCE = Path(__file__).parent / "idp"
# npm's packages are kept outside the clone, as the venv and the build are.
IDP_DIR = Path(os.environ.get("WHARF_IDP_DIR", Path.home() / ".cache/wharf/idp"))
CLIENT_SECRET = "e2e-client-secret-0123456789"
ACCOUNTS = {
    "jane": {"email": "jane@acme.test", "email_verified": True, "preferred_username": "jane.doe"},
    "bob": {"email": "bob@acme.test", "email_verified": True, "preferred_username": "bob"},
    "eve": {"email": "eve@elsewhere.test", "email_verified": True, "preferred_username": "eve"},
    "kim": {"email": "kim@acme.test", "email_verified": True, "preferred_username": "kim"},
}


def provider_modules():
    """node_modules for e2e/idp/package-lock.json, installed once per lock file."""
    lock = (IDP_SOURCE / "package-lock.json").read_bytes()
    want = hashlib.sha256(lock + (IDP_SOURCE / "package.json").read_bytes()).hexdigest()
    stamp = IDP_DIR / ".lock.sha256"
    if not (stamp.exists() and stamp.read_text() == want):
        IDP_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(IDP_SOURCE / name, IDP_DIR / name)
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True)
        stamp.write_text(want)
    # ES modules resolve their imports beside themselves: the script runs from there.
    shutil.copy(IDP_SOURCE / "provider.mjs", IDP_DIR / "provider.mjs")
    return IDP_DIR


class Site:
    """The provider, and a wharf that signs people in through it."""

    def __init__(self, tmp, idp, wharf):
        self.tmp, self.idp, self.wharf = tmp, idp, wharf

    def events(self, tag):
        with sqlite3.connect(self.tmp / "data" / "wharf.db") as db:
            rows = db.execute("SELECT additional FROM events WHERE tag = ? ORDER BY id", (tag,))
            return [json.loads(additional) for (additional,) in rows]


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """One provider and two wharfs registered with it: `open` (email_domains acme.test) and
    `closed` (`sso_only`, and re-authentication asked after one second)."""
    directory = provider_modules()
    tmp = tmp_path_factory.mktemp("sso")
    ports = {"open": free_port(), "closed": free_port()}
    idp_port = free_port()
    issuer = f"http://localhost:{idp_port}"
    log = open(tmp / "idp.log", "w")
    idp = subprocess.Popen(
        ["node", "provider.mjs"], cwd=directory, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "IDP_PORT": str(idp_port), "IDP_ACCOUNTS": json.dumps(ACCOUNTS),
             "IDP_CLIENT_ID": "wharf", "IDP_CLIENT_SECRET": CLIENT_SECRET,
             "IDP_REDIRECT_URIS": " ".join(f"http://127.0.0.1:{p}/account/sso/corp/callback"
                                           for p in ports.values())})
    remember_secret(CLIENT_SECRET)
    started = []
    try:
        wait_for(f"http://127.0.0.1:{idp_port}/.well-known/openid-configuration", idp)
        made = {}
        for name, extra in [("open", ""), ("closed", "sso_only = true\n")]:
            site_tmp = tmp / name
            site_tmp.mkdir()
            config = site_tmp / "wharf.toml"
            config.write_text(
                extra + "sso = [{ name = \"corp\", display_name = \"Acme SSO\", "
                f"issuer = \"{issuer}\", client_id = \"wharf\", client_secret = \"{CLIENT_SECRET}\", "
                "email_domains = [\"acme.test\"] }]\n")
            env = {"WHARF_REAUTH_SECS": "1"} if name == "closed" else {}
            server = Wharf(site_tmp, env, ["--config", str(config), "--data-dir", str(site_tmp / "data")],
                           port=ports[name])
            started.append(server)
            made[name] = Site(site_tmp, idp, server)
        yield made
    finally:
        for server in started:
            server.stop()
        idp.terminate()
        idp.wait(timeout=10)
        log.close()
        SERVER_LOGS.append(tmp / "idp.log")


def new_context(chromium):
    """A browser of its own (no session at wharf or at the provider)."""
    context = chromium.new_context()
    # The provider's development pages load a web font: nothing here reaches the internet.
    context.route(re.compile(r"^https://"), lambda route: route.abort())
    return context


@pytest.fixture
def browser_page(chromium):
    context = new_context(chromium)
    yield context.new_page()
    context.close()


def through_provider(page, login, consent=True):
    """Signs in at the provider's own pages (any password for its accounts)."""
    page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "whatever the provider asks")
    page.click("button >> text=Sign-in")
    if consent:
        page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
        page.click("button >> text=Continue")


def start(page, site):
    page.goto(f"{site.wharf.url}/account/login/")
    page.click("a >> text=Sign in with Acme SSO")


def test_a_first_sign_in_creates_the_account_and_the_next_one_signs_in(sites, chromium, browser_page):
    site, page = sites["open"], browser_page
    site.wharf.create_user("taken")
    page.goto(f"{site.wharf.url}/account/login/")
    assert_accessible(page, "sign-in with a provider")
    start(page, site)
    through_provider(page, "jane")
    page.wait_for_url(re.compile(r".*/account/sso/finish$"))
    assert page.locator("h1").inner_text() == "Finish signing in with Acme SSO"
    assert page.input_value("#username") == "jane.doe"
    assert "jane@acme.test" in page.locator("main").inner_text()
    assert_accessible(page, "first sign-in")
    page.fill("#username", "taken")
    page.click("button >> text=Create the account")
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "first sign-in with an error")
    page.fill("#username", "jane")
    page.click("button >> text=Create the account")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    page.goto(f"{site.wharf.url}/manage/account/")
    linked = page.locator("section[aria-labelledby=sso-title]").inner_text()
    assert "Acme SSO" in linked
    assert_accessible(page, "the account page with a linked provider")
    successes = site.events("account:login:success")
    assert successes[-1]["login_method"] == "sso:corp"

    # A new browser: the provider asks again, wharf signs the linked account in at once.
    context = new_context(chromium)
    again = context.new_page()
    try:
        start(again, site)
        through_provider(again, "jane")
        again.wait_for_url(re.compile(r".*/manage/projects/$"))
        again.goto(f"{site.wharf.url}/manage/account/")
        assert "jane" in again.locator("main").inner_text()
    finally:
        context.close()
    assert len(site.events("account:login:success")) == len(successes) + 1


def test_an_existing_account_is_linked_only_with_its_password(sites, browser_page):
    site, page = sites["open"], browser_page
    site.wharf.cli("user", "create", "bob", "--email", "bob@acme.test", input=f"{PASSWORD}\n")
    start(page, site)
    through_provider(page, "bob")
    page.wait_for_url(re.compile(r".*/account/sso/finish$"))
    assert "Or use your existing account" in page.locator("main").inner_text()
    page.fill("#password", "not bob's password")
    page.click("button >> text=Link bob")
    assert "The password is incorrect" in page.locator(".error-summary").inner_text()
    assert_accessible(page, "linking with a wrong password")
    def bobs_links():
        return [e for e in site.events("account:sso:linked") if e["email"] == "bob@acme.test"]
    assert bobs_links() == []
    page.fill("#password", PASSWORD)
    page.click("button >> text=Link bob")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    [linked] = bobs_links()
    assert linked["provider"] == "corp" and linked["subject"] == "bob"
    mails = [m for m in outbox(site.wharf) if m[0] == "bob@acme.test"]
    assert any("Acme SSO" in body for _, _, body in mails), mails


def test_an_address_outside_the_domains_and_a_forged_callback_are_refused(sites, chromium, browser_page):
    site, page = sites["open"], browser_page
    start(page, site)
    through_provider(page, "eve")
    page.wait_for_url(re.compile(r".*/account/login/.*"))
    assert "an address this index does not accept" in page.locator("main").inner_text()
    assert site.events("account:login:failure")[-1]["reason"] == "sso_email_domain"

    # A callback this browser did not start (a forged `state`) signs no one in (a browser
    # without the provider's session, which would otherwise answer at once).
    context = new_context(chromium)
    try:
        other = context.new_page()
        start(other, site)
        other.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
        other.goto(f"{site.wharf.url}/account/sso/corp/callback?code=forged-code&state=forged-state")
        other.wait_for_url(re.compile(r".*/account/login/.*"))
        assert "could not be checked" in other.locator("main").inner_text()
        assert site.events("account:login:failure")[-1]["reason"] == "sso_invalid"
        other.goto(f"{site.wharf.url}/manage/projects/")
        assert "/account/login/" in other.url
    finally:
        context.close()


def test_sso_only_and_reauthentication_through_the_provider(sites, browser_page):
    site, page = sites["closed"], browser_page
    page.goto(f"{site.wharf.url}/account/login/")
    assert "Administrators: with a password" in page.locator("main").inner_text()
    site.wharf.create_user("carol")
    page.fill("#username", "carol")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit] >> text=Sign in")
    assert "/manage/projects/" not in page.url
    assert page.locator(".error-summary, .flash-error, [role=alert]").first.is_visible()

    start(page, site)
    through_provider(page, "kim")
    page.wait_for_url(re.compile(r".*/account/sso/finish$"))
    page.click("button >> text=Create the account")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    time.sleep(1.5)
    page.goto(f"{site.wharf.url}/manage/account/")
    assert page.locator("a >> text=Confirm with Acme SSO").is_visible()
    assert_accessible(page, "re-authentication with a provider")
    page.click("a >> text=Confirm with Acme SSO")
    # The provider is asked for a new sign-in (prompt=login, max_age=0); consent is remembered.
    through_provider(page, "kim", consent=False)
    page.wait_for_url(re.compile(r".*/manage/account/$"))
    assert page.locator("h1").inner_text() != "Confirm your password"
    assert site.events("account:reauthenticate:failure") == []
