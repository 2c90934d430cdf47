"""Two-factor authentication in a real Chromium: TOTP with codes from pyotp, recovery codes,
a security key and a passkey through the DevTools virtual authenticator, and axe on every
2FA page. WebAuthn needs a domain, so this server's base URL is http://localhost:PORT."""
import re
import time
import uuid

import pyotp
import pytest

from conftest import Wharf
from test_web import PASSWORD, assert_accessible


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-factor")
    server = Wharf(tmp, {}, ["--data-dir", str(tmp / "data")], host="localhost")
    yield server
    server.stop()


def new_user(server):
    username = f"tf{uuid.uuid4().hex[:8]}"
    server.create_user(username)
    return username


def sign_in(page, server, username):
    page.goto(f"{server.url}/account/login/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button >> text=Sign in")


def sign_out(page):
    page.click("button >> text=Sign out")
    page.wait_for_url(re.compile(r".*/$"))


def save_recovery_codes(page, server):
    page.goto(f"{server.url}/manage/account/recovery-codes/")
    assert_accessible(page, "recovery codes")
    page.click("button >> text=Generate recovery codes")
    codes = [c.strip() for c in page.locator("ol.recovery-codes code").all_inner_texts()]
    assert len(codes) == 8 and all(re.fullmatch(r"[0-9a-f]{16}", c) for c in codes)
    assert_accessible(page, "recovery codes shown")
    page.click("text=use one of these codes")
    assert_accessible(page, "confirm recovery codes")
    page.fill("#code", codes[0])
    page.click("button >> text=Confirm")
    page.wait_for_url(re.compile(r".*/manage/account/two-factor/$"))
    return codes


def test_totp_with_pyotp_and_recovery_codes(server, page):
    username = new_user(server)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    codes = save_recovery_codes(page, server)
    assert_accessible(page, "two-factor settings")

    page.goto(f"{server.url}/manage/account/totp-provision")
    assert_accessible(page, "TOTP set-up")
    assert page.locator("img.qr").get_attribute("alt")
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.fill("#code", "000000" if totp.now() != "000000" else "111111")
    page.click("button >> text=Turn on two-factor authentication")
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "TOTP set-up with an error")
    provisioned = totp.now()
    page.fill("#code", provisioned)
    page.click("button >> text=Turn on two-factor authentication")
    page.wait_for_url(re.compile(r".*/manage/account/two-factor/$"))
    assert "set up" in page.locator(".flash").inner_text()

    sign_out(page)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/account/two-factor/$"))
    assert_accessible(page, "two-factor step")
    # The set-up used this 30-second step's code: a code works once, so wait for the next.
    while totp.now() == provisioned:
        time.sleep(1)
    code = totp.now()
    page.fill("#code", code)
    page.click("button >> text=Verify")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))

    # The same code a second time is refused.
    sign_out(page)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/account/two-factor/$"))
    page.fill("#code", code)
    page.click("button >> text=Verify")
    assert "Invalid TOTP code." in page.locator(".error-summary").inner_text()
    assert_accessible(page, "two-factor step with an error")

    # A recovery code signs in instead.
    page.click("text=Use a recovery code")
    assert_accessible(page, "recovery code sign-in")
    page.fill("#code", codes[1])
    page.click("button >> text=Sign in")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))


def virtual_authenticator(page):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
    }})
    return cdp


def test_security_key_with_a_virtual_authenticator(server, page):
    virtual_authenticator(page)
    username = new_user(server)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    save_recovery_codes(page, server)
    page.goto(f"{server.url}/manage/account/webauthn-provision")
    assert_accessible(page, "add a key")
    page.fill("#key-label", "Virtual key")
    page.click("button >> text=Add security key")
    page.wait_for_url(re.compile(r".*/manage/account/two-factor/$"))
    assert "Virtual key" in page.locator("table").inner_text()
    assert_accessible(page, "two-factor settings with a key")

    sign_out(page)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/account/two-factor/$"))
    page.click("button >> text=Use a security key")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    page.goto(f"{server.url}/manage/account/two-factor/")
    assert "Never" not in page.locator("table").inner_text(), "the key's last use is shown"


def test_passkey_signs_in_alone(server, page):
    # A fresh authenticator (and user): an authenticator holds one credential per account.
    virtual_authenticator(page)
    username = new_user(server)
    sign_in(page, server, username)
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    save_recovery_codes(page, server)
    page.goto(f"{server.url}/manage/account/webauthn-provision")
    page.fill("#passkey-label", "Laptop")
    page.click("button >> text=Add passkey")
    page.wait_for_url(re.compile(r".*/manage/account/two-factor/$"))
    assert "Laptop" in page.locator("table").inner_text()

    sign_out(page)
    page.goto(f"{server.url}/account/login/")
    page.click("button >> text=Sign in with a passkey")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    assert username in page.locator("header").inner_text()
