"""wharf-packaging against the reference, Python's `packaging`, over thousands of generated
and real inputs: versions and their order, names, wheel and sdist filenames, core metadata,
and real distributions accepted by the archive checks.

wharf's answers come from the `packaging_oracle` example (JSON lines on stdin and stdout);
set WHARF_PACKAGING_ORACLE to a built one, or it is built with cargo. Every disagreement
fails, except the deliberate differences listed in DELIBERATE below.
"""
import functools
import json
import os
import random
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import parse_email
from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
COUNT = int(os.environ.get("WHARF_DIFFERENTIAL_COUNT", "3000"))

# Deliberate differences, each checked where it applies:
# - wheel tags: wharf allows only [A-Za-z0-9_] in a tag (they end up in paths and pages);
#   packaging allows any identifier-like text.
# - requirements with non-ASCII (PEP 508's grammar is ASCII) are refused by wharf before
#   parsing; packaging accepts them in marker strings.
# - core metadata: wharf drops values that are empty or "UNKNOWN", as warehouse does for the
#   upload form, so that file and form compare alike; a single-use field given twice is left
#   unparsed by packaging, where wharf (like pip) reads the first; trailing whitespace of a
#   value is dropped (the email parser keeps it; every later use strips it).
TAG_OK = re.compile(r"[A-Za-z0-9_]+\Z")


@functools.cache
def oracle_path():
    if os.environ.get("WHARF_PACKAGING_ORACLE"):
        return os.environ["WHARF_PACKAGING_ORACLE"]
    subprocess.run(
        ["cargo", "build", "-q", "-p", "wharf-packaging", "--example", "packaging_oracle"],
        cwd=ROOT, check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "examples" / "packaging_oracle")


def wharf(requests):
    """wharf's answers to [op, *args] requests, in order."""
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    out = subprocess.run([oracle_path()], input=lines, capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(answers) == len(requests)
    return answers


def reference(fn, *args):
    try:
        return {"ok": fn(*args)}
    except (InvalidVersion, InvalidWheelFilename, InvalidSdistFilename, InvalidName, ValueError) as e:
        return {"err": str(e)}


def random_version(rng):
    parts = []
    if rng.random() < 0.1:
        parts.append(rng.choice(["v", "V", " ", "\t"]))
    if rng.random() < 0.15:
        parts.append(f"{rng.randint(0, 3)}!")
    release = [str(rng.choice([0, 0, 1, 2, 9, 10, 99, 2024])) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.1:
        release[0] = "0" + release[0]
    parts.append(".".join(release))
    if rng.random() < 0.4:
        sep = rng.choice(["", ".", "-", "_"])
        pre = rng.choice(["a", "b", "rc", "c", "alpha", "beta", "pre", "preview", "A", "RC"])
        parts.append(sep + pre + rng.choice(["", "0", "1", "12"]))
    if rng.random() < 0.3:
        parts.append(rng.choice([".post", "-post", "post", ".rev", ".r", "-", "_post"]) + rng.choice(["", "1", "3"]))
    if rng.random() < 0.3:
        parts.append(rng.choice([".dev", "dev", "-dev", "_DEV"]) + rng.choice(["", "0", "4"]))
    if rng.random() < 0.2:
        parts.append("+" + rng.choice(["local", "ubuntu-1", "abc.7", "A_b.001", "x", ""]))
    if rng.random() < 0.05:
        parts.append(rng.choice([" ", "\n", "*", ".*"]))
    version = "".join(parts)
    if rng.random() < 0.15:
        i = rng.randint(0, len(version))
        version = version[:i] + rng.choice("-._+!*abcz0 é") + version[i:]
    return version


def random_name(rng):
    alphabet = "aAbZz09-_.-_. é"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))


