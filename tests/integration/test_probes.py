"""Probes on the small testbed: they separate the original from the oracle, two oracles
from each other not, hook edits from weight edits; the model is left as it was."""
import pytest

from probes import ProbeConfig, probe
from probes.figures import FIGURES
from workbench.edit import apply_operator
from workbench.localise import localise
from workbench.models.knowledge import knowledge
from workbench.models.readouts import model_fingerprint
from workbench.models.scoring import score_examples
from workbench.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def baseline(small_dense, small_dense_oracle):
    """original vs oracle, every family (the pipeline gives traces the concept vectors), computed
    once (cache off: honest numbers)."""
    before = model_fingerprint(small_dense.model)
    result = Pipeline(progress=False).probe(small_dense, small_dense.task(), oracle=small_dense_oracle,
                                            use_cache=False)
    assert model_fingerprint(small_dense.model) == before, "probing changed the model"
    return result


def test_probes_separate_the_original_from_the_oracle(baseline):
    r = baseline
    assert set(r.models) == {"original", "oracle"} and "edited" in r.missing
    assert r.value("tofu.forget_quality", "original") < 0.01
    assert r.value("tofu.forget_quality", "oracle") == pytest.approx(1.0)
    assert r.value("muse.auc.mink", "original") > r.value("muse.auc.mink", "oracle") + 0.3
    assert abs(r.value("muse.auc.mink", "oracle") - 0.5) < 0.2
    # MUSE's convention: the original leaks (PrivLeak near -100, its interval far from 0), the oracle is 0
    assert r.value("muse.privleak", "original") < -50 and r.interval("muse.privleak", "original")[1] < 0
    assert r.value("muse.privleak", "oracle") == 0
    lo, hi = r.interval("muse.auc.mink", "original")
    assert lo <= r.value("muse.auc.mink", "original") <= hi and lo > r.interval("muse.auc.mink", "oracle")[1]
    chance = r.details["latent"]["oracle"]["chance"]
    assert r.value("latent.best_layer.forget", "original") > chance + 0.5
    assert r.value("latent.best_layer.forget", "oracle") < chance + 0.15
    assert r.value("relearn.forget.final", "original") > r.value("relearn.forget.final", "oracle") + 0.4
    assert r.value("relearn.forget.gap", "original") > 0.4 and r.value("relearn.forget.gap", "oracle") == 0
    assert r.value("prompts.logit_lens.forget", "original") > r.value("prompts.logit_lens.forget", "oracle") + 0.5
    curve = r.metric("relearn.forget.final").curves["oracle"]
    assert [p[0] for p in curve] == list(range(ProbeConfig().family("relearn").config.steps + 1))
    # relearning carries intervals over people: the original's gap to the oracle is beyond noise
    lo, hi = r.interval("relearn.forget.final", "original")
    assert lo <= r.value("relearn.forget.final", "original") <= hi
    assert r.interval("relearn.forget.gap", "original")[0] > 0
    assert r.interval("relearn.forget.gap", "oracle") == (0, 0)


def test_two_oracles_are_indistinguishable(small_dense, small_dense_oracle, small_dense_oracle_seed1):
    """The second oracle (another training seed) is the noise floor: against the oracle its
    PrivLeak interval covers 0 and its KS test does not reject; the original lies outside it."""
    assert small_dense.second_oracle_spec == small_dense_oracle_seed1.spec
    r = probe(small_dense, small_dense.task(), oracle=small_dense_oracle, second_oracle=small_dense_oracle_seed1,
              config={"families": ("tofu", "muse")}, progress=False, use_cache=False)
    assert r.roles == ["original", "oracle", "oracle2"]
    # the non-members are the holdout people, other people than the members
    members, nonmembers = r.details["muse"]["oracle"]["people"]
    assert r.details["muse"]["oracle"]["nonmember_kind"] == "holdout" and not set(members) & set(nonmembers)
    assert set(nonmembers) <= {f.subject for f in small_dense.task().facts("holdout")}
    # the distractor comparison is a separate knowledge test: the original prefers the true
    # answer, beyond the noise of both oracles (which never saw the facts)
    knows = r.interval("muse.distractor_auc", "original")
    assert knows[0] > max(r.interval("muse.distractor_auc", role)[1] for role in ("oracle", "oracle2")), knows
    assert r.value("tofu.forget_quality", "oracle2") >= 0.05
    # the seed-1 oracle's PrivLeak against the seed-0 oracle: its interval over the forget people
    # covers 0 (what "no leak" looks like at this sample size) ...
    floor = r.interval("muse.privleak", "oracle2")
    assert floor[0] <= 0 <= floor[1], (r.value("muse.privleak", "oracle2"), floor)
    # ... the two oracles' membership AUC intervals overlap ...
    a, b = r.interval("muse.auc.mink", "oracle2"), r.interval("muse.auc.mink", "oracle")
    assert a[0] <= b[1] and b[0] <= a[1], (a, b)
    # ... and the original's PrivLeak lies wholly outside the noise floor
    assert r.interval("muse.privleak", "original")[1] < floor[0]
    assert "noise floor" in r.table()


