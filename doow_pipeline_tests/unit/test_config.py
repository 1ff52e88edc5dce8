"""connections.yaml validation: every problem reported once, with the file, the field and the fix."""

import re
from pathlib import Path

import pytest

from doow_pipeline.config import load_config
from doow_pipeline.core.problems import ConfigError
from doow_pipeline.core.scope import parse_scope

TENANT = "8c1f4a6e-2b3d-4e5f-9a0b-1c2d3e4f5a60"
CLIENT = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e501"
SUB = "3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d01"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connections.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads_with_defaults(tmp_path):
    path = write(
        tmp_path,
        f"""
connections:
  - name: prod
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_PROD
    scope: /subscriptions/{SUB}/
""",
    )
    config = load_config(path, environ={"DOOW_SECRET_PROD": "s"})
    connection = config.connection("prod")
    assert connection.cloud == "AzureCloud"
    assert connection.scope == f"/subscriptions/{SUB}"
    assert connection.parsed_scope.kind == "subscription"
    assert config.warehouse_path == tmp_path / "data" / "doow.duckdb"
    assert config.settings.resync_days == 3 and config.settings.top == 1000


def test_every_problem_is_reported_once_with_field_and_fix(tmp_path):
    path = write(
        tmp_path,
        f"""
connections:
  - name: prod
    tenant_id: not-a-guid
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_PROD
    scope: /subscriptions/{SUB}
    cloud: AzureMars
  - name: prod
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_OTHER
    scope: /subscriptions/not-a-guid
  - name: Bad Name
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: "has spaces"
    scope: /foo/bar
settings:
  top: 0
  colour: blue
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    problems = info.value.problems
    text = str(info.value)
    assert str(path) in text
    expected_fragments = [
        "connections[0] (prod).tenant_id: 'not-a-guid' is not a GUID",
        "connections[0] (prod).cloud: unknown cloud 'AzureMars'",
        "connections[1] (prod).scope: subscription id 'not-a-guid'",
        "connections[2] (Bad Name).name:",
        "connections[2] (Bad Name).client_secret_env: 'has spaces' is not an environment variable name",
        "connections[2] (Bad Name).scope: scope '/foo/bar' is not recognised",
        "settings.top:",
        "settings.colour: unknown field",
    ]
    for fragment in expected_fragments:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)


def test_duplicates_and_unset_secrets_are_reported(tmp_path):
    body = "\n".join(
        f"""
  - name: prod
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_{i}
    scope: /subscriptions/{SUB}/resourceGroups/rg-ai"""
        for i in range(2)
    )
    path = write(tmp_path, "connections:" + body + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"DOOW_SECRET_0": "x"})
    problems = info.value.problems
    assert any("duplicate name 'prod'" in p for p in problems)
    assert any("DOOW_SECRET_1 is unset" in p and "doow-azure connect" in p for p in problems)
    assert not any("DOOW_SECRET_0" in p for p in problems)


def test_secret_may_come_from_dotenv_beside_the_file(tmp_path):
    path = write(
        tmp_path,
        f"""
connections:
  - name: prod
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_PROD
    scope: aoai-prod-weu
""",
    )
    (tmp_path / ".env").write_text("DOOW_SECRET_PROD=from-dotenv\n")
    config = load_config(path, environ={})
    assert config.connection("prod").parsed_scope.kind == "account_name"


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="DOOW_CONNECTIONS"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_endpoints_block_must_be_https_with_region(tmp_path):
    path = write(
        tmp_path,
        """
settings:
  endpoints: {authority: "http://127.0.0.1:1", arm: "https://127.0.0.1:1", metrics: "https://127.0.0.1:1"}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any("settings.endpoints.authority" in p and "https" in p for p in info.value.problems)
    assert any("settings.endpoints.metrics" in p and "{region}" in p for p in info.value.problems)


@pytest.mark.parametrize(
    "scope,kind",
    [
        (f"/subscriptions/{SUB}", "subscription"),
        (f"/subscriptions/{SUB}/resourceGroups/rg-ai", "resource_group"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/aoai-1",
            "account_id",
        ),
        ("aoai-prod-weu", "account_name"),
    ],
)
def test_scope_forms(scope, kind):
    parsed = parse_scope(scope)
    assert parsed.kind == kind
    if kind != "account_name":
        assert parsed.covers(
            f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/aoai-1"
        )


def test_anomaly_thresholds_default_and_are_validated(tmp_path):
    config = load_config(write(tmp_path, "settings: {}\n"), environ={})
    assert (config.settings.anomaly_factor, config.settings.anomaly_window_days, config.settings.anomaly_min_days) == (
        3.0,
        14,
        7,
    )
    path = write(tmp_path, "settings:\n  anomaly_factor: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any(p.startswith("settings.anomaly_factor:") for p in info.value.problems), info.value.problems
    path = write(tmp_path, "settings:\n  anomaly_window_days: 5\n  anomaly_min_days: 6\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any("anomaly_min_days (6) must not exceed anomaly_window_days (5)" in p for p in info.value.problems)


# ---- the landing zone: a folder (the default) or az://<container>/<prefix> ------------------------------------

LANDING_CONNECTION = f"""
connections:
  - name: prod
    tenant_id: {TENANT}
    client_id: {CLIENT}
    client_secret_env: DOOW_SECRET_PROD
    scope: /subscriptions/{SUB}
"""


def landing_config(tmp_path: Path, settings: str):
    return load_config(
        write(tmp_path, LANDING_CONNECTION + "settings:\n" + settings), environ={"DOOW_SECRET_PROD": "s"}
    )


def test_the_landing_zone_defaults_to_the_folder_beside_the_warehouse(tmp_path):
    config = load_config(write(tmp_path, LANDING_CONNECTION), environ={"DOOW_SECRET_PROD": "s"})
    assert config.landing_location.local_root == tmp_path / "data" / "landing" == config.landing_dir
    assert not config.landing_location.is_blob


def test_a_landing_folder_or_file_url_is_resolved_against_the_config(tmp_path):
    assert landing_config(tmp_path, "  landing: raw\n").landing_dir == tmp_path / "raw"
    assert landing_config(tmp_path, f"  landing: file://{tmp_path}/x\n").landing_dir == tmp_path / "x"


def test_an_az_landing_zone_names_container_prefix_account_and_endpoint(tmp_path):
    config = landing_config(
        tmp_path,
        "  landing: az://doow-landing/team/raw\n  landing_account: doowstore\n"
        "  landing_endpoint: https://doowstore.blob.core.usgovcloudapi.net/\n",
    )
    location = config.landing_location
    assert (location.container, location.prefix, location.account) == ("doow-landing", "team/raw", "doowstore")
    assert location.endpoint == "https://doowstore.blob.core.usgovcloudapi.net"
    assert location.describe("manifests/x.json") == "az://doow-landing/team/raw/manifests/x.json"
    with pytest.raises(ConfigError, match="is not a local folder"):
        config.landing_dir  # noqa: B018 - the property raises


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ("  landing: s3://bucket/x\n", r"unsupported scheme s3://; use a local folder, file:///path or az://"),
        ("  landing: az://raw/x\n", r"no storage account is set; add settings.landing_account"),
        ("  landing: az://Bad_Name/x\n  landing_account: acct\n", r"'Bad_Name' is not a valid container name"),
        ("  landing: az://raw/x\n  landing_account: Not-An-Account\n", r"is not a storage account name"),
        ("  landing: az://raw@acct/x\n  landing_account: acct\n", r"name the container only"),
        ("  landing: az://raw/x?sv=2024&sig=abc\n  landing_account: acct\n", r"never put a SAS token or key in"),
        (
            "  landing: az://raw/x\n  landing_account: acct\n  landing_endpoint: http://blob.example.com/acct\n",
            r"http:// is allowed only for an emulator on this machine",
        ),
        ("  landing: az://raw/x\n  landing_account: acct\n  landing_endpoint: blob\n", r"must be an absolute URL"),
        ("  landing_account: acct\n", r"set but settings.landing is not"),
        ("  landing: raw\n  landing_account: acct\n", r"is a local folder, but landing_account"),
    ],
)
def test_a_bad_landing_setting_is_named_with_the_fix(tmp_path, settings, problem):
    with pytest.raises(ConfigError) as raised:
        landing_config(tmp_path, settings)
    assert "settings" in str(raised.value)
    assert any(re.search(problem, p) for p in raised.value.problems), raised.value.problems


def test_the_analyst_copy_defaults_beside_the_warehouse_and_may_be_moved_or_turned_off(tmp_path):
    assert load_config(write(tmp_path, "settings: {}\n"), environ={}).analyst_copy_path == (
        tmp_path / "data" / "doow.analyst.duckdb"
    )
    config = load_config(write(tmp_path, "settings:\n  warehouse: /srv/wh/usage.duckdb\n"), environ={})
    assert config.analyst_copy_path == Path("/srv/wh/usage.analyst.duckdb")
    config = load_config(write(tmp_path, "settings:\n  analyst_copy: bi/doow.duckdb\n"), environ={})
    assert config.analyst_copy_path == tmp_path / "bi" / "doow.duckdb"
    assert load_config(write(tmp_path, "settings:\n  analyst_copy: 'off'\n"), environ={}).analyst_copy_path is None
    path = write(tmp_path, "settings:\n  analyst_copy: data/doow.duckdb\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any(
        p.startswith("settings.analyst_copy: 'data/doow.duckdb' is the warehouse itself") for p in info.value.problems
    )
