"""The ``datasets`` library's progress bars only on long work.

datasets draws a bar for every cast, map and filter, however small: loading sklearn:digits printed four
"Casting the dataset" bars for under 2,000 rows each. zoo shows its own bars for the long steps (the image
check, the store build); datasets' bars are kept for splits of ``LONG_WORK_ROWS`` rows or more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

LONG_WORK_ROWS = 20_000


@contextlib.contextmanager
def datasets_progress(rows: int | None) -> Iterator[None]:
    """datasets' progress bars on for ``rows >= LONG_WORK_ROWS`` (or unknown size: None), off otherwise;
    the previous setting is restored afterwards."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    show = rows is None or rows >= LONG_WORK_ROWS
    if show != was_enabled:
        (ds_logging.enable_progress_bar if show else ds_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if show != was_enabled:
            (ds_logging.enable_progress_bar if was_enabled else ds_logging.disable_progress_bar)()
