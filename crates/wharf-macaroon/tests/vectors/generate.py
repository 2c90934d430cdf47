"""Regenerates vectors.json with pymacaroons and pypitoken (the reference implementations).

Run with a venv that has both: python generate.py > vectors.json
"""
import json
import pymacaroons
import pypitoken

KEY = bytes(range(32))
vectors = []


def warehouse_style(location, identifier, caveats):
    m = pymacaroons.Macaroon(location=location, identifier=identifier, key=KEY,
                             version=pymacaroons.MACAROON_V2)
    for c in caveats:
        m.add_first_party_caveat(json.dumps(c, sort_keys=True, separators=(",", ":")))
    return m


for name, location, caveats in [
    ("user scope", "pypi.org", [[3, "5b6a2c1e-0000-4000-8000-000000000001"]]),
    ("project scope", "localhost", [[1, ["sampleproject"]], [2, ["0d3f7a52-1111-4000-8000-00000000abcd"]]]),
    ("no caveats", "pypi.org", []),
    ("legacy v1 user", "pypi.org", [{"version": 1, "permissions": "user"}]),
    ("expiry", "pypi.org", [[0, 2000000000, 1000000000]]),
]:
    m = warehouse_style(location, "7e1a9f0c-2222-4000-8000-0000000000ff", caveats)
    vectors.append({
        "name": name,
        "key_hex": KEY.hex(),
        "location": location,
        "identifier": m.identifier if isinstance(m.identifier, str) else m.identifier.decode(),
        "caveats": [c.caveat_id if isinstance(c.caveat_id, str) else c.caveat_id.decode() for c in m.caveats],
        "signature_hex": m.signature if isinstance(m.signature, str) else m.signature.decode(),
        "token": "pypi-" + m.serialize(),
    })

# pypitoken: attenuate a warehouse-style token offline.
base = warehouse_style("pypi.org", "7e1a9f0c-2222-4000-8000-0000000000ff",
                       [[3, "5b6a2c1e-0000-4000-8000-000000000001"]])
tok = pypitoken.Token.load("pypi-" + base.serialize())
tok.restrict(project_names=["sampleproject", "other"])
tok.restrict(not_before=1000000000, not_after=2000000000)
tok.restrict(legacy_project_names=["sampleproject"])
tok.restrict(legacy_not_before=1000000000, legacy_not_after=2000000000)
dumped = tok.dump()
m = pymacaroons.Macaroon.deserialize(dumped.split("-", 1)[1])
vectors.append({
    "name": "pypitoken restricted",
    "key_hex": KEY.hex(),
    "location": "pypi.org",
    "identifier": m.identifier if isinstance(m.identifier, str) else m.identifier.decode(),
    "caveats": [c.caveat_id if isinstance(c.caveat_id, str) else c.caveat_id.decode() for c in m.caveats],
    "signature_hex": m.signature if isinstance(m.signature, str) else m.signature.decode(),
    "token": dumped,
})
print(json.dumps(vectors, indent=2))
