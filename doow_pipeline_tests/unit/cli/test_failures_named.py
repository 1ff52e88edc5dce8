"""Every failure named: bad input gets one clear error naming the problem and the fix, never a traceback
(the CLI is invoked in-process with catch_exceptions=False, so any escaping exception fails the test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from doow_pipeline.cli.app import app
from doow_pipeline.config import load_config
from doow_pipeline.core.problems import ConfigError
from doow_pipeline.core.scope import parse_scope

GUID = "00000000-0000-0000-0000-0000000000a1"
SUB = "/subscriptions/00000000-0000-0000-0000-0000000000b2"
DAY = "2026-11-10"


def document(**connection) -> dict:
    return {
        "connections": [
            {
                "name": "prod",
                "tenant_id": GUID,
                "client_id": GUID,
                "client_secret_env": "DOOW_SECRET_PROD",
                "scope": SUB,
                **connection,
            }
        ],
        "settings": {"start_date": "2026-09-01"},
    }


def write(tmp_path: Path, content: bytes | dict, env: bytes | None = b"DOOW_SECRET_PROD='s3cr3t-value'\n") -> Path:
    config = tmp_path / "connections.yaml"
    config.write_bytes(content if isinstance(content, bytes) else yaml.safe_dump(content).encode())
    if env is not None:
        (tmp_path / ".env").write_bytes(env)
        os.chmod(tmp_path / ".env", 0o600)
    return config


def run(config: Path, *args: str, input: str | None = None):
    result = CliRunner().invoke(
        app,
        list(args),
        env={"DOOW_CONNECTIONS": str(config), "DOOW_SECRET_PROD": None},
        input=input,
        catch_exceptions=False,
    )
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    return result.exit_code, " ".join(text.split())


SYNC = ("sync", "--from", DAY, "--to", DAY)


@pytest.mark.parametrize("command", [SYNC, ("status",), ("doctor", "prod")])
def test_a_non_utf8_connections_yaml_is_named(tmp_path, command):
    config = write(tmp_path, yaml.safe_dump(document()).encode() + b"# caf\xe9\n")
    code, text = run(config, *command)
    assert code == 2 and str(config) in text and "is not UTF-8 text" in text and "save it as UTF-8" in text


@pytest.mark.parametrize("command", [SYNC, ("status",), ("doctor", "prod")])
def test_a_non_utf8_env_is_named(tmp_path, command):
    config = write(tmp_path, document(), env=b"DOOW_SECRET_PROD='caf\xe9'\n")
    code, text = run(config, *command)
    assert code == 2 and str(tmp_path / ".env") in text and "is not UTF-8 text" in text, text


def test_connections_yaml_being_a_directory_is_named(tmp_path):
    config = tmp_path / "connections.yaml"
    config.mkdir()
    code, text = run(config, *SYNC)
    assert code == 2 and "is not a file" in text


def test_an_empty_connections_yaml_is_a_clear_error_and_creates_nothing(tmp_path):
    config = write(tmp_path, b"")
    code, text = run(config, *SYNC)
    assert code == 2 and "is empty; add a connection with `doow-azure connect`" in text
    assert not (tmp_path / "data").exists()


def test_a_malformed_clock_override_is_named(tmp_path):
    config = write(tmp_path, document())
    code, text = run(config, "--frozen-clock", "next tuesday", *SYNC)
    assert code == 2 and "is not an ISO 8601 time" in text
    bad = document()
    bad["settings"]["frozen_clock"] = "2026-13-45T99:00:00Z"
    code, text = run(write(tmp_path, bad), *SYNC)
    assert code == 2 and "settings.frozen_clock" in text


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("name", "prod\n", "connections[0]"),
        ("tenant_id", GUID + "\n", "is not a GUID"),
        ("client_id", GUID + "\n", "is not a GUID"),
    ],
)
def test_a_trailing_newline_in_a_name_or_guid_is_refused_at_load(tmp_path, field, value, words):
    config = write(tmp_path, document(**{field: value}))
    with pytest.raises(ConfigError) as raised:
        load_config(config, check_secrets=False)
    assert words in str(raised.value) and field in str(raised.value)
    code, text = run(config, *SYNC)
    assert code == 2 and field in text


def test_connect_with_a_name_ending_in_a_newline_blames_the_name(tmp_path):
    code, text = run(
        tmp_path / "connections.yaml",
        "connect",
        "prod\n",
        "--tenant-id",
        GUID,
        "--client-id",
        GUID,
        "--scope",
        SUB,
        "--client-secret-stdin",
        input="some-secret",
    )
    assert code == 2 and "name" in text and "lower-case letters" in text
    assert "secret" not in text.split("name", 1)[0]


@pytest.mark.parametrize(
    "scope",
    [
        f"{SUB}/resourceGroups/..",
        f"{SUB}/resourceGroups/.",
        f"{SUB}//resourceGroups/rg",
        f"{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/..",
    ],
)
def test_dot_dotdot_and_empty_scope_segments_are_rejected(tmp_path, scope):
    with pytest.raises(ValueError, match="empty, '.' or '..' segment"):
        parse_scope(scope)
    code, text = run(write(tmp_path, document(scope=scope)), *SYNC)
    assert code == 2 and "segment" in text
