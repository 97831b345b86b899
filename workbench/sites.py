"""One string address grammar for model components, built on TransformerLens hook names.

Every addressable thing is a small frozen dataclass deriving from :class:`Site`;
``str(site)`` is its canonical address and ``Site.parse(str(site)) == site``. Parsing is
strict (full match, no whitespace, leading zeros or signs); bad input raises a one-line
``WorkbenchInputError`` (a ``ValueError``) quoting the input and listing the accepted forms. Pure Python, no torch.

    blocks.3.hook_resid_post  HookSite(3, "hook_resid_post")   hook_embed  HookSite(None, ...)
    blocks.3.attn.head.5      HeadSite(3, 5)
    blocks.3.mlp.neuron.17    NeuronSite(3, 17)  (value vector = column 17 of W_out)
    blocks.3.mlp.expert.2     ExpertSite(3, 2)     blocks.3.mlp.router  RouterSite(3)
    blocks.3.hook_resid_post.sae.feature.901   SAEFeatureSite(HookSite(3, ...), 901)
    blocks.3.mlp.W_out | blocks.3.mlp.expert.1.W_gate | embed.W_E   WeightSite(...)
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Callable, ClassVar, Iterable

from .errors import WorkbenchInputError


class SiteKind(StrEnum):
    """The one vocabulary of site kinds: sites, localisations and operators all use it."""

    HOOK = "hook"  # an activation (a residual stream, a component's output)
    HEAD = "head"
    NEURON = "neuron"
    EXPERT = "expert"
    ROUTER = "router"
    SAE_FEATURE = "sae_feature"
    WEIGHT = "weight"

# Hook names relative to ``blocks.{L}.`` (layered) and layer-less global hooks.
HOOK_NAMES: tuple[str, ...] = (
    "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
    "attn.hook_z", "attn.hook_pattern", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "mlp.hook_pre", "mlp.hook_post", "mlp.hook_out", "mlp.gate.hook_out",
)
GLOBAL_HOOKS: tuple[str, ...] = ("hook_embed", "ln_final.hook_normalized")
# Weight names relative to ``blocks.{L}.``, to ``blocks.{L}.mlp.expert.{E}.``, and global.
LAYER_WEIGHTS: tuple[str, ...] = (
    "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O",
    "mlp.W_in", "mlp.W_gate", "mlp.W_out", "mlp.W_router", "ln1.w", "ln2.w",
)
EXPERT_WEIGHTS: tuple[str, ...] = ("W_in", "W_gate", "W_out")
GLOBAL_WEIGHTS: tuple[str, ...] = ("embed.W_E", "unembed.W_U", "ln_final.w")

# Coarse component of a hook/weight name: first matching prefix wins.
_COMPONENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("hook_resid_", "resid"), ("hook_attn_out", "attn"), ("attn.", "attn"),
    ("hook_mlp_out", "mlp"), ("mlp.", "mlp"), ("W_", "mlp"), ("hook_embed", "embed"),
    ("embed.", "embed"), ("unembed.", "unembed"), ("ln", "ln"),
)


def _component_of(name: str) -> str:
    return next(comp for prefix, comp in _COMPONENT_PREFIXES if name.startswith(prefix))


def _index(value: Any, what: str) -> int:
    """Normalise an int-like (anything with ``__index__``, not bool) that must be >= 0."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__") or operator.index(value) < 0:
        raise WorkbenchInputError(f"{what} must be a non-negative integer, got {value!r}")
    return operator.index(value)


