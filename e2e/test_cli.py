"""The command-line contract other tooling depends on."""
import os
import subprocess

import requests
from pypitoken import Token

from conftest import BIN, free_port, wait_for


def wharf(*args, input=None, env=None):
    return subprocess.run([BIN, *args], input=input, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_user_and_token_commands_print_only_their_result(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    created = wharf(*data, "user", "create", "bob", "--email", "bob@example.org", input="long enough password\n")
    assert (created.returncode, created.stdout, created.stderr) == (0, "", "")
    token = wharf(*data, "token", "create", "bob", "--expires-in", "30d", "--description", "ci")
    assert token.returncode == 0 and token.stderr == ""
    lines = token.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pypi-")
    # The public pypitoken library reads it, with the expiry it was given.
    loaded = Token.load(lines[0])
    assert loaded.domain == "127.0.0.1", "the host of the default base URL"
    assert any(type(r).__name__ == "DateRestriction" for r in loaded.restrictions)


def test_bad_input_fails_with_one_line(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    wharf(*data, "user", "create", "bob", "--email", "bob@example.org", input="long enough password\n")
    typo = tmp_path / "typo.toml"
    typo.write_text("requre_2fa = true\n")
    cases = [
        (["--config", str(typo), "migrate"], None, "unknown setting 'requre_2fa'"),
        (["user", "create", "bob", "--email", "b2@example.org"], "long enough password\n", "already taken"),
        (["user", "create", "carol", "--email", "not-an-email"], "long enough password\n", "invalid e-mail"),
        (["user", "create", "carol", "--email", "c@example.org"], "short\n", "at least 8 characters"),
        (["user", "create", "carol", "--email", "c@example.org"], "", "no password"),
        (["token", "create", "nobody"], None, "no user named 'nobody'"),
        (["token", "create", "bob", "--expires-in", "forever"], None, "invalid --expires-in"),
        (["token", "create", "bob", "--project", "missing"], None, "no project named 'missing'"),
        (["--database-url", "mysql://x/y", "migrate"], None, "unsupported database URL"),
    ]
    for args, stdin, message in cases:
        result = wharf(*data, *args, input=stdin)
        assert result.returncode != 0, args
        assert result.stdout == "", args
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)


def test_settings_come_from_flags_env_and_config_file(tmp_path):
    port = free_port()
    config = tmp_path / "wharf.toml"
    config.write_text(f'bind = "127.0.0.1:{port}"\ndata_dir = "{tmp_path / "from-config"}"\n')
    # The environment wins over the config file for the data directory.
    env = {"WHARF_DATA_DIR": str(tmp_path / "from-env")}
    process = subprocess.Popen([BIN, "--config", str(config), "serve"], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/_health", process)
        assert (tmp_path / "from-env" / "wharf.db").exists()
        assert not (tmp_path / "from-config").exists()
        assert requests.get(f"http://127.0.0.1:{port}/simple/").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_gc_lists_then_removes_an_old_orphan_blob(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    assert wharf(*data, "migrate").returncode == 0
    orphan = tmp_path / "data" / "files" / "ab" / "cd" / ("e" * 60) / "orphan-1.0.tar.gz"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by an upload that never committed")
    two_hours_ago = orphan.stat().st_mtime - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    key = f"ab/cd/{'e' * 60}/orphan-1.0.tar.gz"
    dry = wharf(*data, "gc", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (0, f"would remove unreferenced blob {key}\n", "")
    assert orphan.exists()
    done = wharf(*data, "gc")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"removed unreferenced blob {key}\n", "")
    assert not orphan.exists()
    again = wharf(*data, "gc")
    assert (again.returncode, again.stdout) == (0, "")


def test_version_names_the_commit():
    result = wharf("--version")
    assert result.returncode == 0 and result.stdout.startswith("wharf 0."), result.stdout
    commit = result.stdout.strip().rsplit("(", 1)[-1].rstrip(")")
    if os.environ.get("WHARF_COMMIT"):
        assert commit == os.environ["WHARF_COMMIT"][:len(commit)]
        return
    # Built from this checkout: the commit is one of this repository's.
    known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                           capture_output=True, text=True, cwd=os.path.dirname(__file__))
    assert len(commit) == 12 and known.returncode == 0, (result.stdout, known.stderr)
