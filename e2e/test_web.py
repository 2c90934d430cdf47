"""The web UI in a real Chromium: axe-core on every page (signed out and signed in), a
keyboard-only walk from registration to yanking a release, and mail through a real SMTP
server on loopback."""
import re
import time
import uuid

import requests
from axe_playwright_python.sync_playwright import Axe

from conftest import Wharf, free_port, remember_secret
from distributions import make_wheel
from test_clients import twine_upload

PASSWORD = "correct horse battery staple"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def outbox(wharf):
    """Decoded messages in the server's outbox, oldest first."""
    import email
    from email import policy
    messages = []
    for path in sorted((wharf.tmp / "data" / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(preferencelist=("plain",)).get_content()
        messages.append((message["To"], message["Subject"], body))
    return messages


def link_in(body, path):
    match = re.search(r"(https?://\S+" + re.escape(path) + r"\S*)", body)
    assert match, body
    return match.group(1)


def assert_accessible(page, label):
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}})
    violations = results.response["violations"]
    summary = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
    assert violations == [], f"{label}: {summary}"


def sign_in(page, wharf, username, password=PASSWORD):
    page.goto(f"{wharf.url}/account/login/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))
    for cookie in page.context.cookies():
        if "session" in cookie["name"]:
            remember_secret(cookie["value"])


def publish(wharf, tmp_path, username, name, version="1.0"):
    dist = tmp_path / f"dist-{name}-{version}"
    dist.mkdir()
    twine_upload(wharf, wharf.token(username), make_wheel(dist, name, version))


def test_every_page_passes_axe_signed_out_and_in(wharf, page, tmp_path):
    name = f"axe-{uuid.uuid4().hex[:8]}"
    publish(wharf, tmp_path, "alice", name)
    signed_out = [
        "/", f"/search/?q={name}", "/search/?q=nothing-matches-this", f"/project/{name}/",
        f"/project/{name}/1.0/", "/user/alice/", "/account/login/", "/account/register/",
        "/account/reset-password/", "/help/", "/no/such/page/", f"/manage/project/{name}/releases/",
    ]
    for path in signed_out:
        page.goto(wharf.url + path)
        assert page.locator("h1").count() == 1, path
        assert page.get_attribute("html", "lang") == "en"
        assert_accessible(page, path)
    # Forms with errors: the summary and the fields it links to.
    page.goto(f"{wharf.url}/account/register/")
    page.click("button[type=submit] >> text=Create account")
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "register with errors")
    page.goto(f"{wharf.url}/account/login/")
    page.fill("#username", "alice")
    page.fill("#password", "not the password")
    page.click("button[type=submit] >> text=Sign in")
    assert page.locator("[aria-invalid=true]").count() >= 1
    assert_accessible(page, "login with errors")

    # The 429 page: password resets for one account are limited.
    limited = f"limited{uuid.uuid4().hex[:8]}"
    wharf.create_user(limited)
    for attempt in range(6):
        page.goto(f"{wharf.url}/account/reset-password/")
        page.fill("#login", limited)
        page.click("button >> text=Send the link")
        if attempt == 0:
            assert "Check your e-mail" in page.locator("h1").inner_text()
            assert_accessible(page, "message page")
    assert "429" in page.locator(".error-code").inner_text()
    assert_accessible(page, "429 page")
    to, subject, body = [m for m in outbox(wharf) if limited in m[0]][-1]
    page.goto(link_in(body, "/account/reset-password/confirm/"))
    assert_accessible(page, "choose a new password")

    others = f"other-{uuid.uuid4().hex[:8]}"
    owner = f"owner{uuid.uuid4().hex[:8]}"
    wharf.create_user(owner)
    publish(wharf, tmp_path, owner, others)
    sign_in(page, wharf, "alice")
    page.goto(f"{wharf.url}/manage/project/{others}/releases/")
    assert "403" in page.locator(".error-code").inner_text()
    assert_accessible(page, "403 page")
    signed_in = [
        "/", "/manage/projects/", "/manage/account/", f"/manage/project/{name}/releases/",
        f"/manage/project/{name}/release/1.0/", f"/manage/project/{name}/collaboration/",
        f"/manage/project/{name}/settings/", f"/project/{name}/", "/no/such/page/",
        f"/manage/project/{name}/publishing/", "/manage/account/publishing/",
    ]
    for path in signed_in:
        page.goto(wharf.url + path)
        assert page.locator("h1").count() == 1, path
        assert_accessible(page, f"{path} (signed in)")
    # The trusted publisher forms with an error: the summary links to the field.
    page.goto(f"{wharf.url}/manage/project/{name}/publishing/")
    page.click("button >> text=Add the GitHub publisher")
    assert page.locator(".error-summary").is_visible()
    assert page.locator("[aria-invalid=true]").count() >= 1
    assert_accessible(page, "trusted publishers with an error")
    page.goto(f"{wharf.url}/manage/account/publishing/")
    page.click("button >> text=Add the pending GitLab publisher")
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "pending publishers with an error")
    page.goto(f"{wharf.url}/manage/project/{name}/settings/")
    page.fill("#confirm_project_name", "wrong")
    page.click("button >> text=Delete")
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "settings with errors")