class Site:
    """Base of all sites; subclasses provide ``layer`` (int or None) and ``component``.
    Simple ones only declare fields, ``kind``, ``_component`` and ``_template``; fields
    annotated ``int`` / ``int | None`` are validated (and normalised) as indices >= 0."""

    __slots__ = ()
    kind: ClassVar[SiteKind]
    _component: ClassVar[str] = ""
    _template: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) or (f.type in ("int | None", int | None) and value is not None):
                object.__setattr__(self, f.name, _index(value, f"{type(self).__name__}.{f.name}"))

    def __str__(self) -> str:
        return self._template.format_map({f.name: getattr(self, f.name) for f in fields(self)})

    @property
    def component(self) -> str:
        """Coarse granularity shared by localisers: attn/mlp/resid/embed/unembed/ln."""
        return self._component

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "layer")

    def sort_key(self) -> tuple:
        """(layer, kind, indices); embed-side globals sort first, ln_final/unembed last."""
        layer = self.layer  # type: ignore[attr-defined]
        if layer is None:
            layer = -1 if self.component == "embed" else math.inf
        return (layer, self.kind, self._key())

    @classmethod
    def parse(cls, text: str) -> "Site":
        """Parse a canonical address; on a subclass, also require that kind."""
        if not isinstance(text, str):
            raise WorkbenchInputError(f"site address must be a str, got {type(text).__name__} {text!r}; {EXPECTED}")
        for pattern, build in _PARSERS:
            match = pattern.fullmatch(text)
            if match:
                try:
                    site = build(*[int(g) if g.isdigit() else g for g in match.groups()])
                except ValueError as err:  # e.g. an integer too long for int()
                    raise WorkbenchInputError(f"invalid site address {text!r} ({err}); {EXPECTED}") from None
                break
        else:
            raise WorkbenchInputError(f"invalid site address {text!r}; {EXPECTED}")
        if not isinstance(site, cls):
            raise WorkbenchInputError(f"site address {text!r} is a {type(site).__name__}, not a {cls.__name__}")
        return site


@dataclass(frozen=True, slots=True)
class HookSite(Site):
    """A TransformerLens hook point; ``hook`` is the name after ``blocks.{L}.``."""
    layer: int | None
    hook: str
    kind: ClassVar[SiteKind] = SiteKind.HOOK

    def __post_init__(self) -> None:
        Site.__post_init__(self)
        names = GLOBAL_HOOKS if self.layer is None else HOOK_NAMES
        if self.hook not in names:
            raise WorkbenchInputError(f"unknown hook name {self.hook!r} here; accepted: {', '.join(names)}")

    def __str__(self) -> str:
        return self.hook if self.layer is None else f"blocks.{self.layer}.{self.hook}"

    @property
    def component(self) -> str:
        return _component_of(self.hook)

    def _key(self) -> tuple:
        return ((HOOK_NAMES + GLOBAL_HOOKS).index(self.hook),)


@dataclass(frozen=True, slots=True)
class HeadSite(Site):
    layer: int
    head: int
    kind: ClassVar[SiteKind] = SiteKind.HEAD
    _component: ClassVar[str] = "attn"
    _template: ClassVar[str] = "blocks.{layer}.attn.head.{head}"


@dataclass(frozen=True, slots=True)
class NeuronSite(Site):
    """MLP neuron ``index``: its value vector is column ``index`` of the out projection."""
    layer: int
    index: int
    kind: ClassVar[SiteKind] = SiteKind.NEURON
    _component: ClassVar[str] = "mlp"
    _template: ClassVar[str] = "blocks.{layer}.mlp.neuron.{index}"


@dataclass(frozen=True, slots=True)
class ExpertSite(Site):
    layer: int
    expert: int
    kind: ClassVar[SiteKind] = SiteKind.EXPERT
    _component: ClassVar[str] = "mlp"
    _template: ClassVar[str] = "blocks.{layer}.mlp.expert.{expert}"


@dataclass(frozen=True, slots=True)
class RouterSite(Site):
    layer: int
    kind: ClassVar[SiteKind] = SiteKind.ROUTER
    _component: ClassVar[str] = "mlp"
    _template: ClassVar[str] = "blocks.{layer}.mlp.router"


@dataclass(frozen=True, slots=True)
class SAEFeatureSite(Site):
    """Feature ``feature`` of an SAE trained on ``hook``."""
    hook: HookSite
    feature: int
    kind: ClassVar[SiteKind] = SiteKind.SAE_FEATURE
    _template: ClassVar[str] = "{hook}.sae.feature.{feature}"

    def __post_init__(self) -> None:
        if not isinstance(self.hook, HookSite):
            raise WorkbenchInputError(f"SAEFeatureSite.hook must be a HookSite, got {self.hook!r}")
        Site.__post_init__(self)

    @property
    def layer(self) -> int | None:
        return self.hook.layer

    @property
    def component(self) -> str:
        return self.hook.component

    def _key(self) -> tuple:
        return (self.hook.sort_key(), self.feature)


