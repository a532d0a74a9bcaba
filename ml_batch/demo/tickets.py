"""Synthetic support tickets and the queue that resolved each: the multiclass demo (docs/examples/ticket_queue.yaml).

Every ticket is one event (one row of `demo.tickets`) and gets one label, the queue that resolved it, in
`demo.ticket_queues`. `generate` builds both frames from a seed, with no I/O; `seed` (re)creates the two tables
in one transaction:

* ~`rows_per_day` tickets a day over `days` days ending at `end_date`, opened at any hour;
* four features the queue depends on: the message's length, the number of attachments, the account's age and
  whether the customer is on a paid plan (numeric), and the channel it came through (categorical);
* the queue (`billing`, `technical`, `sales` or `other`) drawn from a softmax of the features, so it is
  learnable but noisy: billing tickets come from paid accounts by email, technical ones are long and carry
  attachments, sales ones come from young accounts through chat, the rest are short;
* the queue is recorded `label_delay_days` after the ticket is opened (`resolved_at`), so the last
  `label_delay_days` days have no label yet;
* a shift over the last `shift_days` days: an outage sends more technical tickets through the phone channel,
  so the class mix moves (what monitoring's class-mix drift should see).

The same config always gives the same data. Column names, ranges and categories match the spec.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.demo.source import SCHEMA, DemoDays, check_int, draw, replace_tables

logger = logging.getLogger(__name__)

QUEUES = ("billing", "technical", "sales", "other")
CHANNELS = ("email", "chat", "phone", "web")
SHIFTED_QUEUE = "technical"

_CHANNEL_P_REF = (0.40, 0.25, 0.15, 0.20)
_CHANNEL_P_SHIFT = (0.30, 0.20, 0.35, 0.15)
# Logit of each queue (columns in QUEUES order) per channel; the numeric features add to these.
_CHANNEL_LOGITS = {
    "email": (0.8, 0.0, -0.4, 0.0),
    "chat": (-0.3, 0.2, 0.9, 0.0),
    "phone": (0.3, 0.5, -0.2, 0.0),
    "web": (0.0, 0.3, 0.1, 0.2),
}
_SHIFT_TECHNICAL_LIFT = 1.2
# Logit noise: the queue is not a function of the features (a good model's accuracy is ~0.7, not 1).
_NOISE_SCALE = 0.6

metadata = sa.MetaData(schema=SCHEMA)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("ticket_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("message_length", sa.Double, nullable=False),
    sa.Column("attachments", sa.Integer, nullable=False),
    sa.Column("account_age_days", sa.Double, nullable=False),
    sa.Column("paid_plan", sa.SmallInteger, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Index("ix_tickets_opened_at", "opened_at"),
)

ticket_queues = sa.Table(
    "ticket_queues",
    metadata,
    sa.Column("ticket_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
)

TICKET_COLUMNS = [column.name for column in tickets.columns]
QUEUE_COLUMNS = [column.name for column in ticket_queues.columns]


@dataclass(frozen=True)
class TicketQueueConfig(DemoDays):
    """What to generate; invalid values raise `ConfigError` on construction.

    Attributes:
        end_date: Last day of tickets (inclusive, UTC). The data's "now" is the midnight after it.
        days: Number of days of tickets, ending at `end_date`.
        rows_per_day: Average tickets a day.
        shift_days: The last `shift_days` days carry the outage (0: no shift).
        seed: Seed of `numpy.random.default_rng`; the same config always gives the same data.
        label_delay_days: Days between a ticket and the moment its queue is recorded.
    """

    end_date: datetime.date
    days: int = 40
    rows_per_day: int = 300
    shift_days: int = 7
    seed: int = 42
    label_delay_days: int = 3

    def __post_init__(self) -> None:
        self.check_days()
        check_int("rows_per_day", self.rows_per_day, 1, 1_000_000)


@dataclass(frozen=True)
class TicketSeedSummary:
    """What `seed` loaded."""

    tickets: int
    labels: int
    first_day: datetime.date
    last_day: datetime.date
    shift_start: datetime.date


def generate(config: TicketQueueConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(tickets, ticket_queues)`: the tickets ordered by `opened_at` with sequential ids from 1, and the queue
    of each ticket whose queue is recorded by `config.now` (`resolved_at` = opened_at + label_delay_days)."""
    rng = np.random.default_rng(config.seed)
    opened_at, shifted = _timestamps(rng, config)
    n = len(opened_at)
    channel_p = np.where(shifted[:, None], np.array(_CHANNEL_P_SHIFT), np.array(_CHANNEL_P_REF))
    channel = draw(rng, CHANNELS, channel_p)
    features: dict[str, np.ndarray] = {
        "message_length": np.clip(np.round(rng.lognormal(np.log(400), 0.7, n)), 10, 20_000),
        "attachments": np.clip(rng.poisson(0.6, n), 0, 20).astype(np.int64),
        "account_age_days": np.clip(np.round(rng.exponential(500, n), 1), 0, 10_000),
        "paid_plan": (rng.random(n) < 0.45).astype(np.int16),
        "channel": channel,
    }
    logits = _queue_logits(features, shifted) + rng.gumbel(0, _NOISE_SCALE, (n, len(QUEUES)))
    queue = np.asarray(QUEUES, dtype=object)[logits.argmax(axis=1)]
    frame = pd.DataFrame({"ticket_id": np.arange(1, n + 1, dtype=np.int64), "opened_at": opened_at,
                          **features})[TICKET_COLUMNS]
    resolved_at = opened_at + pd.Timedelta(days=config.label_delay_days)
    known = np.asarray(resolved_at <= pd.Timestamp(config.now))
    labels = pd.DataFrame({"ticket_id": frame["ticket_id"].to_numpy()[known], "queue": queue[known],
                           "resolved_at": resolved_at[known]})[QUEUE_COLUMNS]
    return frame, labels


