"""deploy/monitoring: the alerting rules are well-formed Prometheus rules, the dashboard a
well-formed Grafana dashboard, and every metric (and label) either queries is one the code
exports, or RabbitMQ's plugin does. `promtool check rules` runs too where promtool is."""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import datastore_common.metrics
import datastore_gateway.metrics

REPO = Path(__file__).parents[3]
MONITORING = REPO / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RABBITMQ_CONF = REPO / "deploy" / "compose" / "rabbitmq" / "rabbitmq.conf"

#: RabbitMQ's own (rabbitmq_prometheus plugin, per-object metrics on): metric -> its labels.
RABBITMQ_METRICS = {"rabbitmq_queue_messages": {"vhost", "queue"}}
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {
    # aggregations, functions and keywords used in PromQL
    *("sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev"),
    *("rate", "irate", "increase", "delta", "deriv", "time", "histogram_quantile", "absent"),
    *("max_over_time", "min_over_time", "avg_over_time", "clamp_min", "clamp_max", "abs"),
    *("and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"),
    *("group_left", "group_right", "inf", "nan"),
}
#: The conditions an operator is told of (issue 14, "Alerts and a dashboard").
REQUIRED_ALERTS = {
    "DatastoreDeadLetterQueueNotEmpty",
    "DatastoreRetryingTooLong",
    "DatastoreNoPollCycle",
    "DatastorePeerErrorRatio",
    "DatastoreCredentialExpiresSoon",
    "DatastoreCredentialRefused",
    "DatastoreMessagesRefused",
}


@cache
def exported() -> dict[str, set[str]]:
    """Every sample name the services export (counters' ``_total``, histograms' ``_bucket``
    ...), with its labels; the processes' own (``process_*``) included."""
    assert datastore_common.metrics.UP and datastore_gateway.metrics.HTTP_REQUESTS  # registered
    names: dict[str, set[str]] = {}
    for name, collector in REGISTRY._names_to_collectors.items():
        labels = set(getattr(collector, "_labelnames", ()))
        if name.endswith("_bucket"):
            labels.add("le")
        names[name] = labels
    return {**names, **RABBITMQ_METRICS}


def queried(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """The metrics an expression names, each with the labels its matchers use; and the labels
    of its by/without/on/ignoring/group_* clauses."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana's variables
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    metrics: dict[str, set[str]] = {}
    for name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", text):
        metrics.setdefault(name, set()).update(re.findall(r"(\w+)\s*[=!]~?", matchers))
    text = re.sub(r"\{[^}]*\}", "", text)
    grouping: set[str] = set()
    clause = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for labels in re.findall(clause, text):
        grouping |= {label.strip() for label in labels.split(",") if label.strip()}
    text = re.sub(clause, " ", text)
    for word in re.findall(r"[a-zA-Z_:][\w:]*", text):
        if word.lower() not in PROMQL_WORDS:
            metrics.setdefault(word, set())
    return metrics, grouping


def unknown_in(expr: str) -> list[str]:
    """What an expression names that nothing exports: '<metric>' or '<metric>{<label>}'."""
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    known = exported()
    metrics, grouping = queried(expr)
    wrong = [name for name in metrics if name not in known]
    for name, labels in metrics.items():
        wrong += [f"{name}{{{label}}}" for label in labels - known.get(name, set()) - TARGET_LABELS]
    usable = set().union(*(known.get(name, set()) for name in metrics)) | TARGET_LABELS
    wrong += [f"by ({label})" for label in grouping - usable]
    return wrong


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_the_check_finds_a_metric_or_label_nothing_exports() -> None:
    assert (
        unknown_in('sum by (queue) (rate(datastore_messages_handled_total{outcome="ok"}[5m]))')
        == []
    )
    assert unknown_in("rate(datastore_messages_handeld_total[5m])") == [
        "datastore_messages_handeld_total"
    ]
    assert unknown_in('datastore_up{queue="x"}') == ["datastore_up{queue}"]
    assert unknown_in("sum by (peer) (datastore_retry_oldest_age_seconds)") == ["by (peer)"]


def test_rules_file_has_the_form_prometheus_loads() -> None:
    loaded = yaml.safe_load(ALERTS.read_text())
    assert set(loaded) == {"groups"}
    for group in loaded["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Datastore[A-Z]\w+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])


def test_every_condition_an_operator_needs_has_an_alert() -> None:
    assert {rule["alert"] for rule in rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_alerts_query_only_what_is_exported(rule: dict[str, Any]) -> None:
    assert unknown_in(rule["expr"]) == []
    # Templates in annotations name only labels the expression keeps.
    _, grouping = queried(rule["expr"])
    for text in rule["annotations"].values():
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in grouping, f"{rule['alert']}: {label} is aggregated away"


def test_rabbitmq_exports_what_the_alerts_read_of_it() -> None:
    used = {name for rule in rules() for name in queried(rule["expr"])[0]}
    if used & set(RABBITMQ_METRICS):
        assert "prometheus.return_per_object_metrics = true" in RABBITMQ_CONF.read_text()


PROMTOOL = REPO / "var" / "tools" / "promtool"  # make setup unpacks it (deploy/local/setup.sh)


@pytest.fixture
def _promtool_unpacked() -> None:
    """A missing promtool fails loudly: `make setup` unpacks it from Debian's package."""
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} is missing: run make setup")


needs_promtool = pytest.mark.usefixtures("_promtool_unpacked")


