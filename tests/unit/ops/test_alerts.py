"""An alert's identity, state, payload and runbook link (`ml_batch.ops.alerts`), without a database."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert

README = Path(__file__).resolve().parents[3] / "README.md"
DAY = dt.date(2026, 3, 9)


def _github_slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of `markdown` (lower case, punctuation but `-` and `_` dropped,
    spaces to `-`), and every explicit `<a id="...">`."""
    slugs = set(re.findall(r'<a id="([^"]+)"', markdown))
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.MULTILINE):
        text = re.sub(r"<[^>]+>", "", heading).strip().lower()
        slugs.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return slugs


def test_every_kind_is_a_condition_or_an_event() -> None:
    assert set(alerts.CONDITION_KINDS) | set(alerts.EVENT_KINDS) == set(alerts.KINDS)
    assert not set(alerts.CONDITION_KINDS) & set(alerts.EVENT_KINDS)
    assert "out_of_support" in alerts.CONDITION_KINDS and "run_failure" in alerts.EVENT_KINDS


def test_a_condition_alert_is_open_and_an_event_is_an_event() -> None:
    drift = Alert(kind="dataset_drift", severity="warning", message="m", model_name="toy", partition_date=DAY)
    rollback = Alert(kind="rollback", severity="warning", message="m", model_name="toy")
    assert (drift.state, rollback.state) == ("open", "event")


def test_a_condition_alert_needs_its_model() -> None:
    with pytest.raises(ValueError, match="alert kind 'out_of_support' is a condition: it needs a model_name"):
        Alert(kind="out_of_support", severity="warning", message="m", subject="temp")


def test_only_a_condition_can_be_resolved() -> None:
    with pytest.raises(ValueError, match=r"alert kind 'rollback' is an event: it cannot be resolved"):
        Alert(kind="rollback", severity="info", message="m", model_name="toy", resolved=True)


def test_the_payload_carries_state_subject_and_runbook_and_the_text_ends_with_the_runbook() -> None:
    alert = Alert(kind="out_of_support", severity="warning", model_name="bikes", partition_date=DAY,
                  subject="temp", message="temp: 97% of rows above the training maximum 62.1 on 2026-03-09")
    payload = alert.as_payload()
    assert payload["state"] == "open" and payload["subject"] == "temp"
    assert payload["runbook"] == "README.md#alert-out_of_support"
    assert payload["text"] == ("[ml-batch] WARNING out_of_support bikes: temp: 97% of rows above the training "
                               "maximum 62.1 on 2026-03-09 | what to do: README.md#alert-out_of_support")


def test_a_resolved_notice_says_resolved() -> None:
    notice = Alert(kind="dataset_drift", severity="info", model_name="credit_default", partition_date=DAY,
                   resolved=True, message="no dataset drift on 2026-03-09 (open since 2026-03-01, 7 days)")
    payload = notice.as_payload()
    assert payload["state"] == "resolved"
    assert payload["text"].startswith("[ml-batch] RESOLVED dataset_drift credit_default: no dataset drift on "
                                      "2026-03-09 (open since 2026-03-01, 7 days)")


def test_the_runbook_base_can_be_a_published_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(alerts.RUNBOOK_URL_ENV, "https://git.example.com/ml-batch/blob/main/README.md")
    assert alerts.runbook("late_rows") == "https://git.example.com/ml-batch/blob/main/README.md#alert-late_rows"


def test_a_runbook_of_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"alert kind 'drift': expected one of \('run_failure', "):
        alerts.runbook("drift")


@pytest.mark.parametrize("kind", alerts.KINDS)
def test_every_kind_has_a_what_to_do_section_in_the_readme(kind: str) -> None:
    anchor = alerts.runbook(kind).split("#", 1)[1]
    assert anchor in _github_slugs(README.read_text()), f"README.md has no heading with the anchor #{anchor}"
