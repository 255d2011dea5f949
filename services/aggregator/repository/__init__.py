"""All of the aggregator's SQL (asyncpg), batched: one statement per table per batch, never per event.

One module per table group; callers import the package (`from . import repository as repo`).
"""

from __future__ import annotations

from typing import Final

from .cells import (
    cell_counts,
    clear_cells,
    dirty_cells,
    lock_rows,
    mark_dirty,
    read_cells,
    save_cells,
    signal_rows,
    withdrawn_cells,
)
from .offsets import StaleOffsets, claim_offsets, insert_offsets, load_offsets
from .outbox import CHANNEL as OUTBOX_CHANNEL
from .outbox import claim_outbox, delete_outbox, insert_dead_letters
from .published import load_previous, needs, write_changes
from .releases import (
    latest_quarter,
    list_releases,
    load_ledger,
    load_noise,
    load_ward_totals,
    lock_releases,
    quarter_done,
    release_exists,
    released_months,
    save_quarter,
    save_release,
)
from .signals import apply_delta, lock_areas, place_stats, reset_state, rows, snapshot, try_lock_areas
from .withheld import (
    clear_withheld,
    forget_withheld,
    list_withheld,
    record_withheld,
    record_withheld_counts,
    withheld_summary,
)

# Every connection of the aggregator's pools: its place counts hash a large part of the state in one
# join, in memory rather than in temporary files (PostgreSQL's default work_mem is 4 MB; measured,
# the refresh's join spilled). Sent when a connection opens: a `SET LOCAL` in each counting
# transaction, as before, was one more round trip per batch on the live path.
SESSION_SETTINGS: Final = {"work_mem": "64MB"}

__all__ = [
    "OUTBOX_CHANNEL",
    "SESSION_SETTINGS",
    "StaleOffsets",
    "apply_delta",
    "cell_counts",
    "claim_offsets",
    "claim_outbox",
    "clear_cells",
    "clear_withheld",
    "delete_outbox",
    "dirty_cells",
    "forget_withheld",
    "insert_dead_letters",
    "insert_offsets",
    "latest_quarter",
    "list_releases",
    "list_withheld",
    "load_ledger",
    "load_noise",
    "load_offsets",
    "load_previous",
    "load_ward_totals",
    "lock_areas",
    "lock_releases",
    "lock_rows",
    "mark_dirty",
    "needs",
    "place_stats",
    "quarter_done",
    "read_cells",
    "record_withheld",
    "record_withheld_counts",
    "release_exists",
    "released_months",
    "reset_state",
    "rows",
    "save_cells",
    "save_quarter",
    "save_release",
    "signal_rows",
    "snapshot",
    "try_lock_areas",
    "withdrawn_cells",
    "withheld_summary",
    "write_changes",
]