def test_the_proxy_pages_pass_axe(tmp_path, page):
    """/admin/proxy/ with a block, and the read-only page of a project served from the upstream
    (a second wharf on loopback)."""
    (tmp_path / "upstream").mkdir()
    (tmp_path / "proxy").mkdir()
    upstream = Wharf(tmp_path / "upstream", {}, ["--data-dir", str(tmp_path / "upstream" / "data")])
    proxy = None
    try:
        upstream.create_user("alice")
        name = f"proxied-{uuid.uuid4().hex[:8]}"
        publish(upstream, tmp_path, "alice", name)
        proxy = Wharf(tmp_path / "proxy", {"WHARF_UPSTREAM_URL": f"{upstream.url}/simple/"},
                      ["--data-dir", str(tmp_path / "proxy" / "data")])
        proxy.cli("user", "create", "root", "--email", "root@example.org", "--admin", input=PASSWORD + "\n")
        assert requests.get(f"{proxy.url}/simple/{name}/", timeout=30).status_code == 200
        proxy.cli("proxy", "block", f"{name}-old", "--reason", "replaced by the new name")
        sign_in(page, proxy, "root")
        for path in ["/admin/proxy/", f"/project/{name}/", f"/project/{name}/1.0/"]:
            page.goto(proxy.url + path)
            assert page.locator("h1").count() == 1, path
            assert_accessible(page, f"{path} (proxy)")
        page.goto(f"{proxy.url}/project/{name}/")
        assert "served read-only from the upstream" in page.locator("main").inner_text()
    finally:
        if proxy:
            proxy.stop()
        upstream.stop()

def focused(page):
    return page.evaluate("() => { const e = document.activeElement; return e.id || e.textContent.trim(); }")


def tab_to(page, want, limit=60):
    """Presses Tab until the focused element's id or text is `want`."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if now == want:
            return
        seen.append(now)
    raise AssertionError(f"Tab never reached {want!r}; focus went through {seen}")


def test_keyboard_only_register_verify_sign_in_and_yank(wharf, page, tmp_path):
    username = f"kb{uuid.uuid4().hex[:8]}"
    page.goto(f"{wharf.url}/")
    tab_to(page, "Skip to main content")
    tab_to(page, "Register")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/account/register/$"))
    for field, value in [("username", username), ("email", f"{username}@example.org"),
                         ("password", PASSWORD), ("password_confirm", PASSWORD)]:
        tab_to(page, field)
        page.keyboard.type(value)
    tab_to(page, "Create account")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/manage/account/$"))

    to, subject, body = [m for m in outbox(wharf) if username in m[0]][-1]
    assert "Verify" in subject
    page.goto(link_in(body, "/account/verify-email/"))
    assert "is verified" in page.locator("main").inner_text()

    tab_to(page, f"Sign out ({username})")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/$"))
    tab_to(page, "Sign in")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/account/login/$"))
    tab_to(page, "username")
    page.keyboard.type(username)
    tab_to(page, "password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/manage/projects/$"))

    name = f"kb-{uuid.uuid4().hex[:8]}"
    publish(wharf, tmp_path, username, name)
    page.reload()
    tab_to(page, f"Manage {name}")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/releases/$"))
    tab_to(page, "1.0")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/release/1.0/$"))
    tab_to(page, "Yank 1.0")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/release/1.0/$"))
    assert "Yanked" in page.locator(".flash").inner_text()
    info = requests.get(f"{wharf.url}/pypi/{name}/1.0/json").json()["info"]
    assert info["yanked"] is True


def test_mail_is_delivered_to_a_real_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller

    class Collect:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
            return "250 OK"

    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    server = Wharf(tmp_path, {}, ["--data-dir", str(tmp_path / "data"), "--smtp-url", f"smtp://127.0.0.1:{port}"])
    try:
        session = requests.Session()
        page = session.get(f"{server.url}/account/register/").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = session.post(f"{server.url}/account/register/", data={
            "csrf_token": token, "username": "smtp-user", "email": "smtp-user@example.org",
            "password": PASSWORD, "password_confirm": PASSWORD,
        }, allow_redirects=False)
        assert response.status_code == 303, response.text
        deadline = time.time() + 10
        while not handler.messages and time.time() < deadline:
            time.sleep(0.1)
        assert handler.messages, "no message reached the SMTP server"
        recipients, content = handler.messages[0]
        assert recipients == ["smtp-user@example.org"]
        assert "Subject: [wharf] Verify your e-mail address" in content
        assert not (tmp_path / "data" / "outbox").exists() or not list((tmp_path / "data" / "outbox").glob("*.eml"))
    finally:
        server.stop()
        controller.stop()


def test_the_reauthentication_page_passes_axe(page, tmp_path):
    # A server that asks for the password again after one second, to reach the page.
    server = Wharf(tmp_path, {"WHARF_REAUTH_SECS": "1"}, ["--data-dir", str(tmp_path / "data")])
    try:
        server.create_user("alice")
        sign_in(page, server, "alice")
        time.sleep(1.5)
        page.goto(f"{server.url}/manage/account/")
        assert page.locator("h1").inner_text() == "Confirm your password"
        assert_accessible(page, "re-authentication")
        page.fill("#password", "not my password")
        page.click("button >> text=Confirm")
        assert page.locator(".error-summary").is_visible()
        assert_accessible(page, "re-authentication with an error")
        page.fill("#password", PASSWORD)
        page.click("button >> text=Confirm")
        page.wait_for_url(re.compile(r".*/manage/account/$"))
    finally:
        server.stop()
