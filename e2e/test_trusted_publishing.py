"""Trusted publishing with the real clients: a GitHub Actions issuer on loopback (discovery,
JWKS and the runner's ID-token request endpoint, signing with an RSA key made here) and a wharf
that trusts it. twine uploads with a token minted at /_/oidc/mint-token, and `uv publish
--trusted-publishing always` does the whole exchange itself, as on a GitHub runner."""
import base64
import http.server
import subprocess
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import VENV_BIN, Wharf, free_port, remember_secret
from distributions import make_wheel
from test_clients import run, twine_upload, unique

RUNNER_TOKEN = "runner-request-token-e2e"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class GitHubIssuer:
    """Token.actions.githubusercontent.com on loopback: its discovery document and keys, and
    the runner's endpoint that hands a job its ID token for an audience."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/gh"
        self.repository = "octo-org/octo-repo"
        self.served = []
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                issuer.served.append(url.path)
                if url.path == "/gh/.well-known/openid-configuration":
                    return self.reply({"issuer": issuer.issuer, "jwks_uri": f"{issuer.issuer}/jwks"})
                if url.path == "/gh/jwks":
                    return self.reply({"keys": [issuer.jwk()]})
                if url.path == "/runner/token":
                    if self.headers.get("authorization", "").lower() != f"bearer {RUNNER_TOKEN}":
                        return self.reply({"message": "bad runner token"}, 401)
                    audience = parse_qs(url.query).get("audience", [""])[0]
                    return self.reply({"value": issuer.id_token(audience)})
                self.reply({"message": "not found"}, 404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwk(self):
        numbers = self.key.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        return {"kty": "RSA", "kid": "e2e-1", "alg": "RS256", "use": "sig",
                "n": b64(numbers.n.to_bytes(size, "big")), "e": b64(numbers.e.to_bytes(3, "big"))}

    def id_token(self, audience, **overrides):
        now = int(time.time())
        workflow = f"{self.repository}/.github/workflows/release.yml@refs/tags/v1.0"
        claims = {
            "jti": str(uuid.uuid4()), "sub": f"repo:{self.repository}:ref:refs/tags/v1.0",
            "aud": audience, "ref": "refs/tags/v1.0", "sha": "0123456789abcdef0123456789abcdef01234567",
            "repository": self.repository, "repository_owner": self.repository.split("/")[0],
            "repository_owner_id": "65", "repository_id": "74", "run_id": "4242", "run_number": "7",
            "run_attempt": "1", "actor": "octocat", "actor_id": "12", "workflow": "Release",
            "event_name": "push", "ref_type": "tag", "job_workflow_ref": workflow,
            "workflow_ref": workflow, "runner_environment": "github-hosted",
            "iss": self.issuer, "nbf": now - 5, "iat": now, "exp": now + 300,
        }
        claims.update(overrides)
        header = {"alg": "RS256", "kid": "e2e-1", "typ": "JWT"}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{b64(signature)}"
        remember_secret(token)
        return token

    def stop(self):
        self.server.shutdown()


NGINX_TLS = """\
daemon off;
master_process off;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem;
    client_max_body_size 100m;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header Host $http_host;
    }}
  }}
}}
"""


def start_tls_front(tmp, upstream_port, port):
    """nginx with a certificate made here for 127.0.0.1, in front of wharf: uv talks to a
    trusted-publishing index over https only."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    # A CA (what uv is told to trust) and the server's certificate it signs: rustls refuses
    # a CA certificate used as the server's own.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=e2e CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "key.pem", "-out", "server.csr")
    (tmp / "ext.cnf").write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "cert.pem")
    (tmp / "nginx.conf").write_text(NGINX_TLS.format(tmp=tmp, port=port, upstream=upstream_port))
    process = subprocess.Popen(["/usr/sbin/nginx", "-c", str(tmp / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{port}/_health", verify=str(tmp / "ca.pem"), timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("nginx did not come up: " + (tmp / "nginx-error.log").read_text(errors="replace"))


@pytest.fixture(scope="module")
def trusting(tmp_path_factory):
    """A wharf on the embedded shape that trusts the loopback issuer, behind TLS (the database
    rules are covered on both backends by the integration tests)."""
    issuer = GitHubIssuer()
    tmp = tmp_path_factory.mktemp("trusted")
    tls_port = free_port()
    server = Wharf(tmp, {"WHARF_TRUSTED_PUBLISHING_GITHUB_ISSUER": issuer.issuer},
                   ["--data-dir", str(tmp / "data")], base_url=f"https://127.0.0.1:{tls_port}")
    front = start_tls_front(tmp, server.port, tls_port)
    server.tls_url = f"https://127.0.0.1:{tls_port}"
    server.cert = tmp / "ca.pem"
    server.create_user("alice")
    yield server, issuer
    front.terminate()
    front.wait(timeout=10)
    server.stop()
    issuer.stop()


def audience(server):
    response = requests.get(f"{server.url}/_/oidc/audience", timeout=10)
    assert response.status_code == 200
    return response.json()["audience"]


def test_a_pending_publisher_creates_the_project_and_twine_uploads_with_the_minted_token(trusting, tmp_path):
    server, issuer = trusting
    name = unique("tp-twine")
    added = server.cli("publisher", "add", name, "--github", issuer.repository, "--workflow", "release.yml",
                       "--pending", "--owner", "alice").stdout
    assert f"pending: creates {name} owned by alice" in added
    minted = requests.post(f"{server.url}/_/oidc/mint-token",
                           json={"token": issuer.id_token(audience(server))}, timeout=10)
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    remember_secret(token)
    assert token.startswith("pypi-") and minted.json()["expires"] > time.time() + 800
    twine_upload(server, token, make_wheel(tmp_path, name, "1.0"))
    release = requests.get(f"{server.url}/pypi/{name}/json", timeout=10).json()
    assert release["info"]["version"] == "1.0"
    # The project is alice's, and its history names the publisher and the CI run.
    assert "owner id 65" in server.cli("publisher", "list", name).stdout
    # The same ID token again is refused with PyPI's code.
    again = requests.post(f"{server.url}/_/oidc/mint-token", json={"token": "x.y.z"}, timeout=10)
    assert again.status_code == 422
    assert again.json()["errors"][0]["code"] == "invalid-payload"


def test_uv_publish_exchanges_the_runners_id_token_itself(trusting, tmp_path):
    server, issuer = trusting
    name = unique("tp-uv")
    server.cli("publisher", "add", name, "--github", issuer.repository, "--workflow", "release.yml",
               "--pending", "--owner", "alice")
    runner = {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{issuer.port}/runner/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": RUNNER_TOKEN,
        "UV_NO_CACHE": "1",
        "SSL_CERT_FILE": str(server.cert),
    }
    wheel = make_wheel(tmp_path, name, "2.0")
    published = run(VENV_BIN / "uv", "publish", "--trusted-publishing", "always",
                    "--publish-url", f"{server.tls_url}/legacy/", wheel, env=runner, check=False)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "/runner/token" in issuer.served, issuer.served
    release = requests.get(f"{server.url}/pypi/{name}/json", timeout=10).json()
    assert release["info"]["version"] == "2.0"
    # uv burns the token once it is done with it (POST /_/oidc/burn-token).
    assert "Failed to invalidate" not in published.stderr, published.stderr
    # A workflow the publisher does not name gets uv's report of wharf's refusal.
    other = unique("tp-uv-other")
    server.cli("publisher", "add", other, "--github", issuer.repository, "--workflow", "other.yml",
               "--pending", "--owner", "alice")
    refused = run(VENV_BIN / "uv", "publish", "--trusted-publishing", "always",
                  "--publish-url", f"{server.tls_url}/legacy/", make_wheel(tmp_path, other, "1.0"),
                  env=runner, check=False)
    assert refused.returncode != 0
    assert "does not exist" in refused.stderr, refused.stderr
