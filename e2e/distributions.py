"""Builds real wheels and sdists for the tests, the way build backends lay them out.

No build backend is needed: a wheel is a zip with a .dist-info directory, an sdist a tar.gz with
PKG-INFO, and both are what pip and uv install.
"""
import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path


def _metadata(name, version, requires_dist=(), requires_python=None, summary="A test package"):
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires_dist]
    return "\n".join(lines) + "\n\n" + f"# {name}\n\nThe {name} package.\n"


def normalized(name):
    import re
    return re.sub(r"[-_.]+", "-", name).lower()


def module_name(name):
    return normalized(name).replace("-", "_")


def make_wheel(directory, name, version, requires_dist=(), requires_python=None, tag="py3-none-any", files=None):
    """Writes {module}-{version}-{tag}.whl into directory and returns its path."""
    module = module_name(name)
    dist_info = f"{module}-{version}.dist-info"
    members = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": _metadata(name, version, requires_dist, requires_python).encode(),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: wharf-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    members.update(files or {})
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = Path(directory) / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def make_sdist(directory, name, version, requires_dist=(), requires_python=None):
    """Writes the PEP 625 sdist {module}-{version}.tar.gz, installable by pip and uv."""
    module = module_name(name)
    top = f"{module}-{version}"
    pyproject = (
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\"_backend\"]\n"
    )
    members = {
        f"{top}/PKG-INFO": _metadata(name, version, requires_dist, requires_python).encode(),
        f"{top}/pyproject.toml": pyproject.encode(),
        f"{top}/{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{top}/_backend/backend.py": _BACKEND.format(name=name, version=version, module=module,
                                                       requires=list(requires_dist)).encode(),
    }
    path = Path(directory) / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# A self-contained PEP 517 backend, so installing the sdist needs nothing from an index.
_BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION, MODULE, REQUIRES = {name!r}, {version!r}, {module!r}, {requires!r}


def _metadata():
    lines = ["Metadata-Version: 2.1", "Name: " + NAME, "Version: " + VERSION]
    lines += ["Requires-Dist: " + r for r in REQUIRES]
    return "\\n".join(lines) + "\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = os.path.join(metadata_directory, MODULE + "-" + VERSION + ".dist-info")
    os.makedirs(dist_info)
    with open(os.path.join(dist_info, "METADATA"), "w") as f:
        f.write(_metadata())
    return os.path.basename(dist_info)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist_info = MODULE + "-" + VERSION + ".dist-info"
    members = {{
        MODULE + "/__init__.py": open(os.path.join(MODULE, "__init__.py"), "rb").read(),
        dist_info + "/METADATA": _metadata().encode(),
        dist_info + "/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(path + ",sha256=" + digest + "," + str(len(data)))
    record.append(dist_info + "/RECORD,,")
    members[dist_info + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = MODULE + "-" + VERSION + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return filename
'''
