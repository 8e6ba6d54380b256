"""Masking: the default sensitive names and ``mask=`` are stored only as a keyed hash
(HMAC with the store's secret), equal values give equal markers, and the clear value
appears nowhere in the store: not in a data row, not in an exception text, not in the
file's bytes."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat

import pytest

import otel_monitor
from otel_monitor import monitor

from monitor_helpers import Store

MARKER = re.compile(r"<HASHED:([0-9a-f]+)>")

DEFAULT_SENSITIVE = [
    "password", "passwd", "secret", "token", "api_key", "apikey", "auth", "authorization",
    "credential", "credentials", "private_key", "session", "cookie", "csrf", "jwt", "ssn",
    "credit_card", "apiKey", "APIKey", "db_password", "access_token", "clientSecret",
    "sessionId", "x_auth_token",
]
NOT_SENSITIVE = ["author", "tokenizer_name", "authority", "max_tokens", "keyboard", "spot"]


def _function_with_parameter(name: str):
    """``def take(<name>, other)``: a function with a parameter of the given name."""
    namespace = {"__name__": __name__}
    exec(f"def take({name}, other):\n    return 'ok'\n", namespace)
    return namespace["take"]


def _marker_hex(value: str) -> str:
    match = MARKER.fullmatch(value)
    assert match, f"not a hash marker: {value!r}"
    return match.group(1)


def _hmac_hex(key: str, clear: str) -> str:
    return hmac.new(key.encode(), clear.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("name", DEFAULT_SENSITIVE)
def test_default_sensitive_parameter_is_stored_hashed_without_being_listed(store, name):
    clear = f"clear-value-of-{name}-42"
    take = monitor("masking")(_function_with_parameter(name))
    assert take(clear, "visible") == "ok"

    values = store.values(store.call(take))
    _marker_hex(values[name])
    assert values["other"] == "'visible'"
    assert clear not in store.all_text()


@pytest.mark.parametrize("name", DEFAULT_SENSITIVE[:6])
def test_default_sensitive_keyword_collected_by_kwargs_is_stored_hashed(store, name):
    @monitor("masking")
    def configure_client(host, **options):
        return host

    clear = f"kw-clear-{name}-value"
    configure_client("db.local", **{name: clear, "timeout": 5})
    values = store.values(store.call(configure_client))
    _marker_hex(values[name])
    assert values["timeout"] == "5"
    assert values["host"] == "'db.local'"
    assert clear not in store.all_text()


@pytest.mark.parametrize("name", NOT_SENSITIVE)
def test_names_that_only_contain_a_sensitive_word_are_not_masked(store, name):
    take = monitor("masking")(_function_with_parameter(name))
    take("Tolstoy", "x")
    assert store.values(store.call(take))[name] == "'Tolstoy'"


def test_mask_lists_extra_argument_names(store):
    @monitor("pricing", mask=("spot",))
    def price(spot, strike):
        return spot - strike

    price(101.25, 100.0)
    values = store.values(store.call(price))
    _marker_hex(values["spot"])
    assert values["strike"] == "100.0"
    assert values["return"] == "1.25"
    assert "101.25" not in store.all_text()


def test_mask_applies_to_an_argument_passed_by_keyword_and_to_varargs(store):
    @monitor("masking", mask=("spot", "legs"))
    def price(spot, *legs):
        return len(legs)

    price(spot=987.654)
    price(1.5, "leg-one-secret", "leg-two-secret")
    first, second = store.calls(price)
    _marker_hex(store.values(first)["spot"])
    assert set(store.values(second)) == {"spot", "legs[0]", "legs[1]", "return"}
    for name in ("spot", "legs[0]", "legs[1]"):
        _marker_hex(store.values(second)[name])
    text = store.all_text()
    assert "987.654" not in text
    assert "leg-one-secret" not in text and "leg-two-secret" not in text


def test_mask_return_hashes_the_output(store):
    @monitor("auth", mask=("return",))
    def issue(user):
        return f"session-for-{user}-0xC0FFEE"

    issue("alice")
    values = store.values(store.call(issue))
    assert values["user"] == "'alice'"
    _marker_hex(values["return"])
    assert "session-for-alice-0xC0FFEE" not in store.all_text()


def test_mask_given_as_a_single_string_masks_that_name(store):
    @monitor("masking", mask="spot")
    def price(spot):
        return 0

    price(31415.9265)
    _marker_hex(store.values(store.call(price))["spot"])


def test_equal_values_give_equal_markers_and_different_values_different_markers(store):
    @monitor("auth")
    def login(user, password):
        return True

    @monitor("auth")
    def rotate(password):
        return True

    login("a", "same-secret-1")
    login("b", "same-secret-1")
    login("c", "other-secret-2")
    rotate("same-secret-1")
    m1, m2, m3 = (store.values(c)["password"] for c in store.calls(login))
    m4 = store.values(store.call(rotate))["password"]
    assert m1 == m2 == m4
    assert m1 != m3


def test_marker_is_the_hmac_of_the_value_under_the_configured_key_and_not_the_key(tmp_path):
    key = "known-mask-key-for-tests-0123456789"
    otel_monitor.configure(db_path=tmp_path / "k.db", flush_interval_s=0.05, mask_key=key)
    try:
        store = Store(tmp_path / "k.db")

        @monitor("auth")
        def login(password):
            return True

        login("hunter2-password")
        marker = store.values(store.call(login))["password"]
        digest = _marker_hex(marker)
        assert len(digest) >= 16
        assert _hmac_hex(key, "hunter2-password").startswith(digest)
        # keyed: not the plain hash of the value
        assert not hashlib.sha256(b"hunter2-password").hexdigest().startswith(digest)
        # the marker repeats no part of the key
        assert not any(key[i:i + 4] in marker for i in range(len(key) - 3))
        assert key not in store.all_text()
    finally:
        otel_monitor.shutdown()


def test_mask_key_from_the_environment_is_used(tmp_path, monkeypatch):
    key = "environment-mask-key-abcdefghijkl"
    monkeypatch.setenv("OTEL_MONITOR_MASK_KEY", key)
    otel_monitor.configure(db_path=tmp_path / "e.db", flush_interval_s=0.05)
    try:
        store = Store(tmp_path / "e.db")

        @monitor("auth")
        def login(token):
            return True

        login("tok-value-123")
        digest = _marker_hex(store.values(store.call(login))["token"])
        assert _hmac_hex(key, "tok-value-123").startswith(digest)
    finally:
        otel_monitor.shutdown()


def test_different_store_keys_give_different_markers_for_the_same_value(tmp_path):
    @monitor("auth")
    def login(password):
        return True

    markers = []
    for i, key in enumerate(["first-store-key-xxxxxxxxxx", "second-store-key-yyyyyyyyy"]):
        otel_monitor.configure(db_path=tmp_path / f"{i}.db", flush_interval_s=0.05, mask_key=key)
        try:
            login("the-same-password")
            markers.append(Store(tmp_path / f"{i}.db").values(
                Store(tmp_path / f"{i}.db").call(login))["password"])
        finally:
            otel_monitor.shutdown()
    assert markers[0] != markers[1]


def test_without_a_configured_key_a_private_key_file_beside_the_store_is_the_secret(store):
    key_file = store.path.with_name(store.path.name + ".key")
    assert key_file.exists()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 16

    @monitor("auth")
    def login(password):
        return True

    login("file-keyed-secret")
    digest = _marker_hex(store.values(store.call(login))["password"])
    assert _hmac_hex(key, "file-keyed-secret").startswith(digest)
    assert key not in store.all_text()


@pytest.mark.parametrize("otel_span", [False, True])
def test_secret_in_an_exception_message_is_scrubbed_from_the_store(store, otel_span):
    secret = "correct-horse-battery-staple"

    @monitor("auth", otel_span=otel_span)
    def login(user, password):
        raise PermissionError(f"bad password {password!r} for {user}")

    with pytest.raises(PermissionError) as info:
        login("bob", secret)
    assert secret in str(info.value)  # the caller's exception is untouched

    call = store.call(login)
    assert call["status"] == "ERR"
    assert "PermissionError: bad password '<HASHED:" in call["exception"]
    assert "for bob" in call["exception"]
    assert secret not in store.all_text()


def test_secret_in_a_chained_exception_is_scrubbed_from_the_store(store):
    secret = "chained-secret-value-77"

    @monitor("auth")
    def connect(dsn, api_key):
        try:
            raise ConnectionError(f"refused key {api_key}")
        except ConnectionError as exc:
            raise RuntimeError(f"cannot connect with {api_key}") from exc

    with pytest.raises(RuntimeError):
        connect("db", secret)

    text = store.call(connect)["exception"]
    assert "ConnectionError: refused key <HASHED:" in text
    assert "RuntimeError: cannot connect with <HASHED:" in text
    assert secret not in store.all_text()


def test_secret_of_a_sampled_out_call_that_raises_is_scrubbed(store):
    secret = "unsampled-secret-value"

    @monitor("auth", sample=0)
    def login(password):
        raise ValueError(f"rejected {password}")

    with pytest.raises(ValueError):
        login(secret)
    assert "ValueError: rejected <HASHED:" in store.call(login)["exception"]
    assert secret not in store.all_text()


def test_secret_in_an_exception_message_is_scrubbed_even_with_log_inputs_false(store):
    secret = "no-inputs-but-still-secret"

    @monitor("auth", log_inputs=False)
    def login(password):
        raise PermissionError(f"bad password {password}")

    with pytest.raises(PermissionError):
        login(secret)
    assert store.call(login)["status"] == "ERR"
    assert secret not in store.all_text()


def test_mask_of_the_kwargs_name_masks_every_keyword_it_collects(store):
    @monitor("masking", mask=("options",))
    def connect(host, **options):
        return host

    connect("db.local", region="eu-secret-region", tenant="tenant-secret-id")
    values = store.values(store.call(connect))
    assert values["host"] == "'db.local'"
    _marker_hex(values["region"])
    _marker_hex(values["tenant"])


@pytest.mark.parametrize("bad", [("spot", 3), (None,)])
def test_mask_with_a_non_string_name_is_a_type_error_at_decoration(bad):
    with pytest.raises(TypeError, match="mask"):
        monitor("masking", mask=bad)
