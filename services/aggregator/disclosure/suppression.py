"""Secondary suppression (rule 7): no ward aggregate may reveal a single withheld unit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Set

from .bands import round_to_base

__all__ = ["CellId", "WardKey", "secondary_suppression"]

CellId = tuple[str, str]  # (unit_id, category)
WardKey = tuple[str, str]  # (ward_code, category)


def secondary_suppression(
    noisy: Mapping[CellId, int],
    shown: Set[CellId],
    ward_of: Mapping[str, str],
    rounding_base: int,
) -> tuple[set[CellId], dict[WardKey, int]]:
    """The DfE/OpenSAFELY rule over each ward and category.

    A ward total is the sum of all its units' noisy counts, withheld ones included. If exactly one
    unit is withheld, total minus the published units would bound that one unit alone, so the
    next-smallest published unit is withheld too. A ward where a single unit stays withheld even
    so (it has no other unit) gets no total. Returns the extra cells to withhold and the rounded
    ward totals that are safe to keep.
    """
    groups: dict[WardKey, list[CellId]] = defaultdict(list)
    for cell in noisy:
        groups[(ward_of[cell[0]], cell[1])].append(cell)
    suppressed: set[CellId] = set()
    totals: dict[WardKey, int] = {}
    for ward_key, cells in groups.items():
        hidden = [c for c in cells if c not in shown]
        visible = sorted((c for c in cells if c in shown), key=lambda c: (noisy[c], c))
        if len(hidden) == 1 and visible:
            suppressed.add(visible[0])
            hidden.append(visible[0])
        if len(hidden) != 1:
            totals[ward_key] = round_to_base(sum(noisy[c] for c in cells), rounding_base)
    return suppressed, totals
