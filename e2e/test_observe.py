"""What the operator sees, with the real binary: one access-log line per request (text and
JSON, no colour escapes in a file, no query values), the request id sent back, `/_ready`, and
SIGTERM: no new connections, the request in flight finishes (or is cut after
`shutdown_grace`), each step logged."""
import hashlib
import json
import re
import socket
import subprocess
import time
import uuid

import requests

from conftest import BIN, Wharf
from test_operations import upload
from distributions import make_wheel


def log_of(wharf):
    wharf.log.flush()
    return (wharf.tmp / "server.log").read_text()


def access_lines(text):
    return [line for line in text.splitlines() if "wharf::access" in line or '"target":"wharf::access"' in line]


def test_the_access_log_has_a_line_per_request_and_no_secrets(tmp_path):
    wharf = Wharf(tmp_path, {}, ["--data-dir", str(tmp_path / "data")])
    try:
        wharf.create_user("ops")
        token = wharf.token("ops")
        dist = tmp_path / "dist"
        dist.mkdir()
        upload(wharf, token, make_wheel(dist, "logged-pkg", "1.0"), "logged-pkg", "1.0")
        answer = requests.get(f"{wharf.url}/simple/logged-pkg/", headers={"User-Agent": "pip/24.0 probe"})
        request_id = answer.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{20}", request_id), request_id
        assert requests.get(f"{wharf.url}/simple/").headers["X-Request-Id"] != request_id
        secret = uuid.uuid4().hex
        requests.get(f"{wharf.url}/account/reset-password/confirm/?token={secret}")
        # A request id from a client that is not a trusted proxy is not taken over.
        forged = requests.get(f"{wharf.url}/_health", headers={"X-Request-Id": "forged-id"})
        assert forged.headers["X-Request-Id"] != "forged-id"
        time.sleep(0.2)
        text = log_of(wharf)
        assert "\x1b[" not in text, "no colour escapes in a log file"
        lines = access_lines(text)
        line = next(l for l in lines if request_id in l).replace('"', "")
        for field in ["method=GET", "path=/simple/logged-pkg/", "route=/simple/{project}/",
                      "status=200", "client_ip=127.0.0.1", "user_agent=pip/24.0 probe", "duration_ms="]:
            assert field in line, (field, line)
        assert re.search(r"bytes=\d+", line), line
        upload_line = next(l for l in lines if "path=\"/legacy/\"" in l)
        assert "method=\"POST\"" in upload_line and "status=200" in upload_line, upload_line
        assert "path=\"/account/reset-password/confirm/?token=\"" in text, "the key stays, not the value"
        for value in [secret, token, "correct horse battery staple"]:
            assert value not in text, f"a secret reached the log: {value[:12]}…"
    finally:
        wharf.stop()


def test_json_logs_are_one_object_per_line(tmp_path):
    wharf = Wharf(tmp_path, {"WHARF_LOG_FORMAT": "json"}, ["--data-dir", str(tmp_path / "data")])
    try:
        request_id = requests.get(f"{wharf.url}/simple/").headers["X-Request-Id"]
        time.sleep(0.2)
        records = [json.loads(line) for line in log_of(wharf).splitlines() if line.strip()]
        access = [r for r in records if r.get("target") == "wharf::access"]
        mine = next(r for r in access if r.get("request_id") == request_id)
        assert mine["method"] == "GET" and mine["path"] == "/simple/" and mine["status"] == 200, mine
        assert mine["level"] == "INFO"
        assert any("ready" in r.get("message", "") for r in records), records[:5]
    finally:
        wharf.stop()
    failed = subprocess.run([BIN, "--data-dir", str(tmp_path / "d2"), "serve"], capture_output=True, text=True,
                            env={"WHARF_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"}, timeout=30)
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and 'log_format must be "text" or "json", not "xml"' in failed.stderr


def slow_upload(wharf, token, tmp_path):
    """Starts an upload and sends all but the last bytes of its body; returns the socket and
    the rest to send."""
    dist = tmp_path / "slow"
    dist.mkdir()
    path = make_wheel(dist, "slow-pkg", "1.0")
    body_request = requests.Request(
        "POST", f"{wharf.url}/legacy/", auth=("__token__", token),
        data={":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
              "name": "slow-pkg", "version": "1.0", "filetype": "bdist_wheel", "pyversion": "py3",
              "summary": "A test package", "sha256_digest": hashlib.sha256(path.read_bytes()).hexdigest()},
        files={"content": (path.name, path.read_bytes())}).prepare()
    head = f"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1:{wharf.port}\r\n"
    for name, value in body_request.headers.items():
        head += f"{name}: {value}\r\n"
    head += "Connection: close\r\n\r\n"
    raw = head.encode() + body_request.body
    sock = socket.create_connection(("127.0.0.1", wharf.port))
    sock.sendall(raw[:-100])
    return sock, raw[-100:]


def test_sigterm_stops_accepting_and_lets_the_request_in_flight_finish(tmp_path):
    wharf = Wharf(tmp_path, {}, ["--data-dir", str(tmp_path / "data")])
    wharf.create_user("ops")
    token = wharf.token("ops")
    assert requests.get(f"{wharf.url}/_ready").text == "ready"
    sock, rest = slow_upload(wharf, token, tmp_path)
    time.sleep(0.3)
    wharf.process.terminate()
    time.sleep(0.5)
    assert wharf.process.poll() is None, "it waits for the upload"
    try:
        requests.get(f"{wharf.url}/_health", timeout=2)
        raise AssertionError("a new connection was accepted while stopping")
    except requests.ConnectionError:
        pass
    sock.sendall(rest)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert wharf.process.wait(timeout=10) == 0
    wharf.log.close()
    text = (tmp_path / "server.log").read_text()
    steps = ["stopping: no new connections; finishing the requests in flight", "every request finished", "stopped"]
    positions = [text.find(step) for step in steps]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), text[-2000:]
    assert "in_flight=1" in text


def test_the_shutdown_grace_cuts_a_request_that_does_not_finish(tmp_path):
    wharf = Wharf(tmp_path, {"WHARF_SHUTDOWN_GRACE": "1s"}, ["--data-dir", str(tmp_path / "data")])
    wharf.create_user("ops")
    token = wharf.token("ops")
    sock, _ = slow_upload(wharf, token, tmp_path)
    time.sleep(0.3)
    started = time.monotonic()
    wharf.process.terminate()
    assert wharf.process.wait(timeout=10) == 0
    assert 0.9 < time.monotonic() - started < 5
    sock.close()
    wharf.log.close()
    text = (tmp_path / "server.log").read_text()
    assert "the shutdown grace is over: the requests still in flight are cut off" in text, text[-2000:]
    assert "every request finished" not in text


def test_the_shutdown_delay_keeps_serving_while_ready_says_503(tmp_path):
    wharf = Wharf(tmp_path, {"WHARF_SHUTDOWN_DELAY": "2s"}, ["--data-dir", str(tmp_path / "data")])
    assert requests.get(f"{wharf.url}/_ready").status_code == 200
    started = time.monotonic()
    wharf.process.terminate()
    time.sleep(0.5)
    # Still accepting, so a load balancer sees the 503 and takes it out of rotation.
    assert requests.get(f"{wharf.url}/_ready", timeout=2).status_code == 503
    assert requests.get(f"{wharf.url}/simple/", timeout=2).status_code == 200
    assert wharf.process.wait(timeout=10) == 0
    assert 1.9 < time.monotonic() - started < 8
    wharf.log.close()
    text = (tmp_path / "server.log").read_text()
    assert "draining: /_ready answers 503; still accepting for the shutdown delay" in text, text[-2000:]
