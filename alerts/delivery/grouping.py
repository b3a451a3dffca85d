"""The group stage: which claimed deliveries go out as one message, and what it says. A
chat's alerts due at once go one by one, or as one digest when there are more than a few (a
pump firing dozens of rules); what a mute or quiet hours held back goes as one summary per
destination, when they end."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alerts.db.queue import Job
from alerts.db.queue.claims import MUTE, QUIET
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


SUMMARY_LISTS = 5  # a summary lists the newest few alerts it carries, and counts the rest


def mute_summary(jobs: Sequence[Job]) -> Message:
    """What a mute or quiet hours held back, in one message: how many, the newest few."""
    count = f"{len(jobs)} alert{'' if len(jobs) == 1 else 's'}"
    reasons = {QUIET if j.hold_reason == QUIET else MUTE for j in jobs}
    if reasons == {QUIET}:
        title = f"🌙 While quiet: {count}"
    elif reasons == {MUTE}:
        title = f"🔕 While muted: {count}"
    else:
        title = f"🔕 While muted and quiet: {count}"
    newest = sorted(jobs, key=lambda j: (j.fired_at, j.delivery_id), reverse=True)
    return digest(
        [message(j) for j in newest[:SUMMARY_LISTS]], title=title, more=len(jobs) - SUMMARY_LISTS
    )


def chat_messages(jobs: Sequence[Job], flood_threshold: int) -> list[tuple[list[Job], Message]]:
    """One chat's deliveries due at once as the messages to send, in order, each with the
    deliveries it carries: a mute's or quiet hours' summary first, then a digest of more than
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


def at_once_groups(jobs: Sequence[Job], summarised: Callable[[Job], bool]) -> list[list[Job]]:
    """Deliveries that keep no order, as the groups to send: each alone, except that held
    ones (a mute's, quiet hours') go together per destination where `summarised` says their
    destination takes a summary (people do; a webhook's program gets each on its own)."""
    groups: list[list[Job]] = []
    held: dict[int | None, list[Job]] = {}
    for job in jobs:
        if job.held and summarised(job):
            held.setdefault(job.destination_id, []).append(job)
        else:
            groups.append([job])
    return groups + list(held.values())
