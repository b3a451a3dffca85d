"""What the engine produces: a rule that fired, with every value a message needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Hit:
    """One firing of one rule. `values` are display strings (decimals as plain digits);
    `dedup_key` names the occurrence, so the same one is recorded once per rule."""

    rule_id: int
    user_id: int
    kind: str
    symbol: str | None
    values: dict[str, str]
    fired_at: datetime
    once: bool
    after_gap: bool = False
    dedup_key: str | None = None
    price_source: str | None = field(default=None, compare=False)
    # What the rule's stored `state` becomes with this hit (a re-arm wait), if anything.
    rule_state: dict[str, object] | None = field(default=None, compare=False)
