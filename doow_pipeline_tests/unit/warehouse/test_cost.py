"""The cost side of the warehouse without Azure: stored prices merge (every answer kept, a stored price never
changes), usage priced into usage_cost_daily with unknown cost NULL, the owners view, and cost settings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from doow_pipeline.config import ConfigError, load_config
from doow_pipeline.core.scope import Account, tag_value
from doow_pipeline.usage.pricing import ASSUMED_DEPLOYMENT_TYPE, NO_METER, DeploymentTypes
from doow_pipeline.warehouse.cost import CostOptions, merge_prices, price_records, prices_state, write_cost
from doow_pipeline.warehouse.database import connect
from doow_pipeline.warehouse.schema import SCHEMA

SEEN_1 = datetime(2026, 10, 22, 6, tzinfo=UTC)
SEEN_2 = datetime(2026, 11, 20, 6, tzinfo=UTC)


def price(
    meter: str, value: float, start: str, end: str | None = None, region: str = "westeurope", meter_id: str = "m-1"
) -> dict:
    return {
        "meter_id": meter_id,
        "meter_name": meter,
        "product_name": "Azure OpenAI",
        "sku_name": meter,
        "service_name": "Cognitive Services",
        "service_id": "DZH31600VF1F",
        "arm_region_name": region,
        "location": "EU West",
        "currency_code": "USD",
        "retail_price": value,
        "unit_price": value,
        "unit_of_measure": "1K",
        "tier_minimum_units": 0.0,
        "type": "Consumption",
        "effective_start_date": datetime.fromisoformat(start).replace(tzinfo=UTC),
        "effective_end_date": datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None,
    }


def stored(con) -> list[tuple]:
    return con.execute(
        f"SELECT meter_id, retail_price, effective_start_date::DATE, effective_end_date::DATE, "
        f"first_seen_at, last_seen_at FROM {SCHEMA}.retail_prices ORDER BY ALL"
    ).fetchall()


def test_every_answer_is_kept_and_a_stored_price_never_changes(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        first = [price("gpt 4.1 Inp glbl Tokens", 0.002, "2025-04-01")]
        assert merge_prices(con, price_records(first, SEEN_1)) == 1
        assert merge_prices(con, price_records(first + first, SEEN_1)) == 0  # the same answer twice: no new record
        # Later the API answers the same meter with an end date, and the new price from a later start
        later = [
            price("gpt 4.1 Inp glbl Tokens", 0.002, "2025-04-01", "2026-10-31T23:59:00"),
            price("gpt 4.1 Inp glbl Tokens", 0.0018, "2026-11-01"),
        ]
        assert merge_prices(con, price_records(later, SEEN_2)) == 1
        # A corrected value under a stored key does not rewrite history
        assert merge_prices(con, price_records([price("gpt 4.1 Inp glbl Tokens", 9.0, "2026-11-01")], SEEN_2)) == 0
        rows = stored(con)
        state = prices_state(con, "USD")
    assert rows == [
        ("m-1", 0.0018, date(2026, 11, 1), None, SEEN_2.replace(tzinfo=None), SEEN_2.replace(tzinfo=None)),
        ("m-1", 0.002, date(2025, 4, 1), date(2026, 10, 31), SEEN_1.replace(tzinfo=None), SEEN_2.replace(tzinfo=None)),
    ]
    assert state.records == 2 and state.last_ok_fetch is None  # no fetch recorded by merge alone


def _usage_row(con, day: date, deployment: str, model: str | None, inp: int, out: int) -> None:
    con.execute(
        f"INSERT INTO {SCHEMA}.usage_daily VALUES (?, 'prod', 't', 's', 'rg', 'acct', "
        "'/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct', 'OpenAI', "
        "'westeurope', ?, ?, '2025-04-14', 'westeurope', ?, ?, ?, 1, 'models', true, ?)",
        [day, deployment, model, inp, out, inp + out, datetime(2026, 11, 20)],
    )
    con.execute(
        f"INSERT INTO {SCHEMA}.accounts VALUES (?, 'prod', 't', 's', 'rg', 'acct', "
        "'/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct', 'OpenAI', "
        "'westeurope', true, 'batch', 'models', ?, MAP {'Owner': 'team-a', 'CostCenter': 'CC-9'})",
        [day, datetime(2026, 11, 20)],
    )


def test_cost_is_tokens_times_the_price_of_the_day_and_unknown_is_null(tmp_path):
    path = tmp_path / "w.duckdb"
    days = [date(2026, 10, 31), date(2026, 11, 1)]
    with connect(path) as con:
        merge_prices(
            con,
            price_records(
                [
                    price("gpt 4.1 Inp glbl Tokens", 0.002, "2025-04-01", "2026-10-31T23:59:00"),
                    price("gpt 4.1 Inp glbl Tokens", 0.0018, "2026-11-01"),
                    price("gpt 4.1 Outp glbl Tokens", 0.008, "2025-04-01", meter_id="m-2"),
                ],
                SEEN_2,
            ),
        )
        for day in days:
            _usage_row(con, day, "agents", "gpt-4.1", 1_000_000, 100_000)
            _usage_row(con, day, "mystery", None, 5_000, 0)
    summary = write_cost(path, days, CostOptions(DeploymentTypes(), {}, "USD", "owner", "costcenter"), SEEN_2)
    assert summary.rows == 4 and summary.statuses == {ASSUMED_DEPLOYMENT_TYPE: 2, NO_METER: 2}
    assert summary.per_day["2026-10-31"]["estimated_cost"] == pytest.approx(1000 * 0.002 + 100 * 0.008)
    assert summary.per_day["2026-11-01"]["estimated_cost"] == pytest.approx(1000 * 0.0018 + 100 * 0.008)
    assert not summary.check_results[0].passed and "acct/mystery" in summary.check_results[0].description
    with duckdb.connect(str(path), read_only=True) as con:
        mystery = con.execute(
            f"SELECT estimated_cost, input_cost, cost_status FROM {SCHEMA}.usage_cost_daily "
            "WHERE deployment = 'mystery'"
        ).fetchall()
        owners = con.execute(f"SELECT DISTINCT owner, cost_centre FROM {SCHEMA}.account_owners").fetchall()
        comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'usage_cost_daily'").fetchone()
    assert mystery == [(None, None, NO_METER)] * 2
    assert owners == [("team-a", "CC-9")]  # tag names compare case-insensitively
    assert "ESTIMATE at public list price" in comment[0] and "not the invoice" in comment[0].lower()
    # The model name settings give a deployment whose metrics name none prices it; model_name stays NULL
    summary = write_cost(path, days, CostOptions(DeploymentTypes(), {"acct/mystery": "gpt-4.1"}), SEEN_2)
    assert summary.statuses == {ASSUMED_DEPLOYMENT_TYPE: 4}
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            f"SELECT model_name, input_cost, cost_detail FROM {SCHEMA}.usage_cost_daily "
            "WHERE deployment = 'mystery' AND usage_date = '2026-11-01'"
        ).fetchone()
    assert row[0] is None and row[1] == pytest.approx(5 * 0.0018) and "settings.deployment_models" in row[2]


def test_account_tags_are_typed_and_looked_up_case_insensitively():
    account = Account.from_arm_id(
        "/subscriptions/S/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a",
        "a",
        "OpenAI",
        "West Europe",
        {"Owner": "x", "env": None},
    )
    assert account.tag_map == {"Owner": "x", "env": ""}
    assert tag_value(account.tags, "owner") == "x" and tag_value(account.tags, "missing") is None
    assert hash(account)  # still usable as a key


def test_unknown_deployment_types_are_a_config_error(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text(
        "settings:\n  deployment_types: {default: GlobalStandrd, overrides: {a/b: PTU}}\n"
        "  prices_urls: {AzureChinaCloud: 'ftp://x'}\n  currency: usd\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "GlobalStandrd" in text and "PTU" in text and "GlobalStandard" in text
    assert "prices_urls" in text and "currency" in text
