"""The usage_daily checks fail on the defects they exist for; the writer refuses non-contiguous ranges."""

from datetime import date

import duckdb
import polars as pl
import pytest

from doow_pipeline.warehouse.checks import usage_checks
from doow_pipeline.warehouse.schema import DDL
from doow_pipeline.warehouse.store import write_partitions

DAY = date(2026, 11, 1)
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"


def row(**overrides) -> dict:
    base = {
        "usage_date": DAY,
        "resource_id": RID,
        "deployment": "d",
        "model_name": "gpt-4o",
        "model_version": "1",
        "metric_region": "eastus",
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "metric_family": "models",
    }
    return {**base, **overrides}


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(DDL)
    yield connection
    connection.close()


def by_name(outcomes) -> dict[str, tuple[bool, str]]:
    return {o.name: (o.passed, o.description) for o in outcomes}


def test_checks_pass_on_clean_rows(con):
    results = by_name(usage_checks(con, pl.DataFrame([row(), row(deployment="e")]), [DAY]))
    assert all(passed for passed, _ in results.values()), results


def test_checks_catch_duplicates_inconsistent_tokens_and_mixed_families(con):
    usage = pl.DataFrame(
        [
            row(),
            row(),  # the same grain twice
            row(deployment="x", total_tokens=99),  # input + output <> total
            row(deployment="y"),
            row(deployment="y", model_name=None, metric_family="azure_openai"),  # both families
        ]
    )
    results = by_name(usage_checks(con, usage, [DAY]))
    assert results["unique_grain"] == (False, "1 duplicate grain key(s)")
    assert results["tokens_consistent"][0] is False and results["tokens_consistent"][1].startswith("1 row(s)")
    assert results["single_metric_family"][0] is False and results["single_metric_family"][1].startswith("1 ")


def test_overlap_check_names_the_account_and_connections(con):
    con.execute(
        "INSERT INTO azure_openai.accounts VALUES "
        "(?, 'a_conn', 't', 's', 'rg', 'a', ?, 'OpenAI', 'eastus', true, 'batch', 'models', now()::TIMESTAMP),"
        "(?, 'b_conn', 't', 's', 'rg', 'a', ?, 'OpenAI', 'eastus', true, 'batch', 'models', now()::TIMESTAMP)",
        [DAY, RID, DAY, RID],
    )
    passed, text = by_name(usage_checks(con, pl.DataFrame([row()]), [DAY]))["no_overlapping_scopes"]
    assert not passed and f"{RID} via a_conn, b_conn" in text


def test_writer_refuses_a_non_contiguous_day_list(tmp_path):
    with pytest.raises(ValueError, match="contiguous"):
        write_partitions(tmp_path / "w.duckdb", tmp_path / "landing", [], [DAY, date(2026, 11, 3)])
