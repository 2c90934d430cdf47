"""A soak of one `wharf serve` on the embedded shape: reads at full speed, an upload a second
(each a token use), a password sign-in a second and a TOTP sign-in every 30 s step, for
SECONDS. Reports RSS every 10 s (flat: the last minute within 10% of the second), the errors
(expected 0), p99 per path, and the audit events against the operations done (equal).

Usage: python bench/soak.py WHARF_BIN SECONDS
"""
import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyotp
import requests

sys.path.insert(0, str(Path(__file__).parent))
from load import wheel  # noqa: E402

PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Browser:
    """Cookies and each form with its page's CSRF token."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()

    def post(self, path, fields, form_page=None):
        page = self.http.get(self.url + (form_page or path), timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return self.http.post(self.url + path, data={"csrf_token": token, **fields},
                              allow_redirects=False, timeout=30)


class Figures:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = {}
        self.errors = []
        self.done = {"upload": 0, "sign-in": 0, "totp sign-in": 0}

    def timed(self, label, call, ok):
        started = time.perf_counter()
        try:
            response = call()
            status = response.status_code
        except requests.RequestException as error:
            status = type(error).__name__
        took = time.perf_counter() - started
        with self.lock:
            self.latencies.setdefault(label, []).append(took)
            if status not in ok:
                self.errors.append((label, status))
        return status


def main(binary, seconds):
    tmp = Path(tempfile.mkdtemp(prefix="wharf-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [binary, "--data-dir", str(tmp / "data")]
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen([*args, "serve", "--bind", f"127.0.0.1:{port}"], stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(300):
        try:
            if requests.get(f"{url}/_health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    for user in ("plain", "secure"):
        subprocess.run([*args, "user", "create", user, "--email", f"{user}@example.org"],
                       input=f"{PASSWORD}\n", text=True, check=True, capture_output=True)
    token = subprocess.run([*args, "token", "create", "plain"], text=True, check=True,
                           capture_output=True).stdout.strip()

    # TOTP for the secure user, through the pages (recovery codes first, as the site asks).
    browser = Browser(url)
    assert browser.post("/account/login/", {"username": "secure", "password": PASSWORD}).status_code == 303
    codes = re.findall(r"<li><code>([0-9a-f]{16})</code></li>", browser.post(
        "/manage/account/recovery-codes/generate", {}, "/manage/account/recovery-codes/").text)
    # The site asks for one code back (proof they were saved) before a second factor is added.
    assert browser.post("/manage/account/recovery-codes/burn", {"code": codes[0]}).status_code == 303
    page = browser.http.get(url + "/manage/account/totp-provision").text
    secret = re.search(r'class="secret"[^>]*>([^<]+)<', page).group(1).replace(" ", "")
    totp = pyotp.TOTP(secret)
    setup_code = totp.now()
    assert browser.http.post(url + "/manage/account/totp-provision", allow_redirects=False, data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1), "code": setup_code,
    }).status_code == 303

    project = "soak-project"
    figures = Figures()
    stop = threading.Event()

    def upload(version):
        filename, data = wheel(project.replace("-", "_"), version)
        fields = {
            ":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
            "name": project, "version": version, "filetype": "bdist_wheel", "pyversion": "py3",
            # The form says what the wheel's METADATA says, or the upload is refused.
            "summary": "Soak project", "requires_python": ">=3.8",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        }
        return requests.post(f"{url}/legacy/", data=fields, auth=("__token__", token), timeout=30,
                             files={"content": (filename, data, "application/octet-stream")})

    def uploads():
        count = 0
        while not stop.is_set():
            count += 1
            if figures.timed("POST /legacy/", lambda: upload(f"1.{count}"), {200}) == 200:
                figures.done["upload"] += 1
            stop.wait(1)

    def reads():
        http = requests.Session()
        paths = [f"/simple/{project}/", f"/pypi/{project}/json", "/simple/", f"/project/{project}/"]
        count = 0
        while not stop.is_set():
            path = paths[count % len(paths)]
            count += 1
            figures.timed(f"GET {path}", lambda: http.get(url + path, timeout=30), {200})

    def sign_ins():
        while not stop.is_set():
            def sign_in():
                return Browser(url).post("/account/login/", {"username": "plain", "password": PASSWORD})
            if figures.timed("sign-in", sign_in, {303}) == 303:
                figures.done["sign-in"] += 1
            stop.wait(1)

    def totp_sign_ins():
        used = {setup_code}
        while not stop.is_set():
            code = totp.now()
            if code in used:
                stop.wait(1)
                continue
            used.add(code)

            def sign_in():
                browser = Browser(url)
                browser.post("/account/login/", {"username": "secure", "password": PASSWORD})
                return browser.post("/account/two-factor/totp", {"code": code}, "/account/two-factor/")
            if figures.timed("TOTP sign-in", sign_in, {303}) == 303:
                figures.done["totp sign-in"] += 1

    # One upload before the load starts, so that a refused form stops the soak with its reason.
    first = upload("1.0")
    assert first.status_code == 200, f"the first upload was refused: {first.status_code} {first.text}"
    figures.done["upload"] += 1
    threads = [threading.Thread(target=work, daemon=True)
               for work in (uploads, reads, reads, sign_ins, totp_sign_ins)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    samples = []
    while time.monotonic() - started < seconds:
        time.sleep(10)
        samples.append((round(time.monotonic() - started), rss_mib(server.pid)))
        print(f"{samples[-1][0]:>5} s  RSS {samples[-1][1]:.1f} MiB", flush=True)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    server.terminate()
    server.wait(timeout=60)

    print("\np99 per path (ms), requests:")
    for label, values in sorted(figures.latencies.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        print(f"  {label:<32} p99 {p99:8.2f}  n={len(values)}")
    print(f"errors: {len(figures.errors)} {figures.errors[:10]}")
    if len(samples) >= 8:
        second = samples[1][1]
        last = max(rss for t, rss in samples if t > samples[-1][0] - 60)
        print(f"RSS: second sample {second:.1f} MiB, last minute's highest {last:.1f} MiB "
              f"({last / second:.2f}x; flat within 10%: {'yes' if last <= second * 1.1 else 'NO'})")
    with sqlite3.connect(tmp / "data" / "wharf.db") as db:
        events = dict(db.execute("SELECT tag, COUNT(*) FROM events GROUP BY tag").fetchall())
    sign_ins = figures.done["sign-in"] + figures.done["totp sign-in"] + 1  # + the TOTP set-up's
    for what, tag, expected in [
        ("uploads", "file:add", figures.done["upload"]),
        ("sign-ins", "account:login:success", sign_ins),
    ]:
        recorded = events.get(tag, 0)
        print(f"events {tag}: {recorded} for {expected} {what} ({'equal' if recorded == expected else 'DIFFERENT'})")
    print(f"(server log and data in {tmp})")
    return 1 if figures.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
