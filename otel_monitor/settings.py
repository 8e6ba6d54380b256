"""Every otel-monitor setting, declared once: the fields of ``Settings`` below.

Each field is one row of the table: its name, type and default, plus (through
``setting(...)``) its environment variable, the rule a value must meet with the message
a ``ConfigError`` gives, one line of help, and whether it is a secret. From those rows
come ``load_settings`` (arguments, then the environment, then defaults), the type and
rule checks, ``configure()``'s docstring, ``otel-monitor config``, README's settings
table (``settings_table_markdown``) and ``.env.example`` (``env_example``); a test fails
when either copy drifts.

A ``.env`` file (``./.env``, or the path in ``OTEL_MONITOR_ENV_FILE``) is a source too:
``configure()`` arguments > the process environment > ``.env`` > defaults. It is read
with python-dotenv's ``dotenv_values`` (imported only when a ``.env`` exists), and its
``OTEL_MONITOR_*`` values never go into ``os.environ``. The standard ``OTEL_*`` variables
(service name, resource attributes, OTLP exporter) are left to the OpenTelemetry SDK,
which reads only ``os.environ``: so ``load_settings`` copies those of ``.env`` that the
process environment does not set into ``os.environ`` (never overriding one that is set),
before ``configure()`` creates the tracer provider. A ``.env`` with permissions wider
than 0600 is warned about (it holds secrets: ``chmod 600 .env``).
"""
from __future__ import annotations

import logging
import os
import stat
import textwrap
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping
from urllib.parse import urlsplit

from exporters.errors import ConfigError

from .schedules import parse_silence, parse_window
from .webhooks import parse_webhooks

Source = Literal["argument", "environment", ".env", "default"]
ENV_FILE_VARIABLE = "OTEL_MONITOR_ENV_FILE"
_log = logging.getLogger("otel_monitor")
SECRET_SHOWN = "•••"
_SPEC = "otel_monitor.setting"  # the key of the field metadata that ``setting`` fills


@dataclass(frozen=True)
class Rule:
    """What a value must meet (None, where allowed, is not checked) and the message."""
    ok: Callable[[Any], bool]
    message: str


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f"must be >= {low:g}")


POSITIVE = Rule(lambda v: v > 0, "must be > 0")
NOT_EMPTY = Rule(bool, "must not be empty")
HTTP_URL = Rule(lambda v: v.startswith(("http://", "https://")), "must be an http(s) URL")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def _semicolon_list(text: str) -> tuple[str, ...]:
    """Windows and silences hold commas (``Mon,Wed``, a reason): ``;`` separates them."""
    return tuple(u.strip() for u in text.split(";") if u.strip())


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "0") else float(text)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def setting(default: Any, env: str, help: str, *, rule: Rule | None = None,
            secret: bool = False, parse: Callable[[str], Any] | None = None) -> Any:
    """A ``Settings`` field: ``default``, read from the environment variable ``env``,
    checked by ``rule``; ``parse`` turns the variable's text into a value when the type's
    own parser does not do. A secret stays out of ``repr`` and error messages."""
    return field(default=default, repr=not secret,
                 metadata={_SPEC: dict(env=env, help=help, rule=rule, secret=secret,
                                       parse=parse)})


