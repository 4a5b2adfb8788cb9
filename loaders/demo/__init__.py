"""Deterministic demo data for Grid One-Map: a fictional street (or district) with grids,
buildings, housing, staff, places, incidents, patrol tracks and work logs.

>>> from loaders.demo import generate
>>> data = generate(seed=1, scale="street")   # doctest: +SKIP
>>> for name, frame in data.tables(): ...      # doctest: +SKIP

:func:`generate` is pure (no database, no clock): the same seed and scale give the same
data. Settings live in ``data/demo.toml``.
"""

from loaders.demo.generate import generate, load_profile
from loaders.demo.model import TABLE_ORDER, DemoData

__all__ = ["TABLE_ORDER", "DemoData", "generate", "load_profile"]
