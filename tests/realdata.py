"""Where the real public data sets are (``../shared/realdata``, see its README): not in this
repository (their licences), so the tests that read them exist only where they are found.

Looked for in ``$GRIDONE_REALDATA``, else in ``shared/realdata`` beside the checkout. Where
neither holds them, ``tests/conftest.py`` does not collect the real-data tests (a skipped
test fails a CI run) and says so in the session header.
"""

from __future__ import annotations

import os
from pathlib import Path

from store.settings import PROJECT_ROOT

#: The test modules that read the real data.
MODULES = ("test_load_realdata.py",)


def _find() -> Path | None:
    for candidate in (
        os.environ.get("GRIDONE_REALDATA"),
        PROJECT_ROOT.parent / "shared" / "realdata",
    ):
        if candidate and (Path(candidate) / "beijing").is_dir():
            return Path(candidate)
    return None


REALDATA: Path | None = _find()
