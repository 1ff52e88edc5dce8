"""Where the Retail Prices API is read: per cloud, the configured URL, the emulator's, or the public one;
never the public one behind explicit endpoints."""

from __future__ import annotations

from doow_pipeline.config import Settings
from doow_pipeline.services.prices import prices_endpoint, read_prices

EMULATOR = {
    "authority": "https://127.0.0.1:9",
    "arm": "https://127.0.0.1:9",
    "metrics": "https://127.0.0.1:9/{region}",
    "ca_cert": "/tmp/ca.pem",
}


def test_the_configured_url_wins_then_the_emulators_then_the_public_one():
    assert prices_endpoint(Settings(), "AzureCloud").url == "https://prices.azure.com"
    assert prices_endpoint(Settings(), "AzureUSGovernment").url == "https://prices.azure.com"
    with_prices = Settings(endpoints={**EMULATOR, "prices": "https://127.0.0.1:9"})
    endpoint = prices_endpoint(with_prices, "AzureCloud")
    assert (endpoint.url, endpoint.connection_verify) == ("https://127.0.0.1:9", "/tmp/ca.pem")
    configured = Settings(
        endpoints={**EMULATOR, "prices": "https://127.0.0.1:9"},
        prices_urls={"AzureCloud": "https://prices.example.test/"},
    )
    assert prices_endpoint(configured, "AzureCloud").url == "https://prices.example.test"


def test_no_endpoint_is_a_reason_not_a_call():
    china = prices_endpoint(Settings(), "AzureChinaCloud")
    assert china.url is None and "settings.prices_urls.AzureChinaCloud" in (china.missing or "")
    explicit = prices_endpoint(Settings(endpoints=EMULATOR), "AzureCloud")  # an emulator line without prices
    assert explicit.url is None and "prices" in (explicit.missing or "")
    result = read_prices(Settings(endpoints=EMULATOR), "AzureCloud", ["westeurope"])
    assert result.prices == [] and result.error == explicit.missing