def test_versions_agree_with_packaging():
    rng = random.Random(440)
    inputs = [random_version(rng) for _ in range(COUNT)]
    inputs += ["1.0", "1.0.0", "1!0", "1.0-1", "1.0_a1", "1.0.post", "1.0-dev", "01.02", "1.0+",
               "1.0+a..b", "1.0.*", " 1.0 ", "1.0rc", "١.٠", "1.0\n", "v1", "1.0.0.0.0.0.0.0"]
    mine = wharf([["version", v] for v in inputs])
    disagreements = []
    valid = []
    for raw, ours in zip(inputs, mine):
        theirs = reference(Version, raw)
        if ("ok" in theirs) != ("ok" in ours):
            disagreements.append((raw, theirs, ours))
            continue
        if "ok" in theirs:
            v = theirs["ok"]
            expected = {"str": str(v), "canonical": canonicalize_version(v), "is_prerelease": v.is_prerelease,
                        "is_local": v.local is not None}
            if expected != ours["ok"]:
                disagreements.append((raw, expected, ours["ok"]))
            valid.append(raw)
    assert not disagreements, disagreements[:20]
    assert len(valid) > COUNT // 3

    pairs = [(rng.choice(valid), rng.choice(valid)) for _ in range(COUNT)]
    mine = wharf([["compare", a, b] for a, b in pairs])
    wrong = []
    for (a, b), ours in zip(pairs, mine):
        va, vb = Version(a), Version(b)
        expected = (va > vb) - (va < vb)
        if ours != {"ok": expected}:
            wrong.append((a, b, expected, ours))
    assert not wrong, wrong[:20]


def test_names_agree_with_packaging():
    rng = random.Random(503)
    inputs = [random_name(rng) for _ in range(COUNT)]
    inputs += ["-a", "a-", "_A_", "..", "Σ.a", "AΣ_", "İstanbul", "ß", "Foo__Bar-.baz"]
    mine = wharf([["name", n] for n in inputs])
    wrong = []
    for raw, ours in zip(inputs, mine):
        try:
            canonicalize_name(raw, validate=True)
            valid = True
        except InvalidName:
            valid = False
        expected = {"normalized": canonicalize_name(raw), "valid": valid}
        if ours["ok"] != expected:
            wrong.append((raw, expected, ours["ok"]))
    assert not wrong, wrong[:20]


def random_tag(rng):
    return rng.choice(["py3", "py2.py3", "cp312", "none", "abi3", "any", "manylinux_2_17_x86_64.manylinux2014_x86_64",
                       "win_amd64", "Py3", "", "py3..py2", "cp3-", "py 3", "macosx_11_0_arm64", "pp310"])


def test_wheel_filenames_agree_with_packaging():
    rng = random.Random(427)
    inputs = []
    for _ in range(COUNT):
        name = rng.choice(["foo", "Foo_Bar", "foo.bar", "foo__bar", "", "foo-bar", "ü", "a1", "x_"])
        parts = [name, rng.choice([random_version(rng), "1.0"])]
        if rng.random() < 0.3:
            parts.append(rng.choice(["1", "01abc", "b1", "0", "2_x", ""]))
        parts += [random_tag(rng), random_tag(rng), random_tag(rng)]
        inputs.append("-".join(parts) + rng.choice([".whl", ".whl", ".zip", ".WHL"]))
    inputs += [p.name for p in (SEEDS / "zip").glob("*.whl")]
    mine = wharf([["wheel", f] for f in inputs])
    wrong = []
    for raw, ours in zip(inputs, mine):
        theirs = reference(parse_wheel_filename, raw)
        if "ok" in theirs and "ok" in ours:
            name, version, build, tags = theirs["ok"]
            expected = {"name": name, "version": str(version),
                        "build": list(build) if build else None,
                        "tags": sorted({str(t) for t in tags})}
            got = dict(ours["ok"])
            if got["build"]:
                got["build"] = [int(got["build"][0]), got["build"][1]]
            if expected != got:
                wrong.append((raw, expected, got))
        elif "ok" in theirs:
            tag_part = raw[:-4].split("-")[-3:]
            deliberate = "tag" in ours["err"] and not all(
                TAG_OK.match(t) for part in tag_part for t in part.split("."))
            if not deliberate:
                wrong.append((raw, theirs, ours))
        elif "ok" in ours:
            wrong.append((raw, theirs, ours))
    assert not wrong, wrong[:20]