@dataclass(frozen=True, slots=True)
class WeightSite(Site):
    """A weight tensor. ``name`` is relative to ``blocks.{L}.`` (or to
    ``blocks.{L}.mlp.expert.{E}.`` when ``expert`` is set); global when ``layer`` is None."""
    layer: int | None
    name: str
    expert: int | None = None
    kind: ClassVar[SiteKind] = SiteKind.WEIGHT

    def __post_init__(self) -> None:
        Site.__post_init__(self)
        if self.layer is None and self.expert is not None:
            raise WorkbenchInputError(f"WeightSite with expert={self.expert!r} needs a layer")
        names = (GLOBAL_WEIGHTS if self.layer is None
                 else LAYER_WEIGHTS if self.expert is None else EXPERT_WEIGHTS)
        if self.name not in names:
            raise WorkbenchInputError(f"unknown weight name {self.name!r} here; accepted: {', '.join(names)}")

    def __str__(self) -> str:
        expert = "" if self.expert is None else f"mlp.expert.{self.expert}."
        return self.name if self.layer is None else f"blocks.{self.layer}.{expert}{self.name}"

    @property
    def component(self) -> str:
        return _component_of(self.name)

    def _key(self) -> tuple:
        expert = -1 if self.expert is None else self.expert
        return (expert, (LAYER_WEIGHTS + EXPERT_WEIGHTS + GLOBAL_WEIGHTS).index(self.name))


def _alt(names: Iterable[str]) -> str:
    return "|".join(map(re.escape, names))


def _grouped(prefix: str, names: Iterable[str]) -> list[str]:
    """Summarise names as ``prefix+head.a|b`` groups, e.g. blocks.L.attn.hook_z|hook_q."""
    groups: dict[str, list[str]] = {}
    for name in names:
        head, _, leaf = name.rpartition(".")
        groups.setdefault(head + "." if head else "", []).append(leaf)
    return [prefix + head + "|".join(leaves) for head, leaves in groups.items()]


_NUM = r"(?:0|[1-9][0-9]*)"
_INT = f"({_NUM})"
_HOOK = rf"(?:blocks\.{_NUM}\.(?:{_alt(HOOK_NAMES)})|{_alt(GLOBAL_HOOKS)})"
_FORMS: tuple[tuple[str, Callable[..., Site]], ...] = (
    (rf"blocks\.{_INT}\.({_alt(HOOK_NAMES)})", HookSite),
    (rf"({_alt(GLOBAL_HOOKS)})", lambda hook: HookSite(None, hook)),
    (rf"blocks\.{_INT}\.attn\.head\.{_INT}", HeadSite),
    (rf"blocks\.{_INT}\.mlp\.neuron\.{_INT}", NeuronSite),
    (rf"blocks\.{_INT}\.mlp\.expert\.{_INT}", ExpertSite),
    (rf"blocks\.{_INT}\.mlp\.router", RouterSite),
    (rf"({_HOOK})\.sae\.feature\.{_INT}", lambda h, j: SAEFeatureSite(Site.parse(h), j)),
    (rf"blocks\.{_INT}\.({_alt(LAYER_WEIGHTS)})", WeightSite),
    (rf"blocks\.{_INT}\.mlp\.expert\.{_INT}\.({_alt(EXPERT_WEIGHTS)})",
     lambda layer, expert, name: WeightSite(layer, name, expert)),
    (rf"({_alt(GLOBAL_WEIGHTS)})", lambda name: WeightSite(None, name)),
)
_PARSERS = tuple((re.compile(pattern), build) for pattern, build in _FORMS)

#: One-line summary of every accepted form, appended to parse errors.
EXPECTED = "expected one of: " + ", ".join([
    *_grouped("blocks.L.", HOOK_NAMES), *GLOBAL_HOOKS,
    "blocks.L.attn.head.H", "blocks.L.mlp.neuron.J", "blocks.L.mlp.expert.E",
    "blocks.L.mlp.router", "<hook>.sae.feature.J",
    *_grouped("blocks.L.", LAYER_WEIGHTS), *_grouped("blocks.L.mlp.expert.E.", EXPERT_WEIGHTS),
    *GLOBAL_WEIGHTS,
]) + " (L, H, J, E: non-negative integers without leading zeros)"


def parse_many(texts: Iterable[str]) -> list[Site]:
    """Parse each address in ``texts`` (an iterable of str, not a single str)."""
    if isinstance(texts, str):
        raise WorkbenchInputError(f"parse_many expects an iterable of addresses, not the str {texts!r}")
    return [Site.parse(text) for text in texts]


def coarse(site: Site) -> tuple[int | None, str]:
    """(layer, component): the shared coarse granularity used to compare localisers."""
    if not isinstance(site, Site):
        raise WorkbenchInputError(f"coarse() expects a Site, got {type(site).__name__} {site!r}")
    return (site.layer, site.component)  # type: ignore[attr-defined]
