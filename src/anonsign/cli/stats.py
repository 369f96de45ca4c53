"""``anonsign stats``: is the service under attack, and are signers getting through?

Reads the counts the serving workers keep (anonsign.stats: per petition, in ten-minute
steps, nothing per request) and the signatures waiting in the database for the next
batch, and prints them by window. It reads the same store the server writes: run it on
the server's host with the server's environment (for ``memory://``), or anywhere that
reaches the same Redis.
"""

from __future__ import annotations

import json
import time

import click

from anonsign.config import STATS_OFF, load_settings
from anonsign.errors import AnonsignError
from anonsign.stats import BUCKET_SECONDS, WINDOWS, Counts, StatsUnavailable, open_store

OUTCOMES = ("accepted", "limited", "shed")


class StatsError(AnonsignError):
    """The stats cannot be shown (off, or their store cannot be reached)."""


@click.command("stats")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def stats(slug: str | None, as_json: bool) -> None:
    """Sign posts accepted, limited (429) and shed (503), by petition, over the last
    10 minutes, hour and day; and how many signatures wait for the next batch.

    Counts are kept in ten-minute steps for a day, in memory (tmpfs, or Redis with
    ANONSIGN_STATS_STORAGE_URI): never a record of a request. Refused forms (replayed,
    too quick) are counted nowhere. The waiting signatures are in the encrypted
    database: unlock first.
    """
    from anonsign.instance import InstanceLocked
    from anonsign.service import Service

    settings = load_settings()
    if settings.stats_storage_uri == STATS_OFF:
        raise StatsError("Operator stats are off (ANONSIGN_STATS_STORAGE_URI=off).")
    try:
        store = open_store(settings)
    except StatsUnavailable as exc:
        raise StatsError(f"Operator stats are off: {exc}") from None
    assert store is not None
    try:
        service = Service.open(settings)
    except InstanceLocked:
        raise InstanceLocked(
            "The instance is locked, so the waiting signatures cannot be counted: run "
            "`anonsign unlock` first."
        ) from None
    try:
        summaries = service.summaries()
    finally:
        service.close_connections()
    if slug is not None:
        summaries = [s for s in summaries if s.petition.slug == slug]
        if not summaries:
            raise StatsError(f"There is no petition {slug!r}; `anonsign petition list` shows them.")
    now = time.time()
    try:
        kept = store.read([s.petition.slug for s in summaries], now)
    except Exception as exc:  # a store that cannot be read is one line, not a traceback
        raise StatsError(
            f"The stats in {store.description} cannot be read ({type(exc).__name__})."
        ) from None

    report: dict[str, dict[str, object]] = {}
    totals = {name: Counts() for name, _seconds in WINDOWS}
    waiting_total = 0
    for summary in summaries:
        windows = {name: kept[summary.petition.slug].window(sec, now) for name, sec in WINDOWS}
        for name, counts in windows.items():
            totals[name].add(counts)
        waiting_total += summary.waiting
        report[summary.petition.slug] = {
            "state": summary.petition.state.value,
            "waiting": summary.waiting,
            "windows": {name: counts.as_dict() for name, counts in windows.items()},
        }
    if as_json:
        click.echo(
            json.dumps(
                {
                    "step_seconds": BUCKET_SECONDS,
                    "store": store.description,
                    "petitions": report,
                    "all": {
                        "waiting": waiting_total,
                        "windows": {name: c.as_dict() for name, c in totals.items()},
                    },
                },
                indent=2,
            )
        )
        return
    _print_table(report, totals, waiting_total, store.description, show_all=slug is None)


def _print_table(
    report: dict[str, dict[str, object]],
    totals: dict[str, Counts],
    waiting_total: int,
    where: str,
    *,
    show_all: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table

    if not report:
        click.echo("No petitions yet. Create one with `anonsign petition create`.")
        return
    from rich.table import Column

    table = Table(
        "petition",
        "window",
        *(Column(name, justify="right") for name in (*OUTCOMES, "waiting")),
    )
    rows = list(report.items())
    if show_all and len(rows) > 1:
        rows.append(
            (
                "all petitions",
                {
                    "waiting": waiting_total,
                    "windows": {name: c.as_dict() for name, c in totals.items()},
                },
            )
        )
    for slug, entry in rows:
        windows = entry["windows"]
        assert isinstance(windows, dict)
        for index, (name, counts) in enumerate(windows.items()):
            table.add_row(
                slug if index == 0 else "",
                name,
                *(str(counts[o]) for o in OUTCOMES),
                str(entry["waiting"]) if index == 0 else "",
                end_section=index == len(windows) - 1,
            )
    Console().print(table)
    click.echo(
        f"Counted in {BUCKET_SECONDS // 60}-minute steps (a window may reach one step further "
        f"back), from {where}.\n"
        "limited: 429 (a rate limit); shed: 503 (hashing full, or the limiter's storage "
        "unreachable);\nwaiting: signatures not yet in the public log."
    )
