"""Scoring with the prompt read once (`_shared`: KV cache, continuations after it) gives what
reading every sequence whole (`_run`, the reference) gives: same verdicts, same log-probs,
for dense and MoE models, with and without an edit that spares the first position."""
import pytest
import torch

from workbench.edit import Edit
from workbench.edit.ablations import unit_ablation
from workbench.localise import localise
from workbench.models.scoring import _run, _shared, score_examples
from workbench.tasks.prompts import encode_pairs, split_examples
from workbench.tasks.task import Example

pytestmark = pytest.mark.integration


def _examples(loaded):
    """Multiple-choice items, plain question/statement examples, and the same prompts with
    answers of two and three tokens (the testbed's options are one token each: these reach
    the cached-continuation path)."""
    task = loaded.task()
    mc = [e for s in ("forget", "retain") for e in split_examples(task, s, 6, forms=["mcq"])]
    plain = split_examples(task, "forget", 6)
    assert mc and all(e.options for e in mc)
    longer = []
    for e in mc:
        a, b, c = e.options[:3]
        longer += [Example(e.fact, e.form, e.kind, e.prompt, f"{a} {b}"),
                   Example(e.fact, e.form, e.kind, e.prompt, f"{b} {c} {a}")]
    return mc + plain + longer


def _same(loaded, examples):
    seqs = list(dict.fromkeys((tuple(s), n) for e in examples for o in (e.answer, *e.options)
                              for s, n in encode_pairs(loaded.tokenizer, [(e.prompt, o)])))
    seqs = [(list(s), n) for s, n in seqs]
    whole, shared = _run(loaded.model, loaded.tokenizer, seqs, 16), _shared(loaded.model, seqs, 16)
    assert shared is not None
    assert any(n > 1 for _, _, n in whole), "no multi-token continuation: the cached path was not reached"
    assert [w[0] for w in whole] == [s[0] for s in shared]
    assert [w[2] for w in whole] == [s[2] for s in shared]
    assert max(abs(w[1] - s[1]) for w, s in zip(whole, shared)) < 1e-4
    return whole


@pytest.mark.parametrize("name", ["small_dense", "small_moe"])
def test_prompt_read_once_matches_every_sequence_read_whole(name, request):
    loaded = request.getfixturevalue(name)
    _same(loaded, _examples(loaded))


def test_an_edit_that_spares_the_first_position_scores_the_same(small_dense):
    """A mean ablation at every position but the first (BOS): the continuation tokens read
    after the cached prompt are later positions, so they are ablated as in the whole read."""
    task = small_dense.task()
    loc = localise(small_dense, task, "concept", {}, progress=False)
    edit = Edit("ablate", interventions=unit_ablation(small_dense, task, loc.top(k=8), "mean", max_facts=20,
                                                      positions="after_first"))
    examples = _examples(small_dense)
    plain = _same(small_dense, examples)
    with edit.applied(small_dense.model):
        edited = _same(small_dense, examples)
    assert plain != edited  # the edit changed what the model says (else the check proves nothing)


def test_scores_keep_the_example_order_and_mc_choices(small_dense):
    examples = _examples(small_dense)
    scores = score_examples(small_dense.model, small_dense.tokenizer, examples)
    again = score_examples(small_dense.model, small_dense.tokenizer, list(reversed(examples)))
    again = list(reversed(again))  # batches are made differently: log-probs agree to float precision
    assert [(s.correct, s.n_tokens, s.choice_correct) for s in scores] == [
        (s.correct, s.n_tokens, s.choice_correct) for s in again]
    assert max(abs(a.logprob - b.logprob) for a, b in zip(scores, again)) < 1e-4
    assert all((s.choice_correct is None) == (not e.options) for s, e in zip(scores, examples))
    assert torch.tensor([s.n_tokens for s in scores]).max() >= 3
