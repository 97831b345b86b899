"""Progress that the CLI and the app both see.

Library code uses `workbench.progress.tqdm` (a `tqdm.auto.tqdm`): in a terminal it is the
usual bar; inside `listen(fn)`, every bar also calls `fn(desc, n, total, postfix)` after each
step, which is how the Streamlit app drives its own progress bars and live loss read-outs.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm.auto import tqdm as _tqdm

Listener = Callable[[str, int, int | None, str], None]
_local = threading.local()


def _listeners() -> list[Listener]:
    if not hasattr(_local, "listeners"):
        _local.listeners = []
    return _local.listeners


@contextmanager
def listen(fn: Listener) -> Iterator[None]:
    """Call `fn(desc, n, total, postfix)` on every progress step in this thread."""
    _listeners().append(fn)
    try:
        yield
    finally:
        _listeners().remove(fn)


def listening() -> bool:
    return bool(_listeners())


class tqdm(_tqdm):  # noqa: N801  (a drop-in for tqdm)
    def __init__(self, *args, **kwargs):
        if listening():  # a listener wants the steps even when the caller asked for no bar
            kwargs["disable"] = False
        super().__init__(*args, **kwargs)

    def _notify(self, n: int | None = None) -> None:
        for fn in list(_listeners()):
            fn(str(self.desc or ""), self.n if n is None else n, self.total, str(self.postfix or ""))

    def update(self, n=1):
        out = super().update(n)
        self._notify()
        return out

    def set_postfix(self, *args, **kwargs):
        super().set_postfix(*args, **kwargs)
        self._notify()

    def __iter__(self):
        i = self.n
        for obj in super().__iter__():
            yield obj
            i += 1
            self._notify(i)