def test_behaviour_matches_the_knowledge_table(small_dense, baseline):
    table = knowledge(small_dense.model, small_dense.tokenizer, small_dense.task())
    for split, groups in table.items():
        for group, cell in groups.items():
            assert baseline.value(f"behaviour.{split}.{group}", "original") == pytest.approx(cell.accuracy)
    samples = baseline.details["behaviour"]["original"]["samples"]["forget"]
    # greedy generation agrees with the teacher-forced score on every sample (the question
    # form is trained for half of the people only, so the held-out ones may be wrong)
    task = small_dense.task()
    exs = [task.render(f, "qa") for f in task.facts("forget")[:len(samples)]]
    scores = score_examples(small_dense.model, small_dense.tokenizer, exs)
    assert samples and [s["prompt"] for s in samples] == [ex.prompt for ex in exs]
    assert [s["generated"] == s["answer"] for s in samples] == [sc.correct for sc in scores]
    assert all(s["generated"] == s["answer"] for s, ex in zip(samples, exs) if ex.trained)  # the original knows them
    assert any(ex.trained for ex in exs)


def test_traces_without_concept_sites_say_so(small_dense):
    """Called directly without `trace_sites`, the traces family measures what the edit touched
    and says why the concept-vector metrics are missing."""
    r = probe(small_dense, config={"families": ("traces",)}, oracle=None, progress=False, use_cache=False)
    assert "no concept vectors given" in r.metric("traces.concept.cos").notes["original"]
    assert r.value("traces.touched.count", "original") == 0


def test_hook_edit_forgets_behaviourally_but_leaves_the_weights(small_dense):
    """An activation-level ablation removes the behaviour while every value vector stays in
    the weights: the parametric trace is intact (cos 1), unlike a fine-tuning edit."""
    task = small_dense.task()
    loc = localise(small_dense, task, "concept", {}, progress=False)
    hook = apply_operator(small_dense, loc, task, "ablate", {"mode": "zero", "fraction": 0.25})
    tuned = apply_operator(small_dense, None, task, "graddiff", {"steps": 20})
    cfg = {"families": ("behaviour", "traces"), "traces.vectors": 10}
    sites = loc.top(k=10)  # the concept vectors to follow
    rh = probe(small_dense, task, edit=hook, oracle=None, config=cfg, trace_sites=sites, progress=False,
               use_cache=False)
    rt = probe(small_dense, task, edit=tuned, oracle=None, config=cfg, trace_sites=sites, progress=False,
               use_cache=False)
    assert rh.value("traces.concept.cos", "edited") == pytest.approx(1.0)
    assert rh.value("traces.touched.count", "edited") == 0
    assert "no value vector changed" in rh.metric("traces.touched.cos").notes["edited"]
    assert rt.value("traces.touched.count", "edited") > 0
    assert rt.value("traces.concept.cos", "edited") < 1.0
    assert rt.value("behaviour.forget.all", "edited") < rt.value("behaviour.forget.all", "original")
    assert "oracle" in rh.missing and rh.missing["oracle"] == "not requested"
    assert rh.details["traces"]["edited"]["concept"][0]["tokens_before"]
    # the baseline: random vectors matched by layer and norm, under the same edit
    assert rh.value("traces.random.cos", "edited") == pytest.approx(1.0)
    assert rt.value("traces.random.cos", "edited") < 1.0
    followed = {c["site"] for c in rt.details["traces"]["edited"]["concept"]}
    randoms = [c["site"] for c in rt.details["traces"]["edited"]["random"]]
    assert len(randoms) == len(followed) == 10 and not followed & set(randoms)
    diff = rt.value("traces.concept_vs_random.cos", "edited")
    assert diff == pytest.approx(rt.value("traces.concept.cos", "edited") - rt.value("traces.random.cos", "edited"))
    lo, hi = rt.interval("traces.concept_vs_random.cos", "edited")
    assert lo <= diff + 1e-9 and diff <= hi + 1e-9