def test_sdist_filenames_agree_with_packaging():
    rng = random.Random(625)
    inputs = []
    for _ in range(COUNT):
        name = rng.choice(["foo", "Foo_Bar", "foo.bar", "", "foo-bar", "-", "a--", "Ü"])
        inputs.append(name + rng.choice(["-", "-", ""]) + random_version(rng)
                      + rng.choice([".tar.gz", ".zip", ".tgz", ".tar.bz2", ".TAR.GZ"]))
    inputs += [p.name for p in (SEEDS / "tar_gz").glob("*.tar.gz")]
    mine = wharf([["sdist", f] for f in inputs])
    wrong = []
    for raw, ours in zip(inputs, mine):
        theirs = reference(parse_sdist_filename, raw)
        if "ok" in theirs:
            expected = {"name": theirs["ok"][0], "version": str(theirs["ok"][1])}
            if ours.get("ok") != expected:
                wrong.append((raw, expected, ours))
        elif "ok" in ours:
            wrong.append((raw, theirs, ours))
    assert not wrong, wrong[:20]


FIELDS = ["Metadata-Version", "Name", "Version", "Requires-Dist", "Requires-Python", "Provides-Extra", "Summary"]


def random_metadata(rng):
    lines = []
    for _ in range(rng.randint(1, 10)):
        field = rng.choice(FIELDS)
        if rng.random() < 0.2:
            field = field.lower() if rng.random() < 0.5 else field.upper()
        value = rng.choice(["2.1", "2.4", "demo", "Demo.Pkg", random_version(rng), "requests>=2",
                            "tomli; extra == 'toml'", ">=3.8", "toml", "A summary", "  padded  "])
        sep = rng.choice([": ", ":", ":  "])
        lines.append(f"{field}{sep}{value}")
    text = "\n".join(lines) + "\n\nThe description\nName: not a header\n"
    return text


def test_metadata_agrees_with_packaging():
    rng = random.Random(566)
    inputs = [random_metadata(rng) for _ in range(COUNT // 3)]
    inputs += [p.read_text(encoding="utf-8") for p in (SEEDS / "metadata").iterdir()]
    mine = wharf([["metadata", t] for t in inputs])
    wrong = []
    for text, ours in zip(inputs, mine):
        raw, unparsed = parse_email(text)
        repeated = {k.lower(): v for k, v in unparsed.items()}

        def one(key):
            # A single-use field given more than once is not parsed by packaging; wharf, like
            # pip (email.message's first header), takes the first usable one (see top).
            values = repeated.get(key.replace("_", "-")) or [raw.get(key)]
            return next((v.rstrip() for v in values if v not in ("", "UNKNOWN", None)), None)

        expected = {
            "metadata_version": one("metadata_version"),
            "name": one("name"),
            "version": one("version"),
            "requires_dist": [r.rstrip() for r in raw.get("requires_dist", []) if r not in ("", "UNKNOWN")],
            "requires_python": one("requires_python"),
            "provides_extra": [e.rstrip() for e in raw.get("provides_extra", []) if e not in ("", "UNKNOWN")],
        }
        if ours["ok"] != expected:
            wrong.append((text, expected, ours["ok"]))
    for text, expected, got in wrong[:3]:
        print(repr(text), expected, got, sep="\n")
    assert not wrong, wrong[:5]


def real_distributions():
    return sorted((SEEDS / "zip").glob("*.whl")) + sorted((SEEDS / "tar_gz").glob("*.tar.gz"))


@pytest.mark.parametrize("path", real_distributions(), ids=lambda p: p.name)
def test_real_distributions_are_accepted_and_read_alike(path):
    if path.name.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        raw_name, raw_version = path.name.split("-")[:2]
        [answer] = wharf([["inspect_wheel", str(path), path.name, raw_name, raw_version]])
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
    else:
        [answer] = wharf([["inspect_sdist", str(path), path.name]])
        with tarfile.open(path) as tf:
            assert all(m.isfile() or m.isdir() for m in tf.getmembers())
    assert answer == {"ok": True}


def test_zips_python_writes_with_duplicates_are_refused(tmp_path):
    # zipfile writes a second entry of the same name (with a warning); readers then disagree on
    # which one is the file.
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        with pytest.warns(UserWarning):
            zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 9.0\n")
    [answer] = wharf([["inspect_wheel", str(wheel), wheel.name, "demo", "1.0"]])
    assert "duplicate filenames" in answer["err"]
