"""Scoped forward hooks on HF modules: everything added inside a `HookSession` is removed
when it closes, and nothing else is touched (the test suite checks no hook is left behind).

Activations are addressed as (module path, "input" | "output", last-axis slice), exactly what
`models.arch.resolve` returns for a site. `read` records an activation; `patch` replaces it
with `fn(activation) -> activation` (the function sees the full tensor of that module io).
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

_OFFSET = contextvars.ContextVar("workbench_position_offset", default=0)


def at_sequence_start() -> bool:
    """Whether the forward now running starts at position 0 (BOS). False while a scorer feeds
    continuation tokens after a cached prompt (`continuing`): a hook that leaves "the first
    position" alone must then treat every position as a later one."""
    return _OFFSET.get() == 0


@contextmanager
def continuing(offset: int) -> Iterator[None]:
    """Forwards inside start at absolute position `offset` (a KV-cached prefix before them)."""
    token = _OFFSET.set(offset)
    try:
        yield
    finally:
        _OFFSET.reset(token)


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


class HookSession:
    def __init__(self, model: nn.Module):
        self.model = model
        self._handles: list = []

    def _module(self, path: str) -> nn.Module:
        return self.model.get_submodule(path)

    def patch(self, path: str, io: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        module = self._module(path)
        if io == "input":
            def pre(_m, args, kwargs):
                if args:
                    return (fn(args[0]), *args[1:]), kwargs
                key = next(iter(kwargs))
                return args, {**kwargs, key: fn(kwargs[key])}
            self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        elif io == "output":
            def post(_m, _args, out):
                return _replace_first(out, fn(_first(out)))
            self._handles.append(module.register_forward_hook(post))
        else:
            raise ValueError(f"io {io!r}: expected 'input' or 'output'")

    def replace_output(self, path: str, fn: Callable) -> None:
        """`fn(module, output) -> new output` (the whole output, tuples included)."""
        self._handles.append(self._module(path).register_forward_hook(lambda m, _a, out: fn(m, out)))

    def rewrite(self, path: str, fn: Callable) -> None:
        """`fn(module, args, output) -> new output`: an output that depends on the inputs."""
        self._handles.append(self._module(path).register_forward_hook(fn))

    def read(self, path: str, io: str, store: dict, key, detach: bool = True) -> None:
        """After each forward, `store[key]` is the activation (a view, not a copy)."""
        def grab(x):
            store[key] = x.detach() if detach else x
            return x
        self.patch(path, io, grab)

    def close(self) -> None:
        while self._handles:
            self._handles.pop().remove()


@contextmanager
def hook_session(model: nn.Module) -> Iterator[HookSession]:
    session = HookSession(model)
    try:
        yield session
    finally:
        session.close()