@dataclass(frozen=True)
class Settings:
    # -- the store
    db_path: str = setting(
        os.path.join("logs", "core_logs.db"), "OTEL_MONITOR_DB",
        "the SQLite store that calls are written to and the UI reads; a relative path is "
        "resolved once, against the directory configure() runs in", rule=NOT_EMPTY)
    retention_hours: float = setting(
        6.0, "OTEL_MONITOR_RETENTION_HOURS", "calls older than this are purged",
        rule=POSITIVE)
    purge_interval_s: float = setting(
        60.0, "OTEL_MONITOR_PURGE_INTERVAL_S", "how often the purge runs", rule=POSITIVE)
    max_db_mb: float | None = setting(
        None, "OTEL_MONITOR_MAX_DB_MB",
        "size cap: past it the oldest calls go first (`0` or none in the environment: no cap)",
        rule=Rule(lambda v: v > 0, "must be > 0 or None"), parse=_optional_float)
    archive_enabled: bool = setting(
        True, "OTEL_MONITOR_ARCHIVE_ENABLED",
        "archive calls to Parquet before the purge deletes them (off: the purge deletes "
        "for good)")
    archive_dir: str | None = setting(
        None, "OTEL_MONITOR_ARCHIVE_DIR",
        "the archive's directory; none: `<store>-archive` beside the store", rule=NOT_EMPTY)
    archive_url: str | None = setting(
        None, "OTEL_MONITOR_ARCHIVE_URL",
        "`s3://bucket/prefix`: archive to an S3-compatible bucket (credentials from the "
        "standard AWS variables; `archive_dir` is then the local spool)", rule=NOT_EMPTY)
    archive_s3_endpoint: str | None = setting(
        None, "OTEL_MONITOR_ARCHIVE_S3_ENDPOINT",
        "the bucket's endpoint URL (none: `AWS_ENDPOINT_URL`, else AWS)", rule=NOT_EMPTY)
    archive_s3_region: str | None = setting(
        None, "OTEL_MONITOR_ARCHIVE_S3_REGION",
        "the bucket's region (none: `AWS_REGION`)", rule=NOT_EMPTY)
    archive_retention_days: float = setting(
        30.0, "OTEL_MONITOR_ARCHIVE_RETENTION_DAYS",
        "archived calls are kept this long, then their files deleted", rule=POSITIVE)
    archive_spool_max_bytes: int = setting(
        1024 * 2**20, "OTEL_MONITOR_ARCHIVE_SPOOL_MAX_BYTES",
        "largest local spool of archive files waiting for a remote destination",
        rule=at_least(1))
    # -- recording
    max_value_length: int = setting(
        1000, "OTEL_MONITOR_MAX_VALUE_LENGTH",
        "longest `repr()` stored for a value; a longer one is cut, with a marker",
        rule=at_least(16))
    capture_budget_ms: float = setting(
        1.0, "OTEL_MONITOR_CAPTURE_BUDGET_MS",
        "capture time per call: a value whose `repr()` takes longer is stored as "
        "`<repr over budget: TYPE>` and values of its type are not `repr`'d again (the first "
        "one costs its repr once); once a call's values together take it, its other values "
        "are stored as `<repr skipped, capture budget spent: TYPE>`",
        rule=POSITIVE)
    yield_values: int = setting(
        10, "OTEL_MONITOR_YIELD_VALUES",
        "a generator's first values yielded kept as OUTPUT rows `yield[0]`, `yield[1]`, … "
        "(with `yield_count`, the number of all); 0: the count only", rule=at_least(0))
    sample_target_per_s: float = setting(
        200.0, "OTEL_MONITOR_SAMPLE_TARGET_PER_S",
        'calls kept per second by each function decorated with `sample="auto"` that '
        "names no `target_per_s` of its own (its failures and calls slower than its "
        "p99 are kept on top when they exceed it)", rule=POSITIVE)
    queue_size: int = setting(
        100_000, "OTEL_MONITOR_QUEUE_SIZE", "calls held in memory before drops",
        rule=at_least(1))
    flush_interval_s: float = setting(
        0.2, "OTEL_MONITOR_FLUSH_INTERVAL_S", "how often the writer moves queued calls to SQLite",
        rule=Rule(lambda v: 0 < v <= 60, "must be in (0, 60]"))
    writer_process: bool = setting(
        True, "OTEL_MONITOR_WRITER_PROCESS",
        "write from a child process of its own (flattening and SQLite off the application's "
        "GIL); off: a writer thread in the application. A process forked from the "
        "application, or one whose Python cannot start a child, writes in itself")
    store_wait_s: float = setting(
        0.0, "OTEL_MONITOR_STORE_WAIT_S",
        "how long `configure()` may wait for a store another process holds locked; past it "
        "(at once by default) calls queue and the writer opens the store once it is free",
        rule=Rule(lambda v: 0 <= v <= 3600, "must be in [0, 3600]"))
    mask_key: str | None = setting(
        None, "OTEL_MONITOR_MASK_KEY",
        "key of the hash that masks values; none: a key file `<db_path>.key` (mode 0600) "
        "made once", rule=Rule(lambda v: len(v.encode()) >= 16, "must be at least 16 bytes"),
        secret=True)
    # -- OTLP dual-write
    otlp_endpoint: str | None = setting(
        None, "OTEL_MONITOR_OTLP_ENDPOINT",
        "also send spans over OTLP here; none: the SDK's `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`")
    otlp_protocol: str | None = setting(
        None, "OTEL_MONITOR_OTLP_PROTOCOL",
        "`grpc` or `http/protobuf`; none: `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`, "
        "else http/protobuf",
        rule=Rule(lambda v: v in ("grpc", "http/protobuf"), "must be 'grpc' or 'http/protobuf'"))
    # -- alerts (see otel_monitor/alerts/)
    alert_webhooks: tuple[str, ...] = setting(
        (), "OTEL_MONITOR_WEBHOOKS",
        "Slack and PagerDuty webhook URLs, optionally prefixed `slack+` or `pagerduty+`",
        secret=True)  # a Slack hook's path is its password
    pagerduty_routing_key: str | None = setting(
        None, "OTEL_MONITOR_PAGERDUTY_ROUTING_KEY",
        "Events API v2 routing key of a PagerDuty webhook without its own "
        "`#routing_key=`", secret=True)
    ui_url: str = setting(
        "http://127.0.0.1:8050", "OTEL_MONITOR_UI_URL", "where links in alerts open the UI",
        rule=HTTP_URL)
    alert_exceptions: bool = setting(
        True, "OTEL_MONITOR_ALERT_EXCEPTIONS", "alert on a call that raises")
    alert_ignore_exceptions: tuple[str, ...] = setting(
        (), "OTEL_MONITOR_ALERT_IGNORE_EXCEPTIONS",
        "exception types never alerted on: module.Class, or the class name alone")
    alert_feed_lag: bool = setting(
        True, "OTEL_MONITOR_ALERT_FEED_LAG", "alert on a feed gone stale, and on its recovery")
    feed_stale_after_s: float = setting(
        10.0, "OTEL_MONITOR_FEED_STALE_AFTER_S",
        "a feed is stale past this long without a tick (unless it sets its own)",
        rule=POSITIVE)
    backpressure_depth: int = setting(
        5000, "OTEL_MONITOR_BACKPRESSURE_DEPTH", "queue depth that raises the backpressure banner",
        rule=at_least(1))
    backpressure_for_s: float = setting(
        30.0, "OTEL_MONITOR_BACKPRESSURE_FOR_S",
        "how long the queue stays that deep before the banner",
        rule=at_least(0))
    alert_backpressure: bool = setting(
        False, "OTEL_MONITOR_ALERT_BACKPRESSURE", "also post backpressure to the webhooks")
    alert_self_health: bool = setting(
        True, "OTEL_MONITOR_ALERT_SELF_HEALTH",
        "also post otel-monitor's own health to the webhooks: writer lag > 5 s, drops, "
        "store near its cap, retention behind, failing webhooks")
    alert_group_window_s: float = setting(
        60.0, "OTEL_MONITOR_ALERT_GROUP_WINDOW_S",
        "identical alerts within this window are sent once, with a count", rule=POSITIVE)
    alert_maintenance_windows: tuple[str, ...] = setting(
        (), "OTEL_MONITOR_ALERT_MAINTENANCE_WINDOWS",
        "weekly windows in which no alert is posted (each recorded `suppressed` with its "
        "window), e.g. `Sat 06:00-12:00 Europe/London`, `Mon-Fri 22:00-23:00`; "
        "`;`-separated in the environment", parse=_semicolon_list)
    alert_silences: tuple[str, ...] = setting(
        (), "OTEL_MONITOR_ALERT_SILENCES",
        "one-off silences by `process=`, `group=` (an error's fingerprint), `feed=` or `slo=` "
        "(names or fnmatch patterns), with `until=` an ISO time and a `reason=`, e.g. "
        "`process=pricing.bs until=2026-12-08T07:00Z reason=\"known bug\"`; suppressed "
        "alerts are recorded `suppressed`; `;`-separated in the environment",
        parse=_semicolon_list)
    alert_queue_size: int = setting(
        1000, "OTEL_MONITOR_ALERT_QUEUE_SIZE",
        "pending alerts per webhook; past it the oldest is dropped", rule=at_least(1))
    alert_timeout_s: float = setting(
        5.0, "OTEL_MONITOR_ALERT_TIMEOUT_S", "timeout of one webhook post", rule=POSITIVE)
    alert_max_attempts: int = setting(
        5, "OTEL_MONITOR_ALERT_MAX_ATTEMPTS", "posts of one alert before it is given up",
        rule=at_least(1))
    alert_backoff_s: float = setting(
        0.5, "OTEL_MONITOR_ALERT_BACKOFF_S", "first retry delay, doubled at each retry",
        rule=at_least(0))
    alert_spike_multiple: float = setting(
        10.0, "OTEL_MONITOR_ALERT_SPIKE_MULTIPLE",
        "an error group spikes when its failures per minute over 5 minutes reach this "
        "multiple of its rate over the hour before", rule=POSITIVE)
    alert_spike_min_count: int = setting(
        10, "OTEL_MONITOR_ALERT_SPIKE_MIN_COUNT",
        "and at least this many failures in those 5 minutes", rule=at_least(1))
    error_group_retention_days: float = setting(
        30.0, "OTEL_MONITOR_ERROR_GROUP_RETENTION_DAYS",
        "an error group is kept this long after its last failure (calls keep "
        "`retention_hours`)", rule=POSITIVE)
    # -- SLOs (otel_monitor/slo.py) and the rollups they read
    slo_file: str | None = setting(
        None, "OTEL_MONITOR_SLO_FILE",
        "a YAML file of SLOs (`slos:` each with name, process / process_group / service, "
        "kind `availability` or `latency`, objective %, threshold_ms, window); the process "
        "that loads it (or registers `otel_monitor.slo(...)`) evaluates their burn-rate "
        "alerts, `serve` shows them", rule=NOT_EMPTY)
    slo_eval_interval_s: float = setting(
        5.0, "OTEL_MONITOR_SLO_EVAL_INTERVAL_S",
        "how often the alert engine evaluates the burn rates of the registered SLOs",
        rule=Rule(lambda v: 0 < v <= 3600, "must be in (0, 3600]"))
    rollup_retention_days: float = setting(
        30.0, "OTEL_MONITOR_ROLLUP_RETENTION_DAYS",
        "per-minute call rollups (calls, errors, latency buckets per process and service: "
        "what SLIs and burn rates read) are kept this long", rule=POSITIVE)
    # -- the UI's status ribbon (amber from, red from)
    ribbon_queue_amber: int = setting(
        1_000, "OTEL_MONITOR_RIBBON_QUEUE_AMBER",
        "UI ribbon: the QueueDepth badge turns amber at this many queued calls",
        rule=at_least(1))
    ribbon_queue_red: int = setting(
        5_000, "OTEL_MONITOR_RIBBON_QUEUE_RED",
        "UI ribbon: the QueueDepth badge turns red at this many queued calls",
        rule=at_least(1))
    ribbon_write_lag_amber_ms: float = setting(
        500.0, "OTEL_MONITOR_RIBBON_WRITE_LAG_AMBER_MS",
        "UI ribbon: the SQLiteWriteLag badge turns amber at this lag", rule=POSITIVE)
    ribbon_write_lag_red_ms: float = setting(
        2_000.0, "OTEL_MONITOR_RIBBON_WRITE_LAG_RED_MS",
        "UI ribbon: the SQLiteWriteLag badge turns red at this lag", rule=POSITIVE)
    ribbon_feed_amber_factor: float = setting(
        1.5, "OTEL_MONITOR_RIBBON_FEED_AMBER_FACTOR",
        "UI ribbon: LastFeedUpdate turns amber past this many of the feed's own intervals",
        rule=POSITIVE)
    ribbon_feed_red_factor: float = setting(
        2.0, "OTEL_MONITOR_RIBBON_FEED_RED_FACTOR",
        "UI ribbon: LastFeedUpdate turns red (the feed is stale in the graph) past this many "
        "of its intervals", rule=POSITIVE)
    # -- the UI's graph: a process node's colour by its share of failed calls in the window
    graph_error_rate_amber: float = setting(
        0.0, "OTEL_MONITOR_GRAPH_ERROR_RATE_AMBER",
        "UI graph: a process node turns amber above this share of failed calls in the "
        "window (0: at its first failure; green at or below it)",
        rule=Rule(lambda v: 0 <= v < 1, "must be >= 0 and < 1"))
    graph_error_rate_red: float = setting(
        0.05, "OTEL_MONITOR_GRAPH_ERROR_RATE_RED",
        "UI graph: a process node turns red at this share of failed calls in the window",
        rule=Rule(lambda v: 0 < v <= 1, "must be > 0 and <= 1"))
    # -- `otel-monitor serve`
    ui_token: str | None = setting(
        None, "OTEL_MONITOR_UI_TOKEN",
        "`serve`: the bearer token the UI, the API and its docs require; none: open",
        secret=True)
    ingest_token: str | None = setting(
        None, "OTEL_MONITOR_INGEST_TOKEN",
        "`serve`: a write-only token for OTLP senders to `/v1/traces`; none: the UI token",
        secret=True)
    ingest_max_bytes: int = setting(
        8 * 2**20, "OTEL_MONITOR_INGEST_MAX_BYTES",
        "`serve`: largest OTLP request body, as sent and decompressed", rule=at_least(1))

    @property
    def archive_path(self) -> str | None:
        """Where the archive goes: ``archive_dir``, else ``<store>-archive`` beside the
        store; None when archiving is off."""
        if not self.archive_enabled:
            return None
        if self.archive_dir:
            return self.archive_dir
        root, _ = os.path.splitext(self.db_path)
        return root + "-archive"

    @property
    def max_db_bytes(self) -> int | None:
        """``max_db_mb`` in bytes, as the SQLite exporter takes it."""
        return int(self.max_db_mb * 2**20) if self.max_db_mb else None

    def __post_init__(self) -> None:
        for spec in SETTINGS.values():
            spec.check(getattr(self, spec.name))
        # The one rule across settings: a PagerDuty URL needs a routing key.
        parse_webhooks(self.alert_webhooks, self.pagerduty_routing_key)
        for text in self.alert_maintenance_windows:  # ConfigError naming the bad part
            _named("alert_maintenance_windows", parse_window, text)
        for text in self.alert_silences:
            _named("alert_silences", parse_silence, text)


