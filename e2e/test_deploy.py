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
