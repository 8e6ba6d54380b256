"""Schemathesis against a real ``otel-monitor serve`` over a store with data: every
operation of the served /openapi.json (the API, /metrics, /v1/traces) with generated
valid and invalid requests, under every check (no 5xx; status codes, content types,
headers and bodies as documented; invalid data refused; a wrong method a 405; with a
token, no answer without it). A fixed seed and a bounded number of examples per
operation keep it repeatable and quick."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st

from dash_ui.instants import EARLIEST, LATEST, parse_iso
from served_cli import served_cli

TOKEN = "fuzz-s3cret"
OPERATIONS = 21  # the API's 19 (with /api/slos), /metrics and /v1/traces
EXAMPLES = 25
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)

# The parameters' documented range (the store's signed 64-bit ns) cannot be said in JSON
# Schema: valid date-times are drawn within it; the dates outside it are tested, as 422s,
# in test_api_contract.
schemathesis.openapi.format("date-time", st.datetimes(
    (EARLIEST + timedelta(seconds=1)).replace(tzinfo=None, microsecond=0),
    LATEST.replace(tzinfo=None, microsecond=0)).map(lambda t: t.isoformat() + "Z"))


def _date_range_in_order(schema):
    """The schema, its requests' 'from' not after 'to': a rule JSON Schema cannot state
    (the parameters' description does), so a generated pair out of order is swapped; the
    422 for one is tested in test_api_contract."""

    @schema.hook
    def map_query(context, query):
        try:
            out_of_order = parse_iso(query["from"]) > parse_iso(query["to"])
        except (KeyError, TypeError, ValueError):  # not both, or not dates: as generated
            return query
        return {**query, "from": query["to"], "to": query["from"]} if out_of_order else query

    return schema


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OTEL_MONITOR_UI_TOKEN", "OTEL_MONITOR_INGEST_TOKEN")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def open_schema(recorded):
    with served_cli(recorded, _env()) as served:
        yield _date_range_in_order(schemathesis.openapi.from_url(served.url + "/openapi.json"))


@pytest.fixture(scope="module")
def guarded_schema(recorded):
    with served_cli(recorded, _env(OTEL_MONITOR_UI_TOKEN=TOKEN)) as served:
        # The token for the generated requests (those sent without it, by the auth
        # check, must get a 401); the document needs it too.
        config = schemathesis.config.SchemathesisConfig.from_dict(
            {"auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}}})
        yield _date_range_in_order(schemathesis.openapi.from_url(
            served.url + "/openapi.json", config=config,
            headers={"Authorization": f"Bearer {TOKEN}"}))


def fuzz(schema) -> tuple[dict[str, int], list[str]]:
    """Run Schemathesis's test of each operation (its pytest plugin's, as built for
    ``@schema.parametrize()``: every phase, generation mode and check): the requests sent
    per operation, and the failures."""
    # The plugin's lazy loader (schemathesis.pytest.from_fixture) renames the pytest node,
    # which pytest 9.2 no longer allows; its test builder works as it is.
    from schemathesis.pytest.lazy import get_all_tests

    sent: dict[str, int] = {}
    failures = []

    def check(case) -> None:
        sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
        case.call_and_validate()

    for result in get_all_tests(schema=schema, test_func=check, settings=FUZZ,
                                given_kwargs={}):
        operation, test = result.ok()
        try:
            test()
        except Exception as exc:  # a check failed: go on, to report every operation's
            failures.append(f"{operation.label}: {exc}")
    return sent, failures


def test_the_api_keeps_its_schema(open_schema):
    sent, failures = fuzz(open_schema)
    print(f"requests per operation: {sent}")
    assert len(sent) == OPERATIONS and not failures, "\n\n".join(failures)


def test_the_api_with_a_token_keeps_its_schema(guarded_schema):
    sent, failures = fuzz(guarded_schema)
    print(f"requests per operation: {sent}")
    assert len(sent) == OPERATIONS and not failures, "\n\n".join(failures)
