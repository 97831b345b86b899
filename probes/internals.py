"""Probes that look inside the model: latent linear probes per layer, logit-lens
extraction, prompt-level attacks (in-context relearning, one-shot) and parametric traces
of value vectors in the weights."""
from __future__ import annotations

import random

import torch

from workbench.hooks import hook_session
from workbench.models.arch import table_for
from workbench.models.probing import probe_accuracy
from workbench.models.scoring import accuracy, score_examples
from workbench.tasks.task import Example

from .base import Context, family, mean
from .result import Metric


def _layer_paths(model) -> tuple[list[str], str]:
    table = table_for(model)
    path, io = table.hooks["hook_resid_post"]
    n = model.config.num_hidden_layers
    return [path.format(L=L) for L in range(n)], io


@torch.no_grad()
def last_token_states(model, tok, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
    """[N, n_layers, d_model]: resid_post of every layer at each prompt's last token."""
    seqs = [tok(p)["input_ids"] for p in prompts]
    paths, io = _layer_paths(model)
    out = torch.zeros(len(seqs), len(paths), model.config.hidden_size)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    dev = next(model.parameters()).device
    store: dict = {}
    with hook_session(model) as hs:
        for L, p in enumerate(paths):
            hs.read(p, io, store, L)
        for _, group in sorted(by_len.items()):
            for s in range(0, len(group), batch_size):
                idx = group[s:s + batch_size]
                model(input_ids=torch.tensor([seqs[i] for i in idx], device=dev))
                for L in range(len(paths)):
                    out[idx, L] = store[L][:, -1].float().cpu()
    return out


def _label(ex: Example):
    return (ex.fact.relation, ex.fact.answer)


# -- latent probes ------------------------------------------------------------------------
def latent_measure(ctx: Context, model, tok) -> dict:
    train = ctx.examples("retain") + ctx.examples("neighbour")
    test = ctx.examples("forget")
    xs_tr = last_token_states(model, tok, [e.prompt for e in train])
    xs_te = last_token_states(model, tok, [e.prompt for e in test])
    known = {_label(e) for e in train}
    coverage = mean([_label(e) in known for e in test]) if test else 0.0
    per_layer = [probe_accuracy(xs_tr[:, L], [_label(e) for e in train], xs_te[:, L], [_label(e) for e in test],
                                seed=ctx.config.seed) for L in range(xs_tr.shape[1])]
    return {"per_layer": per_layer, "n_train": len(train), "n_test": len(test), "coverage": coverage}


LOW_COVERAGE = 0.5


def latent_compare(ctx: Context, raws: dict, missing: dict):
    best = Metric("latent.best_layer.forget", "latent", "reference",
                  {r: max(x["per_layer"]) for r, x in raws.items()},
                  curves={r: [[L, a] for L, a in enumerate(x["per_layer"])] for r, x in raws.items()},
                  description="linear probes on resid_post (last prompt token), trained on retain "
                              "and neighbour people, accuracy on forget people; best layer")
    last = Metric("latent.last_layer.forget", "latent", "reference", {r: x["per_layer"][-1] for r, x in raws.items()},
                  description="the same probe at the last layer")
    for r, x in raws.items():
        if x["coverage"] < LOW_COVERAGE:  # e.g. real facts: Paris is the answer of forget facts only
            why = (f"only {x['coverage']:.0%} of the forget answers occur among the retain answers: a "
                   f"retain-trained probe cannot name the others (closed answer sets needed)")
            for m in (best, last):
                m.values.pop(r, None)
                m.notes[r] = why
    return [best, last], {r: {"per_layer": x["per_layer"], "chance": _chance(ctx), "coverage": x["coverage"]}
                          for r, x in raws.items()}


def _chance(ctx: Context) -> float:
    """1 / (number of answers a relation takes among the task's facts), averaged."""
    values: dict[str, set] = {}
    for f in ctx.full_task.all_facts:
        values.setdefault(f.relation, set()).add(f.answer)
    facts = ctx.task.facts("forget")
    return mean([1 / len(values[f.relation]) for f in facts])


family("latent", "linear probes per layer: retain-trained, tested on forget entities")((latent_measure, latent_compare))


# -- prompt-level attacks and the logit lens -----------------------------------------------
def _context_prompt(ctx: Context, ex: Example, shots: list) -> Example:
    prefix = " . ".join(s.text for s in shots)
    return Example(ex.fact, ex.form, ex.kind, f"{prefix} . {ex.prompt}" if prefix else ex.prompt, ex.answer)


@torch.no_grad()
def logit_lens_accuracy(model, tok, examples: list[Example]) -> list[float]:
    """Per layer: does norm(resid_post) @ W_U put the answer's first token on top?"""
    states = last_token_states(model, tok, [e.prompt for e in examples])
    table = table_for(model)
    norm = model.get_submodule(table.hooks["ln_final.hook_normalized"][0])
    head = model.get_output_embeddings()
    dev = next(model.parameters()).device
    first = [tok(" " + e.answer, add_special_tokens=False)["input_ids"][0] for e in examples]
    target = torch.tensor(first)
    accs = []
    for L in range(states.shape[1]):
        logits = head(norm(states[:, L].to(dev, head.weight.dtype))).float().cpu()
        accs.append(float((logits.argmax(-1) == target).float().mean()))
    return accs


def prompts_measure(ctx: Context, model, tok) -> dict:
    task, form = ctx.task, ctx.qa_form
    text_form = ctx.text_form
    forget = [f for f in task.facts("forget") if f.relation in task.forms[form].templates]
    plain = [task.render(f, form) for f in forget]
    by_subject: dict[str, list] = {}
    for f in task.facts("forget"):
        if f.relation in task.forms[text_form].templates:
            by_subject.setdefault(f.subject, []).append(f)
    in_ctx = [_context_prompt(ctx, ex, [task.render(o, text_form) for o in by_subject.get(ex.fact.subject, [])
                                         if o.relation != ex.fact.relation]) for ex in plain]
    rng = random.Random(ctx.config.seed)
    pool = [f for f in task.facts("retain") if f.relation in task.forms[form].templates]
    one_shot = [_context_prompt(ctx, ex, [task.render(rng.choice(pool), form)] if pool else []) for ex in plain]
    acc = lambda exs: accuracy(score_examples(model, tok, exs)) if exs else float("nan")  # noqa: E731
    return {"plain": acc(plain), "in_context": acc(in_ctx), "one_shot": acc(one_shot),
            "logit_lens": logit_lens_accuracy(model, tok, plain) if plain else [],
            "example_in_context": in_ctx[0].prompt if in_ctx else ""}


def prompts_compare(ctx: Context, raws: dict, missing: dict):
    m = [
        Metric("prompts.plain.forget", "prompts", "reference", {r: x["plain"] for r, x in raws.items()},
               description=f"forget accuracy in the {ctx.qa_form!r} form, no context"),
        Metric("prompts.in_context.forget", "prompts", "reference", {r: x["in_context"] for r, x in raws.items()},
               description="the same, with the subject's other facts stated in the prompt"),
        Metric("prompts.one_shot.forget", "prompts", "reference", {r: x["one_shot"] for r, x in raws.items()},
               description="the same, after one solved retain example"),
        Metric("prompts.logit_lens.forget", "prompts", "reference",
               {r: max(x["logit_lens"]) if x["logit_lens"] else float("nan") for r, x in raws.items()},
               curves={r: [[L, a] for L, a in enumerate(x["logit_lens"])] for r, x in raws.items()},
               description="logit lens: best layer's accuracy of the answer's first token"),
    ]
    return m, {r: {"logit_lens": x["logit_lens"], "example_in_context": x["example_in_context"]}
               for r, x in raws.items()}


family("prompts", "prompt-level attacks: in-context relearning, one-shot, logit-lens extraction")(
    (prompts_measure, prompts_compare))


# -- parametric traces ----------------------------------------------------------------------
def _value_matrix(model, layer: int) -> torch.Tensor:
    from workbench.localise.concept import value_vectors

    return value_vectors(model, layer).float().clone()


def _top_k(model) -> int:
    return min(200, max(1, model.config.vocab_size // 20))


def original_vectors(ctx: Context) -> dict:
    """The original's value vectors (every layer) and the task's concept vectors: computed
    once, before any edit is applied."""
    if "vectors" not in ctx.shared:
        from workbench.localise.base import localise_cached

        model = ctx.original.model
        ctx.shared["vectors"] = [_value_matrix(model, L) for L in range(model.config.num_hidden_layers)]
        loc, _, _ = localise_cached(ctx.original, ctx.full_task, "concept", {}, progress=False)
        ctx.shared["concept_sites"] = [(s.layer, s.index) for s in loc.top(k=ctx.config.trace_vectors)]
    return ctx.shared


def _compare_vectors(model, tok, before: torch.Tensor, after: torch.Tensor, k: int):
    from workbench.localise.concept import top_tokens

    cos = torch.nn.functional.cosine_similarity(before, after, dim=-1)
    l2 = (before - after).norm(dim=-1)
    tb, ta = top_tokens(model, before, k), top_tokens(model, after, k)
    jac = []
    for a, b in zip(tb.tolist(), ta.tolist()):
        sa, sb = set(a), set(b)
        jac.append(len(sa & sb) / len(sa | sb))
    return cos.tolist(), l2.tolist(), jac, tb, ta


def traces_measure(ctx: Context, model, tok) -> dict:
    try:
        shared = original_vectors(ctx)
    except ValueError as exc:  # e.g. an MoE: its MLPs are experts, with no dense value vectors
        return {"unavailable": f"no MLP value vectors to follow here ({exc})"}
    k = _top_k(model)
    sites = shared["concept_sites"]
    now = {L: _value_matrix(model, L) for L in {L for L, _ in sites} | set(range(len(shared["vectors"])))}
    before = torch.stack([shared["vectors"][L][j] for L, j in sites]) if sites else torch.zeros(0)
    after = torch.stack([now[L][j] for L, j in sites]) if sites else torch.zeros(0)
    concept = []
    if sites:
        cos, l2, jac, tb, ta = _compare_vectors(model, tok, before, after, k)
        dec = lambda ids: [tok.decode([i]).strip() for i in ids[:10]]  # noqa: E731
        concept = [{"site": f"blocks.{L}.mlp.neuron.{j}", "cos": c, "l2": d, "jaccard": jj,
                    "tokens_before": dec(b), "tokens_after": dec(a)}
                   for (L, j), c, d, jj, b, a in zip(sites, cos, l2, jac, tb.tolist(), ta.tolist())]
    touched = {"n": 0, "cos": [], "l2": [], "jaccard": []}
    for L, w0 in enumerate(shared["vectors"]):
        cols = ((now[L] - w0).abs().amax(-1) > 0).nonzero()[:, 0]
        if len(cols):
            cos, l2, jac, _, _ = _compare_vectors(model, tok, w0[cols], now[L][cols], k)
            touched["n"] += len(cols)
            touched["cos"] += cos
            touched["l2"] += l2
            touched["jaccard"] += jac
    return {"concept": concept, "touched": touched, "top_k": k}


NOT_COMPARABLE = ("independently trained weights: value vectors are not aligned with the "
                  "original's, so a before/after comparison has no meaning")


def traces_compare(ctx: Context, raws: dict, missing: dict):
    metrics = []
    why = next((x["unavailable"] for x in raws.values() if "unavailable" in x), None)
    if why is not None:
        for what, direction in (("cos", "higher"), ("l2", "lower"), ("jaccard", "higher")):
            for scope in ("concept", "touched"):
                metrics.append(Metric(f"traces.{scope}.{what}", "traces", direction, notes={r: why for r in raws}))
        return metrics, {}
    for what, key, direction in (("cos", "cos", "higher"), ("l2", "l2", "lower"), ("jaccard", "jaccard", "higher")):
        m = Metric(f"traces.concept.{what}", "traces", direction,
                   description=f"task concept vectors: mean {what} between the original and this model "
                               f"(1 / 0 / 1 = the trace is intact)")
        t = Metric(f"traces.touched.{what}", "traces", direction,
                   description=f"value vectors the edit changed: mean {what} before/after")
        for r, x in raws.items():
            if r == "oracle":
                m.notes[r] = t.notes[r] = NOT_COMPARABLE
                continue
            m.values[r] = mean([c[key] for c in x["concept"]])
            if x["touched"]["n"]:
                t.values[r] = mean(x["touched"][key])
            else:
                t.notes[r] = "no value vector changed in the weights"
        metrics += [m, t]
    metrics.append(Metric("traces.touched.count", "traces", "lower",
                          {r: float(x["touched"]["n"]) for r, x in raws.items() if r != "oracle"},
                          notes={"oracle": NOT_COMPARABLE} if "oracle" in raws else {},
                          description="value vectors whose weights changed"))
    return metrics, {r: {"concept": x["concept"], "top_k": x["top_k"]} for r, x in raws.items() if r != "oracle"}


family("traces", "parametric traces: concept and touched value vectors, cosine, L2, top-k token Jaccard",
       needs_original=True)((traces_measure, traces_compare))