def promtool(*args: str, cwd: Path | None = None) -> None:
    result = subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    promtool("check", "rules", str(ALERTS))


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query as a recording rule: promtool parses it as Prometheus would."""
    queries = [
        {"record": f"datastore:dashboard:{panel['id']}_{target['refId']}", "expr": expr}
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        for expr in [re.sub(r"\$\{?\w+\}?", ".+", target["expr"])]
    ]
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}))
    promtool("check", "rules", str(rules_file))


#: (what happens, series and their values a minute apart, when, alert, labels of each firing)
SCENARIOS: list[tuple[str, dict[str, str], str, str, list[dict[str, str]]]] = [
    (
        "a message in a DLQ",
        {'rabbitmq_queue_messages{queue="dlq.fts-submitter",vhost="/"}': "0 1 1 1"},
        "3m",
        "DatastoreDeadLetterQueueNotEmpty",
        [{"queue": "dlq.fts-submitter", "severity": "warning"}],
    ),
    (
        "messages waiting in a work queue only",
        {'rabbitmq_queue_messages{queue="fts-submitter",vhost="/"}': "50 50 50 50"},
        "3m",
        "DatastoreDeadLetterQueueNotEmpty",
        [],
    ),
    (
        "a message dead-lettered",
        {'datastore_messages_handled_total{queue="q",outcome="dead_lettered"}': "0 0 1"},
        "2m",
        "DatastoreMessageDeadLettered",
        [{"queue": "q", "severity": "warning"}],
    ),
    (
        "retried for 40 minutes",
        {'datastore_retry_oldest_age_seconds{queue="fts-submitter"}': "0+60x50"},
        "45m",
        "DatastoreRetryingTooLong",
        [{"queue": "fts-submitter", "severity": "warning"}],
    ),
    (
        "no batch polled for 20 minutes while jobs wait",
        {
            "datastore_poll_last_success_timestamp_seconds": "60x40",
            'rabbitmq_queue_messages{queue="status-poller.delay.30s",vhost="/"}': "10x40",
        },
        "30m",
        "DatastoreNoPollCycle",
        [{"severity": "critical"}],
    ),
    (
        "no batch polled for 20 minutes with no job to follow",
        {
            "datastore_poll_last_success_timestamp_seconds": "60x40",
            'rabbitmq_queue_messages{queue="status-poller.delay.30s",vhost="/"}': "0x40",
        },
        "30m",
        "DatastoreNoPollCycle",
        [],
    ),
    (
        "FTS answers none of the poller's batches",
        {
            'datastore_poll_batches_total{outcome="fts_unavailable"}': "0+2x20",
            'datastore_poll_batches_total{outcome="ok"}': "5x20",
        },
        "20m",
        "DatastorePollerFtsUnavailable",
        [{"severity": "warning"}],
    ),
    (
        "a third of ICAT's calls fail",
        {
            'datastore_peer_calls_total{peer="icat",outcome="ok"}': "0+20x30",
            'datastore_peer_calls_total{peer="icat",outcome="error"}': "0+10x30",
            'datastore_peer_calls_total{peer="fts3",outcome="ok"}': "0+20x30",
        },
        "25m",
        "DatastorePeerErrorRatio",
        [{"peer": "icat", "severity": "warning"}],
    ),
    (
        "the certificate expires in 3 days",
        {'datastore_credential_expiry_timestamp_seconds{credential="fts3_x509"}': "259200"},
        "0m",
        "DatastoreCredentialExpiresSoon",
        [{"credential": "fts3_x509", "severity": "warning"}],
    ),
    (
        "the certificate expires in 30 days",
        {'datastore_credential_expiry_timestamp_seconds{credential="fts3_x509"}': "2592000"},
        "0m",
        "DatastoreCredentialExpiresSoon",
        [],
    ),
    (
        "ICAT refuses the functional login",
        {'datastore_credential_failures_total{queue="icat-writer.archive"}': "0 1 2"},
        "2m",
        "DatastoreCredentialRefused",
        [{"queue": "icat-writer.archive", "severity": "critical"}],
    ),
    (
        "a forged message refused",
        {'datastore_messages_refused_total{queue="fts-submitter",reason="sender"}': "0 0 1"},
        "2m",
        "DatastoreMessagesRefused",
        [{"queue": "fts-submitter", "reason": "sender", "severity": "critical"}],
    ),
]


@needs_promtool
def test_alerts_fire_on_their_condition_only(tmp_path: Path) -> None:
    """promtool evaluates each alert on made-up series (annotations left out: their text is
    for people)."""
    loaded = yaml.safe_load(ALERTS.read_text())
    for group in loaded["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(loaded))
    tests = [
        {
            "name": what,
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "alert_rule_test": [
                {
                    "eval_time": when,
                    "alertname": alert,
                    "exp_alerts": [{"exp_labels": labels} for labels in firing],
                }
            ],
        }
        for what, series, when, alert, firing in SCENARIOS
    ]
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["alerts.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    promtool("test", "rules", "tests.yaml", cwd=tmp_path)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_dashboard_has_the_form_grafana_imports() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"] for v in board["templating"]["list"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"] + target["datasource"]["uid"]))
            assert used <= variables, panel["title"]


def test_dashboard_queries_only_what_is_exported() -> None:
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            assert unknown_in(target["expr"]) == [], panel["title"]


def test_dashboard_shows_the_main_figures() -> None:
    shown = {
        name
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        for name in queried(target["expr"])[0]
    }
    assert {
        "datastore_gateway_archive_requests_total",
        "datastore_messages_handled_total",
        "datastore_retry_oldest_age_seconds",
        "datastore_peer_calls_total",
        "datastore_poll_batches_total",
        "datastore_credential_expiry_timestamp_seconds",
        "rabbitmq_queue_messages",
    } <= shown
