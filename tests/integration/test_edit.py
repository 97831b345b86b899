"""Operators and edits on the small testbed: masks hold, revert is exact, exports reload."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from workbench.edit import OPERATORS, Edit, apply_operator
from workbench.localise import Localisation, localise
from workbench.sites import ExpertSite

pytestmark = pytest.mark.integration
FAST = {"steps": 8, "batch_size": 16}


@pytest.fixture(scope="module")
def task(small_dense):
    return small_dense.task()


@pytest.fixture(scope="module")
def neurons(small_dense, task):
    return localise(small_dense, task, "circuits", {"nodes": "neuron", "max_facts": 40}, progress=False)


@pytest.fixture(scope="module")
def weights_loc(small_dense, task):
    return localise(small_dense, task, "selective", {"max_facts": 40}, progress=False)


def _state(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def ids(small_dense, task):
    ex = next(task.examples("forget"))
    return torch.tensor([small_dense.tokenizer(ex.text)["input_ids"]] * 2)


@pytest.mark.parametrize("loc_name", ["neurons", "weights_loc"])
def test_masked_training_leaves_masked_out_weights_bit_identical(loc_name, small_dense, task, request):
    loc = request.getfixturevalue(loc_name)
    before = _state(small_dense.model)
    masks = loc.mask(small_dense.model, fraction=0.05)
    edit = apply_operator(small_dense, loc, task, "npo", {**FAST, "fraction": 0.05, "weight_decay": 0.1}, progress=False)
    assert _same(before, _state(small_dense.model))  # the model itself is untouched
    assert edit.weights and set(edit.weights) <= set(masks)
    moved = 0
    for name, new in edit.weights.items():
        m = masks[name]
        assert torch.equal(new[~m], before[name][~m]), name
        moved += int((new[m] != before[name][m]).sum())
    assert moved > 0


def test_apply_and_revert_are_exact(small_dense, task, neurons, ids):
    before, clean = _state(small_dense.model), _logits(small_dense.model, ids)
    for edit in (apply_operator(small_dense, neurons, task, "graddiff", FAST, progress=False),
                 apply_operator(small_dense, neurons, task, "ablate", {"mode": "mean"}, progress=False)):
        handle = edit.apply(small_dense.model)
        assert not torch.equal(_logits(small_dense.model, ids), clean)
        handle.revert()
        assert _same(before, _state(small_dense.model))
        assert torch.equal(_logits(small_dense.model, ids), clean)


@pytest.mark.parametrize("operator,options,loc_name", [
    ("ablate", {"mode": "mean"}, "neurons"),
    ("ablate", {"mode": "zero"}, "neurons"),
    ("ablate", {"mode": "mean", "k": 3}, "heads"),
    ("ablate", {"mode": "mean", "k": 1}, "mlps"),
    ("ablate", {}, "weights_loc"),
    ("directional", {"weight_form": True}, None),
    ("directional", {}, None),
    ("graddiff", FAST, "weights_loc"),
])
def test_exported_checkpoint_reloads_and_reproduces_edited_logits(operator, options, loc_name, small_dense, task,
                                                                  ids, tmp_path, request):
    loc = None
    if loc_name in ("heads", "mlps"):
        loc = localise(small_dense, task, "circuits", {"nodes": loc_name[:-1] if loc_name == "heads" else "mlp",
                                                     "max_facts": 20}, progress=False)
    elif loc_name:
        loc = request.getfixturevalue(loc_name)
    edit = apply_operator(small_dense, loc, task, operator, options, progress=False)
    with edit.applied(small_dense.model):
        edited = _logits(small_dense.model, ids)
    path = edit.export(small_dense, tmp_path / "hf")
    again = AutoModelForCausalLM.from_pretrained(path)
    assert (_logits(again, ids) - edited).abs().max() < 1e-5
    assert not torch.equal(edited, _logits(small_dense.model, ids))


def test_edit_save_load_round_trip(small_dense, task, neurons, ids, tmp_path):
    edit = apply_operator(small_dense, neurons, task, "ablate", {"mode": "resample", "k": 20}, progress=False)
    back = Edit.load(edit.save(tmp_path / "e"))
    with edit.applied(small_dense.model):
        a = _logits(small_dense.model, ids)
    with back.applied(small_dense.model):
        b = _logits(small_dense.model, ids)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="depends on the input at run time"):
        edit.export(small_dense, tmp_path / "hf")


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(small_dense, task, neurons):
    edit = apply_operator(small_dense, None, task, "ga", {"steps": 60, "lr": 1e4, "max_grad_norm": 0.0,
                                                         "batch_size": 16}, progress=False)
    assert edit.provenance["stopped"] and "non-finite loss at step" in edit.provenance["stopped"]
    assert edit.provenance["steps_done"] < 60
    assert all(torch.isfinite(w).all() for w in edit.weights.values())


def test_collapse_stop(small_dense, task):
    edit = apply_operator(small_dense, None, task, "ga", {"steps": 40, "lr": 1e-2, "eval_every": 2,
                                                         "collapse_retain": 0.9, "batch_size": 16}, progress=False)
    assert "retain accuracy" in (edit.provenance["stopped"] or "")
    assert edit.provenance["evals"][-1]["retain"] < 0.9


@pytest.mark.parametrize("operator", [n for n in OPERATORS.names() if n not in ("remove-experts", "uoe")])
def test_every_operator_runs(operator, small_dense, task, neurons, only_train_pairs):
    options = {"steps": 4, "batch_size": 8} if "steps" in OPERATORS.get(operator).Config.__dataclass_fields__ else {}
    loc = None if operator in ("directional", "lunar") else neurons
    if operator == "sae-clamp":  # SAE features, from an SAE trained here with sae-lens
        loc = localise(small_dense, task, "sae", {"layer": 1, "sae_tokens": 60_000}, progress=False)
        with pytest.raises(ValueError, match="operator 'sae-clamp' takes localisations of sae_feature sites"):
            apply_operator(small_dense, neurons, task, operator, options, progress=False)
    with only_train_pairs(task):  # no evaluation pair reaches the operator
        edit = apply_operator(small_dense, loc, task, operator, options, progress=False)
    assert edit.weights or edit.interventions
    assert edit.provenance["operator"] == operator and edit.provenance["seconds"] >= 0


def test_remove_experts_routes_around_the_expert(small_moe):
    task = small_moe.task()
    ids = torch.tensor([[small_moe.tokenizer.bos_token_id, 5, 6, 7, 8, 9, 10, 11]])
    router = small_moe.model.get_submodule("model.layers.1.mlp.gate")
    seen = []

    def routed(model):
        handle = router.register_forward_hook(lambda m, a, out: seen.append(out[2].clone()))
        try:
            with torch.no_grad():
                return model(input_ids=ids).logits
        finally:
            handle.remove()
    clean = routed(small_moe.model)
    expert = int(seen[-1][0, 0])  # an expert layer 1 uses on this text
    loc = Localisation((ExpertSite(1, expert), ExpertSite(2, 0)), torch.tensor([2.0, 1.0]),
                       {"localiser": "manual"})
    edit = apply_operator(small_moe, loc, task, "remove-experts", {"k": 1}, progress=False)
    with edit.applied(small_moe.model):
        edited = routed(small_moe.model)
    assert not (seen[-1] == expert).any() and seen[-1].shape == seen[0].shape  # routed around it
    assert not torch.equal(clean, edited)
    assert torch.equal(routed(small_moe.model), clean)  # and back after the scope


def test_uoe_trains_only_the_top_expert_and_its_router_with_the_anchor(small_moe):
    from workbench.localise.experts import routing, selection_overlap

    task = small_moe.task()
    loc = localise(small_moe, task, "experts", {"max_facts": 20}, progress=False)
    n_layers, n_exp = small_moe.model.config.num_hidden_layers, small_moe.model.config.num_local_experts
    aff = loc.scores.reshape(n_layers, n_exp)
    assert torch.allclose(aff.sum(-1), torch.ones(n_layers), atol=1e-5)  # a softmax, averaged
    sel = torch.tensor(loc.provenance["forget_selected"])
    assert torch.allclose(sel.sum(-1), torch.full((n_layers,), float(small_moe.model.config.num_experts_per_tok)))
    top = loc.top(k=1)[0]
    before = _state(small_moe.model)
    edit = apply_operator(small_moe, loc, task, "uoe", {"steps": 4, "batch_size": 8, "lr": 1e-2}, progress=False)
    assert edit.provenance["anchor"] == [top.layer, top.expert]
    assert "anchor" in edit.provenance["history"][-1]
    prefix = f"model.layers.{top.layer}.mlp."
    assert set(edit.weights) == {prefix + "experts.gate_up_proj", prefix + "experts.down_proj", prefix + "gate.weight"}
    for name, new in edit.weights.items():
        if "experts" in name:  # other experts of the fused tensors are untouched
            others = [e for e in range(n_exp) if e != top.expert]
            assert torch.equal(new[others], before[name][others]) and not torch.equal(new[top.expert], before[name][top.expert])
    examples = [task.render(f, "para0") for f in task.facts("forget")]
    assert selection_overlap(small_moe, small_moe, examples) == pytest.approx([1.0] * n_layers)
    assert routing(small_moe, examples)[0].shape == (n_layers, n_exp)


@pytest.mark.parametrize("mode", ["zero", "mean", "resample"])
def test_expert_ablations(mode, small_moe, tmp_path):
    """zero (down projection set to 0, a weight edit), mean and resample (the expert's output
    on the tokens routed to it replaced, router weights kept) ablate exactly one expert."""
    task = small_moe.task()
    loc = localise(small_moe, task, "experts", {"max_facts": 20}, progress=False)
    top = loc.top(k=1)[0]
    edit = apply_operator(small_moe, loc, task, "ablate", {"mode": mode, "k": 1, "max_facts": 20})
    assert bool(edit.weights) == (mode == "zero") and len(edit.interventions) == (mode != "zero")
    ids = torch.tensor([small_moe.tokenizer(ex.text)["input_ids"] for ex in list(task.examples("forget"))[:1]])
    table = small_moe.arch  # where the experts live and how one expert's output is recomputed
    path = table.experts.format(L=top.layer)
    seen = {}

    def grab(m, args, out):
        seen["routed"] = table.expert_outputs(m, args, top.expert)[0]
        seen.setdefault("out", []).append(out.detach().clone())
        return out

    from workbench.hooks import hook_session
    with torch.no_grad():
        with hook_session(small_moe.model) as hs:
            hs.rewrite(path, grab)
            before = _logits(small_moe.model, ids)
        with edit.applied(small_moe.model), hook_session(small_moe.model) as hs:
            hs.rewrite(path, grab)  # after the edit's own hook: sees the edited output
            during = _logits(small_moe.model, ids)
    routed = seen["routed"]
    unrouted = torch.ones(ids.numel(), dtype=torch.bool)
    unrouted[routed] = False
    b, d = seen["out"][0], seen["out"][1]
    assert len(routed) and not torch.allclose(before, during)
    assert torch.allclose(b[unrouted], d[unrouted], atol=1e-6)  # other tokens untouched at that layer
    assert not torch.allclose(b[routed], d[routed])
    if mode == "mean":
        iv = edit.interventions[0]
        assert iv.value.shape == (small_moe.model.config.hidden_size,)
        back = Edit.load(edit.save(tmp_path / "e"))
        with back.applied(small_moe.model):
            assert torch.allclose(_logits(small_moe.model, ids), during)


def _redigest(tensors, meta_file) -> None:
    """Record the tensors file's current sha256 in its JSON, as a writer of those tensors would."""
    import json

    from workbench.cache import file_digest

    meta = json.loads(meta_file.read_text())
    meta["tensors_sha256"] = file_digest(tensors)
    meta_file.write_text(json.dumps(meta))