def seed(engine: sa.Engine, config: TicketQueueConfig) -> TicketSeedSummary:
    """(Re)create `demo.tickets` and `demo.ticket_queues` and load generated data, in one transaction."""
    started = time.perf_counter()
    frame, labels = generate(config)
    replace_tables(engine, metadata, [(tickets, frame), (ticket_queues, labels)])
    logger.info("seeded %d tickets and %d queue labels (%s to %s) in %.1fs", len(frame), len(labels),
                config.first_day, config.end_date, time.perf_counter() - started)
    return TicketSeedSummary(tickets=len(frame), labels=len(labels), first_day=config.first_day,
                             last_day=config.end_date, shift_start=config.shift_start)


def _timestamps(rng: np.random.Generator, config: TicketQueueConfig) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Sorted opening times (UTC, whole seconds, never on midnight) and whether each falls in the shift."""
    days = pd.date_range(config.first_day, periods=config.days, freq="D", tz="UTC")
    counts = np.maximum(rng.poisson(config.rows_per_day, config.days), 1)
    day_index = np.repeat(np.arange(config.days), counts)
    offsets = np.sort(day_index.astype(np.int64) * 86_400 + rng.integers(1, 86_400, len(day_index)))
    shifted = day_index >= config.days - config.shift_days
    return pd.DatetimeIndex(days[0] + pd.to_timedelta(offsets, unit="s")), shifted


def _queue_logits(features: dict[str, np.ndarray], shifted: np.ndarray) -> np.ndarray:
    """(n, 4) logits of the queues, in QUEUES order, from the complete features."""
    length = np.log(features["message_length"] / 400)
    attachments = np.minimum(features["attachments"], 3)
    young = np.exp(-features["account_age_days"] / 120)  # 1 for a new account, ~0 after a year
    paid = features["paid_plan"].astype(float)
    by_channel = np.array([_CHANNEL_LOGITS[c] for c in features["channel"]], dtype=float).reshape(-1, len(QUEUES))
    logits = by_channel + np.column_stack([
        1.2 * paid - 0.3 * length - 0.4,                 # billing
        0.9 * length + 0.8 * attachments - 0.2,          # technical
        2.0 * young - 1.0 * paid - 0.2 * attachments,    # sales
        -0.8 * length + 0.4,                             # other
    ])
    logits[:, QUEUES.index(SHIFTED_QUEUE)] += np.where(shifted, _SHIFT_TECHNICAL_LIFT, 0.0)
    return logits

