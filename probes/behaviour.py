"""The behaviour family: exact-answer accuracy per split and surface-form group, and greedy
generation samples.

Held-out numbers (`workbench.tasks.declared`): the group `eval_forms` holds the forms no edit
reads (the never-trained paraphrase, cloze), and the split `retain_eval` the retain people no
edit reads (every form). `all` (every non-multiple-choice form) of forget and retain includes
the forms an edit trains on: in-sample for an edit."""
from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import WorkbenchInputError
from workbench.models.scoring import score_examples
from workbench.stats import mean_interval
from workbench.tasks.declared import eval_forms, retain_eval_facts
from workbench.tasks.task import SPLITS, form_group, subsample_facts

from .base import Context, ProbeFamily, mean, register
from .result import Metric
from .text import greedy


def split_direction(split: str) -> str:
    """Forget accuracy is best when it matches the oracle's; every other split: higher."""
    return "reference" if split == "forget" else "higher"


@dataclass(frozen=True)
class BehaviourConfig:
    samples: int = 5  # generation samples per split kept for display

    def check(self):
        if self.samples < 0:
            raise WorkbenchInputError(f"option samples={self.samples}: expected an integer >= 0")


@register
class Behaviour(ProbeFamily):
    name = "behaviour"
    summary = "accuracy per surface form and split; generation samples"
    Config = BehaviourConfig
    reads = ("qa_form", "generate_tokens")
    version = 3  # 3: held-out groups (eval_forms, the retain_eval split); 2: per-example items

    def measure(self, ctx: Context, model, tok) -> dict:
        samples = self.config.samples
        task = ctx.task
        held_forms = set(eval_forms(ctx.full_task))
        out = {"groups": {}, "forms": {}, "samples": {}, "items": {}}
        for split in (*SPLITS, "retain_eval"):
            exs = _examples(ctx, split)
            scores = score_examples(model, tok, exs)
            forms: dict[str, list[bool]] = {}
            items: dict[str, dict[str, list]] = {}  # group -> per-example correctness and person
            for ex, sc in zip(exs, scores):
                ok = bool(sc.choice_correct) if ex.kind == "mcq" else sc.correct
                groups = [form_group(task, ex)]
                if ex.kind != "mcq":
                    groups += ["all", *(("eval_forms",) if ex.form in held_forms else ())]
                for g in groups:
                    cell = items.setdefault(g, {"ok": [], "people": []})
                    cell["ok"].append(int(ok))
                    cell["people"].append(ex.fact.subject)
                forms.setdefault(ex.form, []).append(ok)
            out["groups"][split] = {g: mean(cell["ok"]) for g, cell in items.items()}
            out["items"][split] = items
            out["forms"][split] = {f: mean(v) for f, v in forms.items()}
            if split not in SPLITS:
                continue
            facts = [f for f in task.facts(split) if f.relation in task.forms[ctx.qa_form].templates]
            prompts = [task.render(f, ctx.qa_form) for f in facts[:samples]]
            gens = greedy(model, tok, [p.prompt for p in prompts], ctx.config.generate_tokens) if prompts else []
            out["samples"][split] = [{"prompt": p.prompt, "answer": p.answer, "generated": g}
                                     for p, g in zip(prompts, gens)]
        return out

    def compare(self, ctx: Context, raws: dict, missing: dict):
        metrics = []
        first = next(iter(raws.values()))
        for split in (*SPLITS, "retain_eval"):
            for group in first["groups"].get(split, {}):
                intervals = {r: list(mean_interval(cell["ok"], cell["people"])) for r, raw in raws.items()
                             if (cell := raw["items"][split].get(group))}
                metrics.append(Metric(f"behaviour.{split}.{group}", "behaviour", split_direction(split),
                                      {r: raw["groups"][split].get(group) for r, raw in raws.items()},
                                      intervals=intervals, description=describe(split, group)))
        for form in first["forms"].get("forget", {}):
            metrics.append(Metric(f"behaviour.forget.form.{form}", "behaviour", "reference",
                                  {r: raw["forms"]["forget"].get(form) for r, raw in raws.items()},
                                  description=f"accuracy on forget facts in the form {form!r}"))
        details = {r: {"forms": raw["forms"], "samples": raw["samples"]} for r, raw in raws.items()}
        return metrics, details


def _examples(ctx: Context, split: str) -> list:
    """A split's examples in every form; `retain_eval`: the retain-eval people's facts of the
    whole task, subsampled like a split (`max_facts`, `seed`)."""
    if split in SPLITS:
        return list(ctx.task.examples(split))
    task = ctx.full_task
    facts = subsample_facts(retain_eval_facts(task), ctx.config.max_facts, ctx.config.seed, split)
    return task.render_all(facts)


def describe(split: str, group: str) -> str:
    who = {"retain_eval": "retain people no edit or localiser reads"}.get(split, f"{split} facts")
    what = {"all": "every non-multiple-choice form",
            "eval_forms": "the forms no edit or localiser reads (held out)"}.get(group, f"{group} forms")
    tail = " (in-sample for an edit: includes the forms it trains on)" if group == "all" and split in (
        "forget", "retain") else ""
    return f"exact-answer accuracy, {who}, {what}{tail}"
