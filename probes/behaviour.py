"""The behaviour family: exact-answer accuracy per split and surface-form group, and greedy
generation samples."""
from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import WorkbenchInputError
from workbench.models.scoring import score_examples
from workbench.stats import mean_interval
from workbench.tasks.task import SPLITS, form_group

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
    version = 2  # 2: per-example correctness and people kept for the intervals

    def measure(self, ctx: Context, model, tok) -> dict:
        samples = self.config.samples
        task = ctx.task
        out = {"groups": {}, "forms": {}, "samples": {}, "items": {}}
        for split in SPLITS:
            exs = list(task.examples(split))
            scores = score_examples(model, tok, exs)
            forms: dict[str, list[bool]] = {}
            items: dict[str, dict[str, list]] = {}  # group -> per-example correctness and person
            for ex, sc in zip(exs, scores):
                ok = bool(sc.choice_correct) if ex.kind == "mcq" else sc.correct
                for g in (form_group(task, ex), *(("all",) if ex.kind != "mcq" else ())):
                    cell = items.setdefault(g, {"ok": [], "people": []})
                    cell["ok"].append(int(ok))
                    cell["people"].append(ex.fact.subject)
                forms.setdefault(ex.form, []).append(ok)
            out["groups"][split] = {g: mean(cell["ok"]) for g, cell in items.items()}
            out["items"][split] = items
            out["forms"][split] = {f: mean(v) for f, v in forms.items()}
            facts = [f for f in task.facts(split) if f.relation in task.forms[ctx.qa_form].templates]
            prompts = [task.render(f, ctx.qa_form) for f in facts[:samples]]
            gens = greedy(model, tok, [p.prompt for p in prompts], ctx.config.generate_tokens) if prompts else []
            out["samples"][split] = [{"prompt": p.prompt, "answer": p.answer, "generated": g}
                                     for p, g in zip(prompts, gens)]
        return out

    def compare(self, ctx: Context, raws: dict, missing: dict):
        metrics = []
        first = next(iter(raws.values()))
        for split in SPLITS:
            for group in first["groups"].get(split, {}):
                intervals = {r: list(mean_interval(cell["ok"], cell["people"])) for r, raw in raws.items()
                             if (cell := raw["items"][split].get(group))}
                metrics.append(Metric(f"behaviour.{split}.{group}", "behaviour", split_direction(split),
                                      {r: raw["groups"][split].get(group) for r, raw in raws.items()},
                                      intervals=intervals,
                                      description=f"exact-answer accuracy, {split} facts, {group} forms"))
        for form in first["forms"].get("forget", {}):
            metrics.append(Metric(f"behaviour.forget.form.{form}", "behaviour", "reference",
                                  {r: raw["forms"]["forget"].get(form) for r, raw in raws.items()},
                                  description=f"accuracy on forget facts in the form {form!r}"))
        details = {r: {"forms": raw["forms"], "samples": raw["samples"]} for r, raw in raws.items()}
        return metrics, details


