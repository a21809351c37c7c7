"""Metadata and session operations python-icat calls."""

from __future__ import annotations

import json
import urllib.request

from .conftest import login


def test_version_entities_and_entity_info(seeded):
    client = login(seeded.url, "simple", "root", "pw")
    assert client.apiversion == "6.2.0"
    names = client.getEntityNames()
    assert len(names) == 53 and "Dataset" in names and "Parameter" not in names
    info = client.getEntityInfo("Dataset")
    assert list(info.constraints[0].fieldNames) == ["investigation", "name"]
    fields = {f.name: f for f in info.fields}
    assert fields["datafiles"].relType == "MANY" and fields["datafiles"].type == "Datafile"
    assert fields["investigation"].relType == "ONE" and fields["investigation"].notNullable
    assert fields["id"].relType == "ATTRIBUTE"
    assert client.getEntityInfo("Parameter").fields  # the abstract parent is described too
    with urllib.request.urlopen(f"{seeded.url}/icat/version") as resp:
        assert json.loads(resp.read()) == {"version": "6.2.0"}


def test_authenticators_and_session_calls(seeded):
    client = login(seeded.url, "simple", "root", "pw")
    auths = {a.mnemonic: [(k.name, k.hide) for k in a.keys] for a in client.getAuthenticatorInfo()}
    assert auths["simple"] == auths["db"] == [("username", False), ("password", True)]
    assert 119 < client.getRemainingMinutes() <= 120
    client.refresh()
    assert client.getRemainingMinutes() > 119.9
    assert "lifetimeMinutes 120" in client.getProperties()
