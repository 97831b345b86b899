"""Tests for workbench.sites: the one string address grammar for model components."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.sites import (
    EXPECTED, EXPERT_WEIGHTS, GLOBAL_HOOKS, GLOBAL_WEIGHTS, HOOK_NAMES, LAYER_WEIGHTS,
    ExpertSite, HeadSite, HookSite, NeuronSite, RouterSite, SAEFeatureSite, Site, WeightSite,
    coarse, parse_many,
)

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------- strategies
idx = st.one_of(st.integers(0, 64), st.integers(0, 10**12))
hook_sites = st.one_of(
    st.builds(HookSite, idx, st.sampled_from(HOOK_NAMES)),
    st.builds(HookSite, st.none(), st.sampled_from(GLOBAL_HOOKS)),
)
weight_sites = st.one_of(
    st.builds(WeightSite, idx, st.sampled_from(LAYER_WEIGHTS)),
    st.builds(WeightSite, idx, st.sampled_from(EXPERT_WEIGHTS), idx),
    st.builds(WeightSite, st.none(), st.sampled_from(GLOBAL_WEIGHTS)),
)
sites = st.one_of(
    hook_sites,
    st.builds(HeadSite, idx, idx),
    st.builds(NeuronSite, idx, idx),
    st.builds(ExpertSite, idx, idx),
    st.builds(RouterSite, idx),
    st.builds(SAEFeatureSite, hook_sites, idx),
    weight_sites,
)
# Text biased towards the grammar's alphabet so mutations/garbage get near valid forms.
alphabet = st.sampled_from(list("blocks.attnmlpheadneurnexpertoursaefuWQKVOingw_0123456789 -\n") + ["é", "٣", "\x00"])
grammarish = st.lists(
    st.one_of(alphabet, st.sampled_from(["blocks.", ".attn", ".mlp", ".hook_", ".sae.feature.", ".W_", "01", "-1"])),
    max_size=12,
).map("".join)


def _parses_exactly_or_value_error(text: object) -> None:
    try:
        site = Site.parse(text)  # type: ignore[arg-type]
    except ValueError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(site, Site)
    assert str(site) == text


# ---------------------------------------------------------------- properties
@given(sites)
def test_roundtrip(site: Site) -> None:
    text = str(site)
    assert Site.parse(text) == site
    assert str(Site.parse(text)) == text
    assert type(site).parse(text) == site
    assert hash(Site.parse(text)) == hash(site)


@given(sites)
def test_layer_and_coarse_are_consistent(site: Site) -> None:
    layer, component = coarse(site)
    assert layer == site.layer  # type: ignore[attr-defined]
    assert component == site.component
    assert component in {"attn", "mlp", "resid", "embed", "unembed", "ln"}
    if layer is not None:
        assert str(site).startswith(f"blocks.{layer}.")


@given(st.lists(sites, max_size=20))
def test_sort_key_orders_any_mix_of_kinds(items: list[Site]) -> None:
    ordered = sorted(items, key=Site.sort_key)
    assert sorted(ordered, key=Site.sort_key) == ordered
    assert sorted(map(str, ordered)) == sorted(map(str, items))


@given(st.text())
def test_random_text_parses_exactly_or_raises_value_error(text: str) -> None:
    _parses_exactly_or_value_error(text)


@given(grammarish)
def test_grammar_like_text_parses_exactly_or_raises_value_error(text: str) -> None:
    _parses_exactly_or_value_error(text)


@settings(max_examples=500)
@given(sites, st.data())
def test_mutated_addresses_parse_exactly_or_raise_value_error(site: Site, data: st.DataObject) -> None:
    text = str(site)
    op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    i = data.draw(st.integers(0, len(text) - (op != "insert")))
    char = data.draw(st.one_of(alphabet, st.characters()))
    mutated = {
        "insert": text[:i] + char + text[i:],
        "delete": text[:i] + text[i + 1:],
        "replace": text[:i] + char + text[i + 1:],
    }[op]
    _parses_exactly_or_value_error(mutated)


# ---------------------------------------------------------------- bad inputs
BAD = [
    "", " ", " blocks.1.hook_resid_post", "blocks.1.hook_resid_post ", "blocks.1.hook_resid_post\n",
    "blocks.-1.attn.head.2", "blocks.01.attn.head.2", "blocks.1.attn.head.02", "blocks.1.attn.head",
    "blocks.1.attn.head.", "blocks.1.attn.head.2.", "blocks..attn.head.2", "blocks.1.mlp.neuron.x",
    "blocks.1.mlp.neuron.1.5", "blocks.1.mlp.neuron.٣", "blocks.1.hook_resid_post.sae.feature.",
    "blocks.1.hook_resid_post.sae.feature.01", "blocks.1.attn.head.2.sae.feature.3",
    "blocks.1.mlp.router.sae.feature.3", "blocks.1.mlp.W_out.sae.feature.3",
    "blocks.1.hook_resid_post.sae.feature.1.sae.feature.2", "blocks.1.mlp.W_foo", "blocks.1.hook_nonsense",
    "blocks.1.hook_embed", "hook_resid_post", "mlp.W_out", "blocks.1.embed.W_E", "embed.W_e",
    "blocks.1.mlp.expert.2.W_router", "blocks.1.mlp.expert.2.mlp.W_in", "BLOCKS.1.hook_resid_post",
    "blocks.1", "blocks", "head.3", "blocks.1.attn.head.2.W_Q", "blocks.1.mlp.gate", "ln1.w",
    "blocks.1.mlp.router.0", "blocks.1.mlp.expert.-1", "blocks.1e3.attn.head.2", "blocks.+1.attn.head.2",
    None, 3, 1.5, b"blocks.1.hook_resid_post", ["blocks.1.hook_resid_post"], HeadSite(1, 2),
]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_input_raises_one_line_value_error(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        Site.parse(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) in message
    assert "expected one of" in message
    assert "\n" not in message
    if not isinstance(bad, str):
        assert type(bad).__name__ in message


def test_expected_summary_lists_every_form() -> None:
    assert "\n" not in EXPECTED
    for form in ["blocks.L.attn.head.H", "blocks.L.mlp.neuron.J", "blocks.L.mlp.expert.E",
                 "blocks.L.mlp.router", "<hook>.sae.feature.J", "blocks.L.hook_resid_pre|",
                 "blocks.L.attn.W_Q|W_K|W_V|W_O", "blocks.L.mlp.expert.E.W_in|W_gate|W_out",
                 "blocks.L.mlp.gate.hook_out", *GLOBAL_HOOKS, *GLOBAL_WEIGHTS]:
        assert form in EXPECTED
    for name in HOOK_NAMES + LAYER_WEIGHTS + EXPERT_WEIGHTS:
        assert name.rpartition(".")[2] in EXPECTED


def test_integer_too_long_for_int_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        Site.parse("blocks." + "9" * 5000 + ".mlp.router")


def test_subclass_parse_requires_its_kind() -> None:
    assert HeadSite.parse("blocks.1.attn.head.2") == HeadSite(1, 2)
    with pytest.raises(ValueError, match="RouterSite, not a HeadSite"):
        HeadSite.parse("blocks.1.mlp.router")


@pytest.mark.parametrize("make", [
    lambda: HeadSite(-1, 0), lambda: HeadSite(0, -3), lambda: HeadSite(True, 0), lambda: HeadSite(1.0, 0),
    lambda: HeadSite("1", 0), lambda: NeuronSite(None, 0), lambda: RouterSite(None),
    lambda: HookSite(None, "hook_resid_post"), lambda: HookSite(1, "hook_embed"), lambda: HookSite(1, "blocks.1.hook_z"),
    lambda: SAEFeatureSite("blocks.1.hook_resid_post", 3), lambda: SAEFeatureSite(HeadSite(1, 2), 3),
    lambda: SAEFeatureSite(HookSite(1, "hook_resid_post"), -1), lambda: WeightSite(1, "mlp.W_foo"),
    lambda: WeightSite(None, "mlp.W_out"), lambda: WeightSite(1, "embed.W_E"), lambda: WeightSite(None, "W_in", 0),
    lambda: WeightSite(1, "mlp.W_in", 0), lambda: WeightSite(1, "W_in"), lambda: WeightSite(1, "W_in", -2),
])
def test_constructor_validation_raises_value_error(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_int_like_indices_are_normalised_and_sites_are_frozen() -> None:
    class Idx:
        def __index__(self) -> int:
            return 4
    site = NeuronSite(Idx(), 7)  # type: ignore[arg-type]
    assert site == NeuronSite(4, 7) and type(site.layer) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.layer = 5  # type: ignore[misc]


# ---------------------------------------------------------------- explicit examples
EXAMPLES = [
    ("blocks.0.hook_resid_pre", HookSite(0, "hook_resid_pre"), 0, "resid"),
    ("blocks.3.hook_resid_mid", HookSite(3, "hook_resid_mid"), 3, "resid"),
    ("blocks.3.hook_resid_post", HookSite(3, "hook_resid_post"), 3, "resid"),
    ("blocks.2.hook_attn_out", HookSite(2, "hook_attn_out"), 2, "attn"),
    ("blocks.2.hook_mlp_out", HookSite(2, "hook_mlp_out"), 2, "mlp"),
    ("blocks.4.attn.hook_z", HookSite(4, "attn.hook_z"), 4, "attn"),
    ("blocks.4.attn.hook_pattern", HookSite(4, "attn.hook_pattern"), 4, "attn"),
    ("blocks.4.attn.hook_q", HookSite(4, "attn.hook_q"), 4, "attn"),
    ("blocks.4.attn.hook_k", HookSite(4, "attn.hook_k"), 4, "attn"),
    ("blocks.4.attn.hook_v", HookSite(4, "attn.hook_v"), 4, "attn"),
    ("blocks.5.mlp.hook_pre", HookSite(5, "mlp.hook_pre"), 5, "mlp"),
    ("blocks.5.mlp.hook_post", HookSite(5, "mlp.hook_post"), 5, "mlp"),
    ("blocks.5.mlp.hook_out", HookSite(5, "mlp.hook_out"), 5, "mlp"),
    ("blocks.5.mlp.gate.hook_out", HookSite(5, "mlp.gate.hook_out"), 5, "mlp"),
    ("hook_embed", HookSite(None, "hook_embed"), None, "embed"),
    ("ln_final.hook_normalized", HookSite(None, "ln_final.hook_normalized"), None, "ln"),
    ("blocks.1.attn.head.2", HeadSite(1, 2), 1, "attn"),
    ("blocks.10.mlp.neuron.3071", NeuronSite(10, 3071), 10, "mlp"),
    ("blocks.7.mlp.expert.0", ExpertSite(7, 0), 7, "mlp"),
    ("blocks.7.mlp.router", RouterSite(7), 7, "mlp"),
    ("blocks.3.hook_resid_post.sae.feature.901",
     SAEFeatureSite(HookSite(3, "hook_resid_post"), 901), 3, "resid"),
    ("blocks.6.attn.hook_z.sae.feature.0", SAEFeatureSite(HookSite(6, "attn.hook_z"), 0), 6, "attn"),
    ("blocks.6.mlp.hook_post.sae.feature.12", SAEFeatureSite(HookSite(6, "mlp.hook_post"), 12), 6, "mlp"),
    ("hook_embed.sae.feature.5", SAEFeatureSite(HookSite(None, "hook_embed"), 5), None, "embed"),
    ("blocks.3.attn.W_Q", WeightSite(3, "attn.W_Q"), 3, "attn"),
    ("blocks.3.attn.W_K", WeightSite(3, "attn.W_K"), 3, "attn"),
    ("blocks.3.attn.W_V", WeightSite(3, "attn.W_V"), 3, "attn"),
    ("blocks.3.attn.W_O", WeightSite(3, "attn.W_O"), 3, "attn"),
    ("blocks.3.mlp.W_in", WeightSite(3, "mlp.W_in"), 3, "mlp"),
    ("blocks.3.mlp.W_gate", WeightSite(3, "mlp.W_gate"), 3, "mlp"),
    ("blocks.3.mlp.W_out", WeightSite(3, "mlp.W_out"), 3, "mlp"),
    ("blocks.3.mlp.W_router", WeightSite(3, "mlp.W_router"), 3, "mlp"),
    ("blocks.3.ln1.w", WeightSite(3, "ln1.w"), 3, "ln"),
    ("blocks.3.ln2.w", WeightSite(3, "ln2.w"), 3, "ln"),
    ("blocks.2.mlp.expert.1.W_in", WeightSite(2, "W_in", expert=1), 2, "mlp"),
    ("blocks.2.mlp.expert.1.W_gate", WeightSite(2, "W_gate", expert=1), 2, "mlp"),
    ("blocks.0.mlp.expert.15.W_out", WeightSite(0, "W_out", expert=15), 0, "mlp"),
    ("embed.W_E", WeightSite(None, "embed.W_E"), None, "embed"),
    ("unembed.W_U", WeightSite(None, "unembed.W_U"), None, "unembed"),
    ("ln_final.w", WeightSite(None, "ln_final.w"), None, "ln"),
]


@pytest.mark.parametrize(("text", "expected", "layer", "component"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_examples(text: str, expected: Site, layer: int | None, component: str) -> None:
    site = Site.parse(text)
    assert site == expected and type(site) is type(expected)
    assert str(site) == text
    assert site.layer == layer  # type: ignore[attr-defined]
    assert coarse(site) == (layer, component)


def test_every_accepted_name_has_an_example() -> None:
    parsed = [Site.parse(text) for text, *_ in EXAMPLES]
    hooks = {s.hook for s in parsed if isinstance(s, HookSite)}
    weights = {s.name for s in parsed if isinstance(s, WeightSite)}
    assert hooks == set(HOOK_NAMES + GLOBAL_HOOKS)
    assert weights == set(LAYER_WEIGHTS + GLOBAL_WEIGHTS + EXPERT_WEIGHTS)
    assert {type(s) for s in parsed} == {HookSite, HeadSite, NeuronSite, ExpertSite, RouterSite,
                                         SAEFeatureSite, WeightSite}
    assert {cls.kind for cls in (HookSite, HeadSite, NeuronSite, ExpertSite, RouterSite, SAEFeatureSite,
                                 WeightSite)} == {"hook", "head", "neuron", "expert", "router", "sae_feature", "weight"}


def test_parse_many_and_sorting() -> None:
    texts = ["unembed.W_U", "blocks.1.mlp.neuron.3", "embed.W_E", "blocks.0.attn.head.1",
             "blocks.1.attn.head.0", "blocks.0.hook_resid_pre"]
    parsed = parse_many(texts)
    assert [str(s) for s in parsed] == texts
    assert parse_many(iter(texts)) == parsed
    ordered = [str(s) for s in sorted(parsed, key=Site.sort_key)]
    assert ordered[0] == "embed.W_E" and ordered[-1] == "unembed.W_U"
    assert ordered.index("blocks.0.attn.head.1") < ordered.index("blocks.1.attn.head.0")
    assert sorted([NeuronSite(0, 10), NeuronSite(0, 2)], key=Site.sort_key) == [NeuronSite(0, 2), NeuronSite(0, 10)]
    with pytest.raises(ValueError):
        parse_many("blocks.1.mlp.router")
    with pytest.raises(ValueError, match="'nope'"):
        parse_many(["blocks.1.mlp.router", "nope"])


def test_coarse_rejects_non_sites() -> None:
    with pytest.raises(ValueError, match="str"):
        coarse("blocks.1.mlp.router")  # type: ignore[arg-type]


def test_module_is_pure_python() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    import workbench.sites as mod
    assert mod.__doc__
    root = str(Path(mod.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = "import sys, workbench.sites; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
