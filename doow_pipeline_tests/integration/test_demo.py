"""`make demo` follows the real clock and names every model: the demo's history ends at the last complete
UTC day before now (the project has no frozen clock), and no deployment whose request metric reports a
model lands with model_name NULL (the legacy-family accounts included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import yaml

from doow_pipeline_tests import demo

pytestmark = pytest.mark.slow


def test_demo_ends_yesterday_on_the_real_clock_with_every_model_named(tmp_path, capsys):
    code = demo.main(["--days", "2", "--workdir", str(tmp_path)])
    output = capsys.readouterr().out
    today = datetime.now(UTC).date()
    assert code == 0, output
    settings = yaml.safe_load((tmp_path / "connections.yaml").read_text())["settings"]
    assert "frozen_clock" not in settings
    with duckdb.connect(str(tmp_path / "doow.duckdb"), read_only=True) as con:
        days = {r[0] for r in con.execute("SELECT DISTINCT usage_date FROM azure_openai.usage_daily").fetchall()}
        unnamed = con.execute(
            "SELECT count(*) FROM azure_openai.usage_daily WHERE model_name IS NULL OR model_version IS NULL"
        ).fetchone()[0]
        legacy = con.execute(
            "SELECT count(*) FROM azure_openai.usage_daily WHERE metric_family = 'azure_openai'"
        ).fetchone()[0]
    if datetime.now(UTC).date() == today:  # the test did not run across midnight
        assert days == {today - timedelta(days=2), today - timedelta(days=1)}
    assert legacy > 0 and unnamed == 0
    assert "(unknown)" not in output
