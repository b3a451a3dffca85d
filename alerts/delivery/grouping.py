"""The group stage: which claimed deliveries go out as one message, and what it says. A
chat's alerts due at once go one by one, or as one digest when there are more than a few (a
pump firing dozens of rules); what a mute held back goes as one summary per destination."""

from __future__ import annotations

from collections.abc import Sequence

from alerts.db.queue import Job
from alerts.delivery.messages import Message, digest, render


def message(job: Job) -> Message:
    """One delivery's alert, rendered."""
    return render(
        kind=job.event_kind,
        rule_name=job.rule_name,
        values=job.values,
        template=job.template,
        rule_id=job.rule_id,
        test=job.test,
        after_gap=job.after_gap,
    )


def mute_summary(jobs: Sequence[Job]) -> Message:
    """What a mute held back, in one message."""
    return digest([message(j) for j in jobs], title=f"🔕 While muted: {len(jobs)} alerts")


def chat_messages(jobs: Sequence[Job], flood_threshold: int) -> list[tuple[list[Job], Message]]:
    """One chat's deliveries due at once as the messages to send, in order, each with the
    deliveries it carries: a mute's summary first, then a digest of more than
    `flood_threshold` alerts, or each alert alone."""
    out: list[tuple[list[Job], Message]] = []
    held = [j for j in jobs if j.held]
    if held:
        out.append((held, mute_summary(held)))
    rest = [j for j in jobs if not j.held]
    if len(rest) > flood_threshold:
        out.append((rest, digest([message(j) for j in rest])))
    else:
        out += [([job], message(job)) for job in rest]
    return out


def apprise_groups(jobs: Sequence[Job]) -> list[list[Job]]:
    """Each delivery alone, except that a mute's held ones go together per destination."""
    groups: list[list[Job]] = []
    held: dict[int | None, list[Job]] = {}
    for job in jobs:
        if job.held:
            held.setdefault(job.destination_id, []).append(job)
        else:
            groups.append([job])
    return groups + list(held.values())
