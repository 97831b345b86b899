"""The architecture tables, walked on a tiny random model of each architecture: every site
kind resolves to existing parameters of the right shape and to a module that really sees
the activation; resolution is identical before and after the bridge is booted."""
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MixtralConfig

from workbench.models.arch import ARCHS, resolve, sites_of_kind, table_for
from workbench.sites import HOOK_NAMES, HookSite, SAEFeatureSite, Site, WeightSite

pytestmark = pytest.mark.integration

SMALL = dict(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=16)
CONFIGS = {"llama": LlamaConfig(**SMALL),
           "mixtral": MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2)}
CONFIGS["llama"].num_key_value_heads = 2  # grouped-query attention, as in SmolLM2


@pytest.fixture(scope="module", params=sorted(ARCHS))
def tiny(request):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(CONFIGS[request.param]).eval()


def _capture(model, module_path, io):
    seen = {}
    mod = model.get_submodule(module_path)

    def hook(m, args, kwargs, out=None):
        x = (args[0] if args else next(iter(kwargs.values()))) if io == "input" else out
        seen["x"] = x[0] if isinstance(x, tuple) else x

    handle = (mod.register_forward_pre_hook(lambda m, a, k: hook(m, a, k), with_kwargs=True)
              if io == "input" else mod.register_forward_hook(lambda m, a, k, o: hook(m, a, k, o), with_kwargs=True))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 2, 3, 4, 5]]))
    finally:
        handle.remove()
    return seen["x"]


def test_every_unit_kind_resolves_to_params_it_owns(tiny):
    table = table_for(tiny)
    d = tiny.config.hidden_size
    for kind in table.units:
        sites = sites_of_kind(tiny, kind)
        assert sites
        owned = {}
        for site in sites:
            r = resolve(site, tiny)
            assert r.params
            for p in r.params:
                view = p.view(tiny)
                assert view.numel() > 0 and d in view.shape
                owned.setdefault(p.name, 0)
                owned[p.name] += view.numel()
        # the units of one kind cover the parameters they touch exactly (shared key/value
        # heads of grouped-query attention are owned once per query head of their group)
        for name, n in owned.items():
            total = tiny.get_parameter(name).numel()
            assert n % total == 0 and n // total in (1, table.config_sizes(tiny.config)["kv_group"]), (kind, name)


def test_hooks_resolve_to_modules_that_see_the_activation(tiny):
    table = table_for(tiny)
    for hook in HOOK_NAMES:
        if hook not in table.hooks:
            with pytest.raises(ValueError, match="accepted here"):
                resolve(HookSite(0, hook), tiny)
            continue
        r = resolve(HookSite(1, hook), tiny)
        x = _capture(tiny, r.module, r.io)
        assert x.shape[0] in (1, 5)  # batch-first, or tokens-first for routers
    r = resolve(SAEFeatureSite(HookSite(1, "hook_resid_post"), 7), tiny)
    assert _capture(tiny, r.module, r.io).shape[-1] == tiny.config.hidden_size and r.act_index == (7,)


def test_unit_activations_slice_the_right_width(tiny):
    table = table_for(tiny)
    for kind in table.unit_activations:
        site = sites_of_kind(tiny, kind)[-1]
        r = resolve(site, tiny)
        x = _capture(tiny, r.module, r.io)
        assert x[..., r.act_index[0]].shape[-1] >= 1
        assert r.act_index[0].stop <= x.shape[-1]


def test_weight_sites_and_out_of_range(tiny):
    table = table_for(tiny)
    for key in table.weights:
        if key.startswith("expert."):
            site = WeightSite(1, key.split(".", 1)[1], expert=3)
        elif key.count(".") == 1 and key.split(".")[0] in ("embed", "unembed", "ln_final"):
            site = WeightSite(None, key)
        else:
            site = WeightSite(1, key)
        (p,) = resolve(site, tiny).params
        assert p.view(tiny).numel() > 0
    with pytest.raises(ValueError, match="out of range"):
        resolve("blocks.9.attn.head.0", tiny)
    with pytest.raises(ValueError, match="out of range"):
        resolve("blocks.0.attn.head.4", tiny)


def test_foreign_architecture_is_refused():
    with pytest.raises(ValueError, match="no architecture table"):
        table_for(torch.nn.Linear(2, 2))


def test_resolution_survives_the_bridge(small_moe):
    sites = ["blocks.1.attn.head.2", "blocks.1.mlp.expert.3", "blocks.1.mlp.router", "embed.W_E"]
    before = [[p.view(small_moe.model).data_ptr() for p in resolve(s, small_moe.model).params] for s in sites]
    _ = small_moe.bridge
    after = [[p.view(small_moe.model).data_ptr() for p in resolve(s, small_moe.model).params] for s in sites]
    assert before == after
    assert all(isinstance(Site.parse(s), Site) for s in sites)
