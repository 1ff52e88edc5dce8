"""The public Azure Retail Prices API (`GET https://prices.azure.com/api/retail/prices`), emulated.

Anonymous and read-only, like the real one. Behaviour (sources in README.md, "Retail Prices API"):

- api-version: none, `2021-10-01-preview` or `2023-01-01-preview`; anything else is a 400 (UNCONFIRMED: the
  real answer to an unknown version is not documented).
- `$filter`: `field eq 'value'`, `contains(field, 'value')`, `and`, `or`, parentheses, `''` escapes,
  `isPrimaryMeterRegion eq true|false`. Fields: armRegionName, location, meterId, meterName, productId,
  skuId, productName, skuName, serviceName, serviceId, serviceFamily, priceType (the response field `type`;
  `type` is accepted too), armSkuName, unitOfMeasure. Field names are case-insensitive; values are
  case-sensitive from 2023-01-01-preview on and case-insensitive before (documented). A malformed filter or
  an unknown field is a 400.
- `meterRegion='primary'` (2021-10-01-preview and later) keeps primary meter regions only.
- `currencyCode='EUR'` (quotes optional): prices converted with the fixture's exchange rates; an
  unsupported code is a 400 (UNCONFIRMED).
- Paging: `page_size` items per page (default 100 as documented; 1000 is what the service answers today),
  ordered by meterId; `NextPageLink` is absolute, keeps the request's parameters and sets `$skip`; it is
  null on the last page. `Count` is the number of items in the page. No match: `Items: []`, `Count: 0`.
- Prices served are the ones in force at the emulator clock (effectiveStartDate <= now, no
  effectiveEndDate or effectiveEndDate >= now): the API tells the price today, not its history, which is
  why the product stores prices with their dates. `serve: all` in the scenario serves every record.
- Throttling: scenario `prices: {requests_per_minute: N}` (sliding window per client address, through the
  emulator's Throttler, cleared by `POST /_emulator/reset`) answers 429 with Retry-After; faults with
  `"match": "prices"` (a path regex) work as everywhere else. Error bodies are
  `{"error": {"code", "message"}}` (UNCONFIRMED for this API).

Scenario block (optional): `prices: {fixture: FILE, page_size: 100, requests_per_minute: null, serve: current}`.
`fixture_prices()` returns the fixture's items exactly as the API serves them: the tests' independent oracle.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import yaml

FIXTURE = Path(__file__).with_name("prices.yaml")
API_VERSIONS = ("2021-10-01-preview", "2023-01-01-preview")
CASE_SENSITIVE_FROM = "2023-01-01-preview"
FILTER_FIELDS = {
    "armregionname": "armRegionName",
    "location": "location",
    "meterid": "meterId",
    "metername": "meterName",
    "productid": "productId",
    "skuid": "skuId",
    "productname": "productName",
    "skuname": "skuName",
    "servicename": "serviceName",
    "serviceid": "serviceId",
    "servicefamily": "serviceFamily",
    "pricetype": "type",
    "type": "type",
    "armskuname": "armSkuName",
    "unitofmeasure": "unitOfMeasure",
    "isprimarymeterregion": "isPrimaryMeterRegion",
}
_NS = uuid.UUID("0b8c6f0e-3d55-4b7a-9f5e-6a1f1a2b9c01")
_SKU_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXZ"


class PricesError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# ---- fixture ----------------------------------------------------------------------------------------------
def _sku_name(meter: str) -> str:
    for suffix in (" 1M Tokens", " Tokens", " Unit"):
        if meter.endswith(suffix):
            return meter[: -len(suffix)]
    return meter


def _sku_code(text: str) -> str:
    n = uuid.uuid5(_NS, text).int
    return "".join(_SKU_ALPHABET[(n >> (5 * i)) % len(_SKU_ALPHABET)] for i in range(4))


def _item(raw: dict, doc: dict) -> dict:
    region, product, meter = raw["region"], raw["product"], raw["meter"]
    sku = raw.get("sku") or _sku_name(meter)
    product_id = raw.get("productId") or doc["products"][product]
    meter_id = str(uuid.uuid5(_NS, f"{product}|{sku}|{region}|{raw.get('type', 'Consumption')}"))
    item = {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": float(raw["price"]),
        "unitPrice": float(raw["price"]),
        "armRegionName": region,
        "location": doc["locations"][region],
        "effectiveStartDate": raw["start"],
    }
    if raw.get("reservationTerm"):
        item = {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "reservationTerm": raw["reservationTerm"],
            **{k: v for k, v in item.items() if k not in ("currencyCode", "tierMinimumUnits")},
        }
    if raw.get("end"):
        item["effectiveEndDate"] = raw["end"]
    item.update(
        {
            "meterId": meter_id,
            "meterName": meter,
            "productId": product_id,
            "skuId": f"{product_id}/{_sku_code(product + '|' + sku)}",
            "productName": product,
            "skuName": sku,
            "serviceName": raw["service"],
            "serviceId": raw.get("serviceId") or doc["service_id"],
            "serviceFamily": raw.get("serviceFamily") or doc["service_family"],
            "unitOfMeasure": raw["unit"],
            "type": raw.get("type", "Consumption"),
            "isPrimaryMeterRegion": bool(raw.get("isPrimaryMeterRegion", True)),
            "armSkuName": raw.get("armSkuName") or sku,
        }
    )
    return item


@lru_cache(maxsize=8)
def _load(path: str) -> tuple[tuple[dict, ...], dict]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    items = sorted((_item(raw, doc) for raw in doc["items"]), key=lambda i: (i["meterId"], i["effectiveStartDate"]))
    return tuple(items), dict(doc["exchange_rates"])


def fixture_prices(path: str | Path | None = None, currency: str = "USD") -> list[dict]:
    """Every item of the fixture as the API serves it (all dates, ordered by meterId), in `currency`."""
    items, rates = _load(str(Path(path or FIXTURE).resolve()))
    return [_convert(i, currency, rates[currency]) for i in items]


def _convert(item: dict, currency: str, rate: float) -> dict:
    out = dict(item)
    if currency != "USD":
        out["currencyCode"] = currency
        out["retailPrice"] = round(item["retailPrice"] * rate, 6)
        out["unitPrice"] = round(item["unitPrice"] * rate, 6)
    return out


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def in_force(item: dict, now: datetime) -> bool:
    if _parse_ts(item["effectiveStartDate"]) > now:
        return False
    end = item.get("effectiveEndDate")
    return end is None or _parse_ts(end) >= now


# ---- $filter --------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<other>\S))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("punct"):
            out.append(("punct", m.group("punct")))
        elif m.group("word"):
            out.append(("word", m.group("word")))
        else:
            raise PricesError(400, "InvalidFilter", f"Invalid $filter: unexpected character {m.group('other')!r}.")
    return out


class _Parser:
    def __init__(self, text: str, case_sensitive: bool):
        self.text, self.toks, self.i, self.cs = text, _tokens(text), 0, case_sensitive

    def fail(self, why: str):
        raise PricesError(400, "InvalidFilter", f"Invalid $filter '{self.text}': {why}.")

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1].lower() != value):
            self.fail(f"expected {value or kind} at token {self.i + 1}")
        self.i += 1
        return tok[1]

    def parse(self):
        if not self.toks:
            return lambda item: True
        pred = self.expr()
        if self.i != len(self.toks):
            self.fail(f"unexpected '{self.toks[self.i][1]}'")
        return pred

    def expr(self):
        preds = [self.term()]
        while self.peek()[0] == "word" and self.peek()[1].lower() == "or":
            self.i += 1
            preds.append(self.term())
        return preds[0] if len(preds) == 1 else (lambda item, ps=tuple(preds): any(p(item) for p in ps))

    def term(self):
        preds = [self.factor()]
        while self.peek()[0] == "word" and self.peek()[1].lower() == "and":
            self.i += 1
            preds.append(self.factor())
        return preds[0] if len(preds) == 1 else (lambda item, ps=tuple(preds): all(p(item) for p in ps))

    def field(self) -> str:
        name = self.take("word")
        key = FILTER_FIELDS.get(name.lower())
        if key is None:
            self.fail(f"'{name}' is not a filterable property")
        return key

    def norm(self, value):
        return value if self.cs or not isinstance(value, str) else value.lower()

    def factor(self):
        kind, value = self.peek()
        if kind == "punct" and value == "(":
            self.i += 1
            pred = self.expr()
            self.take("punct", ")")
            return pred
        if kind == "word" and value.lower() == "contains":
            self.i += 1
            self.take("punct", "(")
            key = self.field()
            self.take("punct", ",")
            needle = self.norm(self.take("str"))
            self.take("punct", ")")
            return lambda item: needle in self.norm(str(item.get(key, "")))
        key = self.field()
        op = self.take("word").lower()
        if op != "eq":
            self.fail(f"operator '{op}' is not supported (use eq or contains)")
        kind, raw = self.peek()
        if kind == "str":
            self.i += 1
            expected = self.norm(raw)
            return lambda item: self.norm(item.get(key)) == expected
        if kind == "word" and raw.lower() in ("true", "false") and key == "isPrimaryMeterRegion":
            self.i += 1
            flag = raw.lower() == "true"
            return lambda item: bool(item.get(key)) is flag
        self.fail("values must be quoted strings")


def parse_price_filter(text: str | None, case_sensitive: bool):
    return _Parser(text or "", case_sensitive).parse()


# ---- the endpoint ---------------------------------------------------------------------------------------------
@dataclass
class PricesConfig:
    fixture: Path = FIXTURE
    page_size: int = 100
    requests_per_minute: int | None = None
    serve: str = "current"  # current | all

    @classmethod
    def for_scenario(cls, source: str | None) -> PricesConfig:
        """The scenario's optional `prices:` block (the scenario loader ignores keys it does not know)."""
        raw = {}
        if source and Path(source).is_file():
            doc = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
            raw = doc.get("prices") or {}
        unknown = set(raw) - {"fixture", "page_size", "requests_per_minute", "serve"}
        if unknown:
            raise ValueError(f"prices: unknown keys {sorted(unknown)}")
        cfg = cls()
        if raw.get("fixture"):
            path = Path(raw["fixture"])
            cfg.fixture = path if path.is_absolute() else Path(source).parent / path
        if raw.get("page_size") is not None:
            cfg.page_size = max(1, int(raw["page_size"]))
        if raw.get("requests_per_minute") is not None:
            cfg.requests_per_minute = int(raw["requests_per_minute"])
        if raw.get("serve"):
            if raw["serve"] not in ("current", "all"):
                raise ValueError("prices.serve: use 'current' or 'all'")
            cfg.serve = raw["serve"]
        return cfg


