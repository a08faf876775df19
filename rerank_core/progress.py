"""Progress reporting without a UI dependency.

Long work in the core takes ``progress: ProgressFn | None`` and calls it as
``progress(done, total, message)``. The app passes a callback that drives ``st.progress``; the
command line passes :func:`tqdm_progress`. A callback may raise :class:`Cancelled` to stop the work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

ProgressFn = Callable[[int, int, str], None]
T = TypeVar("T")


class Cancelled(Exception):
    """Raised by a progress callback to stop long work; the core lets it through."""


def report(progress: ProgressFn | None, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(done, total, message)


@contextmanager
def tqdm_progress(desc: str, total: int | None = None) -> Iterator[ProgressFn]:
    """A ProgressFn writing a tqdm bar to stderr."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total_: int, message: str = "") -> None:
        if bar.total != total_:
            bar.total = total_
        bar.n = done
        if message:
            bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def run_with_bar(work: Callable[[ProgressFn | None], T], desc: str, show: bool = True) -> T:
    """``work(progress)`` with a tqdm bar on stderr, or ``work(None)`` when ``show`` is off."""
    if not show:
        return work(None)
    with tqdm_progress(desc) as bar:
        return work(bar)