def test_a_saved_edit_is_checked_against_the_model_it_is_put_on(small_dense, small_dense_oracle, task, tmp_path):
    """A saved edit whose tensors were replaced by one-element tensors would be broadcast by
    `copy_` over whole parameters (forget 0.000: perfect-looking unlearning); an edit made on
    one model put on another fits every shape and means nothing. Both are refused, in one line."""
    from safetensors.torch import load_file, save_file

    from workbench.errors import WorkbenchInputError

    edit = apply_operator(small_dense, None, task, "ga", {"steps": 1, "batch_size": 8}, progress=False)
    path = edit.save(tmp_path / "edit")
    before = _state(small_dense.model)
    Edit.load(path).check_model(small_dense.model)  # made on these weights: accepted
    with pytest.raises(WorkbenchInputError, match="was made on .* not on this model's weights.*--force"):
        Edit.load(path).check_model(small_dense_oracle.model)
    Edit.load(path).check_model(small_dense_oracle.model, force=True)  # the user insists
    tensors = load_file(str(path / "edit.safetensors"))
    name = next(k for k in tensors if k.startswith("weight::"))
    tensors[name] = torch.zeros(1)
    save_file(tensors, str(path / "edit.safetensors"))
    with pytest.raises(WorkbenchInputError, match="was changed after it was written"):  # the digest sees it first
        Edit.load(path)
    _redigest(path / "edit.safetensors", path / "edit.json")  # a consistent file made for another model
    corrupt = Edit.load(path)
    with pytest.raises(WorkbenchInputError, match=r"has shape \(1,\), the model's parameter"):
        with corrupt.applied(small_dense.model):
            pass
    with pytest.raises(WorkbenchInputError, match="has shape"):
        corrupt.baked(small_dense.model)
    tensors[name] = torch.full(small_dense.model.get_parameter(name.split("::", 1)[1]).shape, float("nan"))
    save_file(tensors, str(path / "edit.safetensors"))
    _redigest(path / "edit.safetensors", path / "edit.json")
    with pytest.raises(WorkbenchInputError, match="not finite"):
        with Edit.load(path).applied(small_dense.model):
            pass
    assert _same(before, _state(small_dense.model)), "a refused edit left something behind"


def test_a_localisation_with_scores_that_are_not_finite_is_refused(neurons, tmp_path):
    from safetensors.torch import load_file, save_file

    from workbench.errors import WorkbenchInputError

    path = neurons.save(tmp_path / "loc")
    tensors = load_file(str(path / "scores.safetensors"))
    tensors["scores"] = torch.full_like(tensors["scores"], float("nan"))
    save_file(tensors, str(path / "scores.safetensors"))
    _redigest(path / "scores.safetensors", path / "localisation.json")  # as a broken run would write it
    with pytest.raises(WorkbenchInputError, match=r"scores are not finite \(NaN or inf\)"):
        Localisation.load(path)
