"""connect and disconnect edit connections.yaml and .env under a lock, re-reading them after verification:
concurrent commands never undo each other. The race is forced deterministically: the other command runs, as
its own process, to completion at the exact moment the first one has verified against Azure and is about to
save (the verifier's last step)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from dotenv import dotenv_values

from doow_pipeline.cli import connect as connect_command
from doow_pipeline.services.verify import ConnectionVerifier
from doow_pipeline_tests.cli_support import (
    DEV,
    MAIN,
    NOW,
    PROD,
    RESEARCH,
    TENANT,
    CliProject,
    assert_no_secret,
    restore_environ,
    secret_of,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def clean_environ():
    snapshot = dict(os.environ)
    yield
    restore_environ(snapshot)


@pytest.fixture(scope="module")
def connected_once(tmp_path_factory, emulator) -> CliProject:
    """prod and dev connected."""
    project = CliProject(tmp_path_factory.mktemp("edits") / "project")
    project.workdir.mkdir(parents=True)
    snapshot = dict(os.environ)
    project.connect("prod", MAIN, PROD, endpoints=emulator.endpoints, expect=0)
    project.connect("dev", MAIN, DEV, expect=0)
    restore_environ(snapshot)
    return project


@pytest.fixture
def project(connected_once, tmp_path) -> CliProject:
    copy = CliProject(tmp_path / "project")
    shutil.copytree(connected_once.workdir, copy.workdir)
    return copy


def cli(project: CliProject, *args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    """`doow-azure` as its own process (its own lock holder), like a second terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOOW_SECRET_")}
    env["DOOW_CONNECTIONS"] = str(project.config)
    completed = subprocess.run(
        [sys.executable, "-m", "doow_pipeline.cli", "--frozen-clock", NOW.isoformat(), *args],
        input=secret,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert_no_secret(completed.stdout + completed.stderr, f"doow-azure {' '.join(args)}")
    return completed


def connect_args(name: str, scope: str) -> list[str]:
    return ["connect", name, "--tenant-id", TENANT, "--client-id", MAIN, "--scope", scope, "--client-secret-stdin"]


def while_verifying(monkeypatch, action) -> list[subprocess.CompletedProcess[str]]:
    """Runs `action` once the in-process connect has passed every verification step, before it saves."""
    done: list[subprocess.CompletedProcess[str]] = []

    class Interleaved(ConnectionVerifier):
        def run(self):
            yield from super().run()
            done.append(action())

    monkeypatch.setattr(connect_command, "ConnectionVerifier", Interleaved)
    return done


def names(project: CliProject) -> list[str]:
    return [c["name"] for c in yaml.safe_load(project.config.read_text())["connections"]]


def secrets(project: CliProject) -> dict[str, str | None]:
    return dotenv_values(project.env_file)


def test_two_connects_of_different_names_keep_both(project, monkeypatch):
    other = while_verifying(
        monkeypatch, lambda: cli(project, *connect_args("research", RESEARCH), secret=secret_of(MAIN))
    )
    project.connect("extra", MAIN, RESEARCH, expect=0)
    assert other and other[0].returncode == 0, other[0].stderr
    assert sorted(names(project)) == ["dev", "extra", "prod", "research"]
    assert {"DOOW_SECRET_RESEARCH", "DOOW_SECRET_EXTRA", "DOOW_SECRET_PROD"} <= set(secrets(project))


def test_a_connect_during_a_disconnect_cannot_bring_it_back(project, monkeypatch):
    other = while_verifying(monkeypatch, lambda: cli(project, "disconnect", "dev"))
    project.connect("research", MAIN, RESEARCH, expect=0)
    assert other and other[0].returncode == 0, other[0].stderr
    assert sorted(names(project)) == ["prod", "research"]
    assert "DOOW_SECRET_DEV" not in secrets(project)


def test_two_connects_of_one_name_the_second_is_refused(project, monkeypatch):
    other = while_verifying(
        monkeypatch, lambda: cli(project, *connect_args("research", RESEARCH), secret=secret_of(MAIN))
    )
    result = project.connect("research", MAIN, PROD, expect=2)
    assert other and other[0].returncode == 0, other[0].stderr
    text = result.stdout + result.stderr
    assert "a connection named 'research' was saved" in text and "nothing was saved" in text
    assert "Saved connection" not in text
    entries = [c for c in yaml.safe_load(project.config.read_text())["connections"] if c["name"] == "research"]
    assert len(entries) == 1 and entries[0]["scope"] == RESEARCH  # the first to save keeps its scope


def test_a_stray_env_temporary_file_is_removed_by_the_next_edit(project):
    stray = project.workdir / "..env.k1llxd9.tmp"  # what kill -9 between write and rename leaves
    stray.write_text(f"DOOW_SECRET_PROD='{secret_of(MAIN)}'\n")
    os.chmod(stray, 0o600)
    project.run("disconnect", "dev", expect=0)
    assert not stray.exists()
    assert not list(project.workdir.glob(".*.tmp"))


def test_sync_status_and_doctor_warn_about_a_readable_env(project, emulator):
    os.chmod(project.env_file, 0o644)
    for args in (
        ["status"],
        ["doctor", "prod"],
        ["sync", "--from", str(NOW.date()), "--to", str(NOW.date()), "-c", "prod"],
    ):
        result = project.run(*args)
        assert (
            f"warning: {project.env_file} (the client secrets) is readable by others (mode 644)"
            in result.stderr.replace("\n", " ")
        ), (args, result.stderr)
        assert "chmod 600" in result.stderr
    os.chmod(project.env_file, 0o600)
    result = project.run("status")
    assert "readable by others" not in result.stderr