def _named(name: str, parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ConfigError as exc:
        raise ConfigError(f"otel-monitor setting {name}: {exc}") from None


# -- the table, from the fields ----------------------------------------------------------------

_NUMBER = (int, float)
# A field's type (None aside) -> (the Python types a value may have, the environment's parser)
_KINDS: dict[Any, tuple[tuple[type, ...], Callable[[str], Any]]] = {
    str: ((str,), str), int: ((int,), int), float: (_NUMBER, float), bool: ((bool,), _flag),
    tuple[str, ...]: ((tuple,), _comma_list),
}
_DESCRIBED = {str: "text", int: "whole number", float: "number", bool: "flag",
              tuple[str, ...]: "list (comma-separated in the environment)"}


@dataclass(frozen=True)
class Setting:
    """One row of the table (see ``Settings``' fields)."""
    name: str
    type: Any                      # str, int, float, bool or tuple[str, ...]
    optional: bool                 # None is a value (the default is None)
    default: Any
    env: str
    help: str
    rule: Rule | None
    secret: bool
    parse: Callable[[str], Any]    # the environment variable's text -> a value

    @property
    def kinds(self) -> tuple[type, ...]:
        return _KINDS[self.type][0]

    @property
    def accepts(self) -> str:
        """What a value may be, in words: ``number, must be > 0``."""
        text = _DESCRIBED[self.type] + (" or none" if self.optional else "")
        return f"{text}, {self.rule.message}" if self.rule else text

    def _named(self, value: Any) -> str:
        return self.name if self.secret else f"{self.name}={value!r}"

    def check(self, value: Any) -> None:
        """``ConfigError`` naming the setting (not a secret's value) unless ``value``
        has the right type and meets the rule."""
        if value is None and self.optional:
            return
        if (isinstance(value, bool) and bool not in self.kinds) \
                or not isinstance(value, self.kinds):
            names = " or ".join(t.__name__ for t in self.kinds)
            raise ConfigError(f"otel-monitor setting {self._named(value)}: must be {names}")
        if self.type == tuple[str, ...]:
            for item in value:
                if not isinstance(item, str):
                    raise ConfigError(f"otel-monitor setting {self.name}: {item!r} must be a "
                                      "string")
        if self.rule is not None and not self.rule.ok(value):
            raise ConfigError(f"otel-monitor setting {self._named(value)}: {self.rule.message}")

    def from_text(self, raw: str, given_as: str | None = None) -> Any:
        """The value of the text ``raw``, as the environment variable gives it;
        ``ConfigError`` naming where it was given (by default, the variable)."""
        try:
            return self.parse(raw)
        except ValueError as exc:
            given_as = given_as or f"environment variable {self.env}"
            shown = given_as if self.secret else f"{given_as}={raw!r}"
            raise ConfigError(f"{shown}: {exc}") from None

    def coerce(self, value: Any) -> Any:
        """An argument as the field holds it: a path as text, a list (or a comma-separated
        string) as a tuple. Anything else is left for ``check`` to judge."""
        if self.type is str and isinstance(value, os.PathLike):
            return os.fspath(value)
        if self.type == tuple[str, ...] and isinstance(value, Iterable):
            return self.parse(value) if isinstance(value, str) else tuple(value)
        return value

    def show(self, value: Any) -> str:
        """The value for people: a secret as ``•••`` and its last 4 characters (only
        ``•••`` when it is shorter than 12), a list comma-separated, None as ``none``."""
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return ", ".join(self.show(v) for v in value) if value else "none"
        if self.secret:
            if "://" in value:  # a webhook URL: its path (and any user:password) is secret
                return _origin(value)
            return SECRET_SHOWN + (value[-4:] if len(value) >= 12 else "")
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def _origin(url: str) -> str:
    """``slack+https://hooks.slack.com/services/T/B/X`` as ``slack+https://hooks.slack.com/•••``."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}/{SECRET_SHOWN}"


def _table() -> dict[str, Setting]:
    hints = typing.get_type_hints(Settings)
    table = {}
    for f in fields(Settings):
        declared = dict(f.metadata[_SPEC])
        kind, optional = hints[f.name], False
        if isinstance(kind, types.UnionType):  # X | None
            (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
            optional = True
        if kind not in _KINDS:
            raise TypeError(f"setting {f.name}: no reader for the type {kind}")
        declared["parse"] = declared["parse"] or _KINDS[kind][1]
        table[f.name] = Setting(name=f.name, type=kind, optional=optional, default=f.default,
                                **declared)
    return table


SETTINGS: dict[str, Setting] = _table()


# -- reading ---------------------------------------------------------------------------------


def _environment(spec: Setting, environ: Mapping[str, str]) -> tuple[bool, Any]:
    raw = environ.get(spec.env)
    if raw is None or raw == "":  # set but empty counts as unset
        return False, None
    return True, spec.from_text(raw)


def env_file_path(environ: Mapping[str, str] | None = None) -> str:
    """Where the ``.env`` file is looked for: ``$OTEL_MONITOR_ENV_FILE``, else ``./.env``."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_FILE_VARIABLE) or ".env"


# path -> ((mtime_ns, size, mode), values): a reader per request (the UI token) does
# not parse the file each time, and the permission warning is given once per change.
_ENV_FILES: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}


