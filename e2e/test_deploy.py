"""The deployment files in deploy/ are valid for the tools that read them."""
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    unit = (ROOT / "deploy" / "wharf.service").read_text()
    assert "DynamicUser=yes" in unit and "StateDirectory=wharf" in unit
    assert "ProtectSystem=strict" in unit
    # The unit names the installed path; verify it against the binary under test.
    (tmp_path / "wharf.service").write_text(unit.replace("/usr/local/bin/wharf", str(Path(BIN).resolve())))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "wharf.service")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "wharf.service" not in result.stderr, result.stderr


def test_the_compose_file_trusts_only_its_load_balancer():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    wharfs = [s for name, s in services.items() if name.startswith("wharf-")]
    assert len(wharfs) == 2
    nginx_ip = services["nginx"]["networks"]["wharf"]["ipv4_address"]
    for service in wharfs:
        env = service["environment"]
        assert env["WHARF_TRUSTED_PROXIES"] == nginx_ip
        assert env["WHARF_DATABASE_URL"].startswith("postgres://")
        assert env["WHARF_STORAGE_URL"].startswith("s3://")
        assert "WHARF_SECRET_KEY" in env, "every process needs the same server key"
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    for service in ("wharf-1", "wharf-2"):
        assert f"server {service}:8000;" in nginx


def test_the_dockerfile_runs_as_a_user_with_data_in_a_volume():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2, "multi-stage"
    assert "USER wharf" in dockerfile and "VOLUME /data" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/_health" in dockerfile