def test_relearning_attacks_the_baked_checkpoint_of_an_ablation(small_dense, small_dense_oracle):
    """A mean ablation exports, so the attack trains its baked checkpoint (the zeroed weights
    can move); `target=hooks` attacks the hooked model; a resampling hook cannot be baked, so
    the attack says so and adds the weights-only variant. Step 0 of the baked attack is the
    edit itself: the baked checkpoint reproduces the hooked model's accuracy."""
    task = small_dense.task()
    loc = localise(small_dense, task, "concept", {}, progress=False)
    mean = apply_operator(small_dense, loc, task, "ablate", {"mode": "mean", "fraction": 0.25})
    resample = apply_operator(small_dense, loc, task, "ablate", {"mode": "resample", "fraction": 0.25})
    before = model_fingerprint(small_dense.model)
    cfg = {"families": ("relearn",), "max_facts": 8, "relearn.steps": 3, "relearn.data": ("forget",)}
    runs = {name: probe(small_dense, task, edit=edit, oracle=small_dense_oracle, progress=False, use_cache=False,
                        config={**cfg, "relearn.target": target})
            for name, edit, target in (("baked", mean, "baked"), ("hooks", mean, "hooks"),
                                       ("resample", resample, "baked"))}
    assert model_fingerprint(small_dense.model) == before
    targets = {k: r.details["relearn"]["edited"]["target"] for k, r in runs.items()}
    assert targets == {"baked": "baked", "hooks": "hooks (requested)", "resample": "hooks"}
    start = {k: runs[k].metric("relearn.forget.final").curves["edited"][0][1] for k in ("baked", "hooks")}
    assert start["baked"] == pytest.approx(start["hooks"]), start
    assert "final_weights_only" not in " ".join(m.name for m in runs["baked"].metrics)
    w = runs["resample"].metric("relearn.forget.final_weights_only")
    lo, hi = w.interval("edited")
    assert lo <= w.value("edited") <= hi and "cannot" in runs["resample"].details["relearn"]["edited"]["why"]


def test_cache_reuses_measurements(small_dense, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    cfg = {"families": ("behaviour", "latent"), "max_facts": 6}
    a = probe(small_dense, config=cfg, oracle=None, progress=False)
    b = probe(small_dense, config=cfg, oracle=None, progress=False)
    assert not any(a.cached["behaviour"].values()) and all(b.cached["behaviour"].values())
    assert [m.values for m in a.metrics] == [m.values for m in b.metrics]
    c = probe(small_dense, config={**cfg, "seed": 1}, oracle=None, progress=False)
    assert not any(c.cached["latent"].values())  # another subsample: measured again


def test_lora_relearning_restores_the_model(small_dense):
    before = model_fingerprint(small_dense.model)
    grads = [p.requires_grad for p in small_dense.model.parameters()]
    r = probe(small_dense, oracle=None, progress=False, use_cache=False,
              config={"families": ("relearn",), "relearn.method": "lora", "relearn.steps": 3,
                      "relearn.data": ("forget",), "max_facts": 8})
    assert len(r.metric("relearn.forget.final").curves["original"]) == 4
    assert model_fingerprint(small_dense.model) == before
    assert [p.requires_grad for p in small_dense.model.parameters()] == grads
    assert not any("lora" in n for n, _ in small_dense.model.named_parameters())
    assert "no oracle" in r.metric("relearn.forget.gap").notes["original"] or \
        r.metric("relearn.forget.gap").notes["original"] == "not requested"


def test_figures_render(baseline):
    for name, fn in FIGURES.items():
        fig = fn(baseline)
        assert fig.data, name
    rel = FIGURES["relearning"](baseline)
    assert {t.name.split(":")[0] for t in rel.data} == {"original", "oracle"}


@pytest.mark.slow
def test_every_probe_runs_on_smollm2_and_states_the_missing_oracle(smollm2):
    before = model_fingerprint(smollm2.model)
    r = Pipeline(progress=False).probe(smollm2, smollm2.task(), use_cache=False,
                                       config={"max_facts": 4, "relearn.steps": 1, "relearn.data": ("forget",),
                                               "traces.vectors": 5, "behaviour.samples": 2})
    assert model_fingerprint(smollm2.model) == before
    assert set(r.models) == {"original"} and "no oracle for smollm2" in r.missing["oracle"]
    for name in ("tofu.forget_quality", "muse.privleak", "relearn.forget.gap"):
        assert "no oracle for smollm2" in r.metric(name).notes["original"]
    assert {m.family for m in r.metrics} == set(ProbeConfig().families)
    assert r.value("behaviour.forget.prompt", "original") == 1.0  # the usable task: facts it answers in this form
    assert r.value("muse.auc.loss", "original") > 0.5
    latent = r.metric("latent.best_layer.forget")
    assert len(latent.curves["original"]) == smollm2.model.config.num_hidden_layers
    assert latent.value("original") is not None or "retain answers" in latent.notes["original"]
    assert r.value("tofu.rouge.forget", "original") > 0.5  # greedy answers in the form the facts were chosen in
    assert r.details["traces"]["original"]["concept"]
