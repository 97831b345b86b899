"""The Localisation value, the registry and typed configs: no model needed."""
from dataclasses import dataclass
from typing import Literal

import pytest
import torch
from scipy.stats import spearmanr

from workbench.localise.agreement import agreement, spearman
from workbench.localise.localisation import Localisation, top_flat
from workbench.registry import Registry, config_from_dict, parse_options
from workbench.sites import HeadSite, NeuronSite, Site, WeightSite

pytestmark = pytest.mark.unit


def _neurons(scores):
    return Localisation(tuple(NeuronSite(i // 4, i % 4) for i in range(len(scores))),
                        torch.tensor(scores), {"localiser": "t"})


def test_top_orders_by_score_and_breaks_ties_by_site_order():
    loc = _neurons([0.1, 0.5, 0.5, -1.0, 0.3, 0.0, 0.9, 0.2])
    assert [str(s) for s in loc.top(k=4)] == ["blocks.1.mlp.neuron.2", "blocks.0.mlp.neuron.1",
                                                "blocks.0.mlp.neuron.2", "blocks.1.mlp.neuron.0"]
    assert loc.top(fraction=0.25) == loc.top(k=2)
    assert loc.top(fraction=0.01) == loc.top(k=1)  # a positive fraction keeps at least one site
    assert loc.top(fraction=0.0) == []


@pytest.mark.parametrize("kwargs,needle", [({}, "exactly one"), ({"k": 1, "fraction": 0.5}, "exactly one"),
                                           ({"fraction": 1.5}, "[0, 1]"), ({"k": -1}, "non-negative")])
def test_top_rejects_bad_budgets(kwargs, needle):
    with pytest.raises(ValueError, match=needle if needle != "[0, 1]" else r"\[0, 1\]"):
        _neurons([1.0, 2.0]).top(**kwargs)


def test_invalid_localisations_are_refused():
    with pytest.raises(ValueError, match="at least one site"):
        Localisation((), torch.tensor([]))
    with pytest.raises(TypeError, match="Site values"):
        Localisation(("blocks.0.attn.head.0",), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="2 sites but 1 scores"):
        Localisation((HeadSite(0, 0), HeadSite(0, 1)), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="once"):
        Localisation((HeadSite(0, 0), HeadSite(0, 0)), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="weight_scores"):
        Localisation((WeightSite(0, "mlp.W_in"),), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="weight sites only"):
        Localisation((WeightSite(0, "mlp.W_in"), HeadSite(0, 0)), torch.tensor([1.0, 2.0]),
                     weight_scores={"a.weight": torch.ones(2)})


def test_kind_follows_from_the_sites_in_one_vocabulary():
    from workbench.sites import SiteKind

    assert _neurons([1.0]).kinds == {SiteKind.NEURON} and _neurons([1.0]).kind == "neuron"
    mixed = Localisation((HeadSite(0, 0), Site.parse("blocks.1.hook_mlp_out")), torch.tensor([1.0, 2.0]))
    assert mixed.kinds == {SiteKind.HEAD, SiteKind.HOOK} and mixed.kind == "head+hook"
    assert _weight_loc().kind == SiteKind.WEIGHT == "weight"


def test_identity_is_the_content():
    a, b = _neurons([0.3, 0.1]), _neurons([0.3, 0.1])
    b.provenance["seconds"] = 9.0
    assert a.identity == b.identity  # provenance is not content
    assert a.identity != _neurons([0.3, 0.2]).identity
    assert _weight_loc().identity != _neurons([1.5, 1.25]).identity


def test_top_flat_selects_exactly_n_even_with_ties():
    x = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.5, 2.0])
    for n in range(len(x) + 1):
        m = top_flat(x, n)
        assert int(m.sum()) == n
        if 0 < n < len(x):
            assert x[m].min() >= x[~m].max()
    assert top_flat(x, 2).tolist() == [False, True, True, False, False, False]


def _weight_loc():
    sites = (WeightSite(0, "mlp.W_in"), WeightSite(0, "mlp.W_out"))
    ws = {"a.weight": torch.tensor([[0.1, 0.9], [0.2, 0.3]]), "b.weight": torch.tensor([0.5, 0.05, 0.7])}
    slices = {"blocks.0.mlp.W_in": ["a.weight", [[None, None]]], "blocks.0.mlp.W_out": ["b.weight", [[None, None]]]}
    return Localisation(sites, torch.tensor([1.5, 1.25]), {"localiser": "w", "site_slices": slices}, ws)


def test_weight_localisation_masks_count_scalars_globally():
    loc = _weight_loc()
    m = loc.weight_mask(k=3)
    assert m["a.weight"].tolist() == [[False, True], [False, False]] and m["b.weight"].tolist() == [True, False, True]
    assert loc.n_scalars == 7
    assert [str(s) for s in loc.top(k=1)] == ["blocks.0.mlp.W_in"]  # tensors holding a selected scalar
    assert len(loc.top(k=3)) == 2


