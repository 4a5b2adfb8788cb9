"""What access control changes in what pages show (no Streamlit): the special-group counts
of a grid as the panel shows them (masked under 5, issue 7)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from store.access import mask_count


def special_group_table(
    groups: Mapping[str, int], *, text: Callable[[str], str], figure: str, value: str
) -> pd.DataFrame:
    """One row per special group: its name (``au_sg_<column>``) and its count as shown
    (:func:`store.access.mask_count`: ``"<5"`` under 5, zero included)."""
    return pd.DataFrame(
        {
            figure: [text(f"au_sg_{k}") for k in groups],
            value: [mask_count(n) for n in groups.values()],
        }
    )
