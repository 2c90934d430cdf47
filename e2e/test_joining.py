"""Who may join and in-house builds with the real binary: registration by invitation only
(the CLI sends the invitation; register with and without it; the admin page passes axe), and
a C-extension wheel built by `python -m build` with a plain linux_x86_64 tag, refused as on
PyPI unless `allowed_platform_tags` lists it, then installed by pip and imported."""
import re
import subprocess
import sys
import textwrap
import uuid

import requests

from conftest import VENV_BIN, Wharf
from test_clients import twine_upload
from test_web import PASSWORD, assert_accessible, outbox, sign_in


def csrf(session, url):
    page = session.get(url)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_invite_only_registration_needs_the_invitation(tmp_path):
    wharf = Wharf(tmp_path, {"WHARF_REGISTRATION": "invite"}, ["--data-dir", str(tmp_path / "data")])
    try:
        wharf.cli("user", "create", "root", "--email", "root@example.org", "--admin",
                  input=PASSWORD + "\n")
        sent = wharf.cli("--base-url", wharf.url, "user", "invite", "bob@example.org")
        assert sent.stdout.startswith("sent an invitation to bob@example.org (valid until ")
        assert sent.stdout.count("\n") == 1 and sent.stderr == ""
        again = wharf.cli("user", "invite", "root@example.org", check=False)
        assert again.returncode == 1
        assert again.stderr == "error: an account with the address 'root@example.org' exists already\n"

        fields = {"username": "bob", "email": "bob@example.org", "password": PASSWORD,
                  "password_confirm": PASSWORD}
        session = requests.Session()
        token = csrf(session, f"{wharf.url}/account/login/")
        refused = session.post(f"{wharf.url}/account/register/", data={**fields, "csrf_token": token},
                               allow_redirects=False)
        assert refused.status_code == 403
        assert "by invitation only" in refused.text

        to, subject, body = [m for m in outbox(wharf) if "bob@example.org" in m[0]][-1]
        assert subject == "[wharf] You are invited to create an account"
        link = re.search(r"(http://\S+/account/register/\?invitation=\S+)", body).group(1)
        invitation = link.split("invitation=")[1]
        form = session.get(link)
        assert "You were invited to register with the address bob@example.org." in form.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        accepted = session.post(f"{wharf.url}/account/register/",
                                data={**fields, "csrf_token": token, "invitation": invitation},
                                allow_redirects=False)
        assert accepted.status_code == 303, accepted.text
        assert requests.get(link).status_code == 410  # a fresh visitor: the link is used up
    finally:
        wharf.stop()


def test_the_invitations_page_passes_axe(tmp_path, page):
    wharf = Wharf(tmp_path, {"WHARF_REGISTRATION": "invite"}, ["--data-dir", str(tmp_path / "data")])
    try:
        wharf.cli("user", "create", "root", "--email", "root@example.org", "--admin",
                  input=PASSWORD + "\n")
        wharf.cli("--base-url", wharf.url, "user", "invite", "bob@example.org")
        page.goto(f"{wharf.url}/account/register/")
        assert "by invitation only" in page.locator("main").inner_text()
        assert_accessible(page, "/account/register/ (invite)")
        sign_in(page, wharf, "root")
        page.goto(f"{wharf.url}/admin/invitations/")
        assert page.locator("h1").inner_text() == "Invitations to register"
        assert "pending" in page.locator("table").inner_text()
        assert_accessible(page, "/admin/invitations/")
    finally:
        wharf.stop()


SETUP = """
from setuptools import Extension, setup
setup(name="{name}", version="1.0", ext_modules=[Extension("{module}", ["{module}.c"])])
"""

C_SOURCE = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) {{ return PyLong_FromLong(42); }}
static PyMethodDef methods[] = {{{{"answer", answer, METH_NOARGS, ""}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&module); }}
"""


def build_c_extension(tmp_path, name, module):
    source = tmp_path / "src"
    source.mkdir()
    (source / "setup.py").write_text(SETUP.format(name=name, module=module))
    (source / f"{module}.c").write_text(C_SOURCE.format(module=module))
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n')
    subprocess.run([VENV_BIN / "python", "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", tmp_path / "dist", source], check=True, capture_output=True)
    wheels = list((tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].name.endswith("-linux_x86_64.whl"), wheels
    return wheels[0]


def test_a_c_extension_wheel_for_linux_x86_64_needs_allowed_platform_tags(tmp_path):
    name = f"inhouse-{uuid.uuid4().hex[:8]}"
    module = name.replace("-", "_")
    wheel = build_c_extension(tmp_path, name, module)
    (tmp_path / "plain").mkdir()
    plain = Wharf(tmp_path / "plain", {}, ["--data-dir", str(tmp_path / "plain" / "data")])
    try:
        plain.create_user("alice")
        refused = twine_upload(plain, plain.token("alice"), wheel, check=False)
        assert refused.returncode != 0
        assert "has an unsupported platform tag 'linux_x86_64'" in " ".join(refused.stdout.split())
    finally:
        plain.stop()
    (tmp_path / "inhouse").mkdir()
    inhouse = Wharf(tmp_path / "inhouse", {"WHARF_ALLOWED_PLATFORM_TAGS": "linux_x86_64"},
                    ["--data-dir", str(tmp_path / "inhouse" / "data")])
    try:
        inhouse.create_user("alice")
        twine_upload(inhouse, inhouse.token("alice"), wheel)
        target = tmp_path / "target"
        subprocess.run([VENV_BIN / "pip", "install", "--no-cache-dir", "--target", target,
                        "--index-url", f"{inhouse.url}/simple/", name], check=True, capture_output=True)
        imported = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.answer())"],
                                  env={"PYTHONPATH": str(target)}, capture_output=True, text=True)
        assert imported.stdout.strip() == "42", imported.stderr
    finally:
        inhouse.stop()