def test_save_and_load_round_trip(tmp_path):
    for loc in (_neurons([0.3, 0.1, 0.2, 0.7]), _weight_loc()):
        loc.provenance["config"] = {"x": 1, "nested": [1, 2]}
        back = Localisation.load(loc.save(tmp_path / loc.kind))
        assert back == loc and back.top(k=2) == loc.top(k=2)
        assert sorted(p.name for p in (tmp_path / loc.kind).iterdir()) == ["localisation.json", "scores.safetensors"]


def test_load_of_a_missing_directory_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing localisation.json"):
        Localisation.load(tmp_path / "nothing")


def test_per_layer_and_coarse_scores():
    loc = Localisation((HeadSite(0, 0), HeadSite(0, 1), NeuronSite(1, 3), Site.parse("blocks.1.hook_mlp_out")),
                       torch.tensor([1.0, 2.0, 3.0, 4.0]), {})
    assert loc.coarse_scores() == {(0, "attn"): 3.0, (1, "mlp"): 7.0}
    rows = loc.per_layer(k=2)
    assert [(r["layer"], r["component"], r["sites"], r["selected"]) for r in rows] == [(0, "attn", 2, 0), (1, "mlp", 2, 2)]


def test_registry_refuses_duplicates_and_names_what_it_accepts():
    reg = Registry("widget")
    reg.register("a")(object)
    with pytest.raises(RuntimeError, match="already registered"):
        reg.register("a")(object)
    with pytest.raises(ValueError, match="unknown widget 'b'; expected one of: a"):
        reg.get("b")


@dataclass(frozen=True)
class _Cfg:
    mode: Literal["x", "y"] = "x"
    n: int = 1
    rate: float = 0.5
    layers: tuple[int, ...] | None = None
    flag: bool = False


def test_config_from_dict_converts_and_names_bad_keys():
    c = config_from_dict(_Cfg, parse_options(["mode=y", "n=3", "rate=1e-3", "layers=1,2", "flag=true"]))
    assert c == _Cfg("y", 3, 1e-3, (1, 2), True)
    assert config_from_dict(_Cfg, {"layers": "none"}).layers is None
    for bad, needle in [({"mode": "z"}, "mode='z': expected one of x, y"), ({"n": "two"}, "n='two': expected int"),
                        ({"nope": 1}, "unknown option 'nope'"), ({"n": 1.5}, "expected int")]:
        with pytest.raises(ValueError, match=needle):
            config_from_dict(_Cfg, bad)
    with pytest.raises(ValueError, match="key=value"):
        parse_options(["novalue"])


def test_spearman_matches_scipy_including_ties():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 5, (30,), generator=gen).float()
        b = a + torch.randn(30, generator=gen)
        assert spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)


def test_agreement_is_one_with_itself_and_symmetric_cells():
    a = Localisation((HeadSite(0, 0), NeuronSite(1, 0), NeuronSite(2, 0)), torch.tensor([3.0, 2.0, 1.0]), {})
    b = Localisation((HeadSite(0, 0), NeuronSite(1, 0), NeuronSite(2, 0)), torch.tensor([1.0, 2.0, 3.0]), {})
    rows = agreement({"a": a, "a2": a, "b": b}, k=1, fraction=0.34)
    by = {(r["a"], r["b"]): r for r in rows}
    assert by[("a", "a2")]["spearman"] == pytest.approx(1.0) and by[("a", "a2")]["jaccard@1"] == 1.0
    # a selects cells (0,attn), (1,mlp); b selects (1,mlp), (2,mlp): densities [1,1,0] vs [0,1,1]
    assert by[("a", "b")]["spearman"] == pytest.approx(-0.5) and by[("a", "b")]["jaccard@1"] == 0.0


def test_coarse_density_is_the_selected_share_per_cell():
    loc = Localisation((HeadSite(0, 0), HeadSite(0, 1), HeadSite(0, 2), HeadSite(0, 3), NeuronSite(1, 0)),
                       torch.tensor([5.0, 4.0, 0.0, 0.0, 3.0]), {})
    assert loc.coarse_density(fraction=0.4) == {(0, "attn"): 0.5, (1, "mlp"): 0.0}
    assert _weight_loc().coarse_density(fraction=3 / 7) == {(0, "mlp"): 3 / 7}


def test_ablation_check_refuses_sae_features_and_names_the_check_that_takes_them():
    """Mean ablation indexes the residual stream: an SAE feature id there would ablate the wrong
    column (or none), so the call is refused before anything runs."""
    from workbench.faithfulness import ablation_check
    from workbench.sites import HookSite, SAEFeatureSite

    hook = Site.parse("blocks.1.hook_resid_post")
    assert isinstance(hook, HookSite)
    loc = Localisation((SAEFeatureSite(hook, 781),), torch.tensor([1.0]), {"localiser": "sae"})
    with pytest.raises(ValueError, match="sae_feature sites .workbench.faithfulness.check picks the check"):
        ablation_check(None, None, loc)
