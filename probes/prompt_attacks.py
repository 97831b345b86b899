"""The prompts family: prompt-level attacks (the subject's other facts in context, one solved
example first) and logit-lens extraction of the answer from intermediate layers."""
from __future__ import annotations

import random

import torch

from workbench.models.arch import table_for
from workbench.models.readouts import last_token_states
from workbench.models.scoring import accuracy, score_examples
from workbench.tasks.task import Example

from .base import Context, ProbeFamily, register
from .result import Metric


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


@register
class PromptAttacks(ProbeFamily):
    name = "prompts"
    summary = "prompt-level attacks: in-context relearning, one-shot, logit-lens extraction"
    reads = ("qa_form",)

    def measure(self, ctx: Context, model, tok) -> dict:
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

    def compare(self, ctx: Context, raws: dict, missing: dict):
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