def read_env_file(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The variables a ``.env`` file sets (none when it does not exist), without
    touching ``os.environ``; a variable written without a value counts as unset."""
    path = os.fspath(path if path is not None else env_file_path())
    try:
        st = os.stat(path)
    except OSError:
        return {}
    key = (st.st_mtime_ns, st.st_size, st.st_mode)
    cached = _ENV_FILES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    if stat.S_IMODE(st.st_mode) & ~0o600:
        _log.warning("otel-monitor: %s has permissions wider than 0600 (%o) and may hold "
                     "secrets; chmod 600 it", path, stat.S_IMODE(st.st_mode))
    from dotenv import dotenv_values  # only when there is a file to read

    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    _ENV_FILES[path] = (key, values)
    return values


def _standard_otel_from_env_file(env_file: Mapping[str, str]) -> None:
    """The SDK reads ``OTEL_*`` from ``os.environ`` only: give it those of ``.env`` that
    the process environment does not set (the process environment still wins)."""
    for name, value in env_file.items():
        if name.startswith("OTEL_") and not name.startswith("OTEL_MONITOR_") \
                and name not in os.environ:
            os.environ[name] = value


def resolve_settings(overrides: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None,
                     env_file: Mapping[str, str] | None = None
                     ) -> tuple[Settings, dict[str, Source]]:
    """``load_settings``, and where each value came from. ``environ`` defaults to
    ``os.environ``; ``env_file`` (the ``.env`` variables) to the file ``environ`` names,
    ``./.env`` by default."""
    if env_file is None:
        env_file = read_env_file(env_file_path(environ))
        if environ is None:
            _standard_otel_from_env_file(env_file)
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"unknown otel-monitor setting(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(SETTINGS))}")
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {name: "default" for name in SETTINGS}
    for name, spec in SETTINGS.items():
        if overrides.get(name) is not None:  # an argument of None means "not given"
            values[name], sources[name] = spec.coerce(overrides[name]), "argument"
            continue
        found, value = _environment(spec, environ)
        if found:
            values[name], sources[name] = value, "environment"
            continue
        found, value = _from_env_file(spec, env_file)
        if found:
            values[name], sources[name] = value, ".env"
    return Settings(**values), sources


def _from_env_file(spec: Setting, env_file: Mapping[str, str]) -> tuple[bool, Any]:
    raw = env_file.get(spec.env)
    if raw is None or raw == "":
        return False, None
    return True, spec.from_text(raw, given_as=f"{spec.env} in .env")


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from explicit overrides, then the environment (``os.environ`` unless
    given), then the ``.env`` file, then defaults; ``ConfigError`` naming the first bad
    one."""
    return resolve_settings(overrides, environ)[0]


def read_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment, else ``.env``, else its default, parsed and
    checked on its own: a reader of the UI token, say, does not fail for a bad alert
    variable it never uses."""
    spec = SETTINGS[name]
    found, value = _environment(spec, os.environ if environ is None else environ)
    if not found:
        found, value = _from_env_file(spec, read_env_file(env_file_path(environ)))
    if not found:
        return spec.default
    spec.check(value)
    return value


# -- for people: the docstring, the CLI, README -------------------------------------------------


def settings_help(indent: str = "    ", width: int = 88) -> str:
    """A paragraph per setting: name (environment variable; default): help."""
    return "\n".join(textwrap.fill(f"{s.name} ({s.env}; default {s.show(s.default)}): "
                                   f"{s.help.replace('`', '')}", width,
                                   initial_indent=indent, subsequent_indent=indent * 2)
                     for s in SETTINGS.values())


def settings_table_markdown() -> str:
    """README's settings table, one row per setting."""
    rows = ["| setting | environment | default | accepts | what it does |",
            "|---|---|---|---|---|"]
    for s in SETTINGS.values():
        default = s.show(s.default)
        rows.append(f"| `{s.name}` | `{s.env}` | "
                    f"{default if default == 'none' else f'`{default}`'} | "
                    f"{s.accepts}{' (secret)' if s.secret else ''} | {s.help} |")
    return "\n".join(rows) + "\n"


def env_example() -> str:
    """``.env.example``: every setting, commented out at its default, with its help."""
    lines = ["# otel-monitor settings: copy to .env (chmod 600 .env), uncomment what you set.",
             "# Precedence: configure() arguments > process environment > .env > defaults.",
             f"# Another path: {ENV_FILE_VARIABLE}=path/to/file. Standard OTEL_* variables",
             "# (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...) may be set here too.",
             "# Generated by otel_monitor.settings.env_example(); a test keeps it current."]
    for s in SETTINGS.values():
        default = s.default
        if isinstance(default, tuple):
            text = ",".join(default)
        elif default is None:
            text = ""
        elif isinstance(default, bool):
            text = "1" if default else "0"
        else:
            text = f"{default:g}" if isinstance(default, float) else str(default)
        lines += ["", *textwrap.wrap(f"{s.help.replace('`', '')} ({s.accepts}"
                                     f"{'; secret' if s.secret else ''})", 86,
                                     initial_indent="# ", subsequent_indent="# "),
                  f"# {s.env}={text}"]
    return "\n".join(lines) + "\n"