@dataclass
class RetailPricesAPI:
    config: PricesConfig
    throttler: object = None  # the app's Throttler (sliding windows, reset with the rest)

    def answer(
        self, params: dict[str, str], pairs: list[tuple[str, str]], base_url: str, path: str, client: str, now: datetime
    ) -> tuple[int, dict, dict]:
        """(status, body, headers) for GET /api/retail/prices with lower-cased `params`."""
        try:
            return 200, self._page(params, pairs, base_url, path, client, now), {}
        except PricesError as exc:
            return exc.status, {"error": {"code": exc.code, "message": exc.message}}, exc.headers

    def _page(self, params, pairs, base_url, path, client, now) -> dict:
        limit = self.config.requests_per_minute
        if limit is not None and self.throttler is not None:
            allowed, _remaining, retry = self.throttler._window(("prices", client), limit, 60.0)
            if not allowed:
                raise PricesError(
                    429,
                    "TooManyRequests",
                    f"Rate limit is exceeded. Try again in {retry} seconds.",
                    {"Retry-After": str(retry)},
                )
        version = params.get("api-version")
        if version is not None and version not in API_VERSIONS:
            raise PricesError(
                400,
                "InvalidApiVersion",
                f"The api-version '{version}' is invalid. Supported versions: {', '.join(API_VERSIONS)} (or none).",
            )
        currency = (params.get("currencycode") or "USD").strip().strip("'\"").upper()
        items, rates = _load(str(Path(self.config.fixture).resolve()))
        if currency not in rates:
            raise PricesError(400, "InvalidCurrencyCode", f"The currency code '{currency}' is not supported.")
        try:
            skip = int(params.get("$skip") or 0)
        except ValueError:
            raise PricesError(
                400, "InvalidSkip", f"The value '{params.get('$skip')}' of $skip is not an integer."
            ) from None
        if skip < 0:
            raise PricesError(400, "InvalidSkip", "$skip must not be negative.")
        pred = parse_price_filter(params.get("$filter"), case_sensitive=version == CASE_SENSITIVE_FROM)
        primary_only = version is not None and (params.get("meterregion") or "").strip("'\"").lower() == "primary"
        selected = [
            i
            for i in items
            if (self.config.serve == "all" or in_force(i, now))
            and pred(i)
            and (not primary_only or i["isPrimaryMeterRegion"])
        ]
        size = self.config.page_size
        page = [_convert(i, currency, rates[currency]) for i in selected[skip : skip + size]]
        next_link = None
        if skip + size < len(selected):
            query = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in pairs if k.lower() != "$skip")
            query = (query + "&" if query else "") + f"$skip={skip + size}"
            next_link = f"{base_url}{path}?{query}"
        return {
            "BillingCurrency": currency,
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": page,
            "NextPageLink": next_link,
            "Count": len(page),
        }
