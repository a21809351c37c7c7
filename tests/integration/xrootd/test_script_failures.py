"""deploy/local/xrootd.sh fails clearly, and starts nothing, when it cannot run a server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.support.xrootd_fixtures import run_xrootd_script

pytestmark = pytest.mark.integration


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def private_stack_env(var_dir: Path, ports: list[int]) -> dict[str, str]:
    return {
        "DATASTORE_VAR": str(var_dir),
        "XROOTD_IDC_PORT": str(ports[0]),
        "XROOTD_UDC_PORT": str(ports[1]),
        "XROOTD_TAPE_PORT": str(ports[2]),
    }


def test_start_refuses_a_port_taken_by_another_process(tmp_path: Path) -> None:
    env = private_stack_env(tmp_path / "var", free_ports(3))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["XROOTD_IDC_PORT"])))
        squatter.listen()

        result = run_xrootd_script("start", extra_env=env)

    assert result.returncode != 0
    assert f"port {env['XROOTD_IDC_PORT']} for idc is taken" in result.stderr
    assert run_xrootd_script("status", extra_env=env).returncode != 0


@pytest.mark.skipif(os.getuid() != 0, reason="as non-root the servers run as the caller")
def test_start_explains_a_folder_the_server_user_cannot_reach(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    env = private_stack_env(hidden / "var", free_ports(3))

    result = run_xrootd_script("start", extra_env=env)

    assert result.returncode != 0
    assert "cannot traverse/write" in result.stderr
    assert "DATASTORE_VAR" in result.stderr
