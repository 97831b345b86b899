"""What a model knows: exact-answer accuracy per split and surface-form group, and the
testbed quality floor (full model vs oracle) that `workbench models prepare` prints.

Groups: `trained` (every (fact, form) pair the training data held), `heldout_qa` (question
and cloze forms of people whose question forms were never trained), `unseen_para` (the
paraphrase no one was trained on), `mcq` (multiple choice, best option), and, for tasks with
no training record (real models), one group per form.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import cache
from ..tasks.declared import eval_forms, retain_eval_facts
from ..tasks.task import SPLITS, ForgetTask, form_group, subsample_facts
from .scoring import accuracy, score_examples


@dataclass(frozen=True)
class GroupAccuracy:
    """Exact-answer accuracy of one (split, surface-form group) and how many examples it has."""
    accuracy: float
    n: int


def knowledge(model, tokenizer, task: ForgetTask, splits=SPLITS, batch_size: int = 128) -> dict:
    """{split: {group: GroupAccuracy}}."""
    out: dict[str, dict[str, GroupAccuracy]] = {}
    for split in splits:
        examples = list(task.examples(split))
        scores = score_examples(model, tokenizer, examples, batch_size)
        groups: dict[str, list] = {}
        for ex, sc in zip(examples, scores):
            groups.setdefault(form_group(task, ex), []).append((sc, ex.kind == "mcq"))
        out[split] = {
            g: GroupAccuracy(accuracy([s for s, _ in items], multiple_choice=items[0][1]), len(items))
            for g, items in groups.items()
        }
    return out


def chance(task: ForgetTask, split: str = "forget", world=None) -> float:
    """Exact-answer chance level: mean over facts of 1/|values of the relation|."""
    facts = task.facts(split)
    if world is None or not facts:
        return float("nan")
    sizes = {a.name: len(a.values) for a in world.attributes}
    return sum(1 / sizes[f.relation] for f in facts) / len(facts)


# -- the testbed quality floor --------------------------------------------------------------
FLOOR_VERSION = 2  # 2: the oracle's forget line is one-sided (at most chance + 0.05)
FLOOR = (
    ("full trained forms (all splits)", "trained", ">= 0.95"),
    ("full held-out question/cloze", "heldout_qa", ">= 0.90"),
    ("full unseen paraphrase", "unseen_para", "reported (>= 0.40)"),
    ("full multiple choice", "mcq", ">= 0.90"),
)


def _pooled(table: dict, group: str, splits=SPLITS) -> float:
    cells = [table[s][group] for s in splits if group in table[s]]
    n = sum(c.n for c in cells)
    return sum(c.accuracy * c.n for c in cells) / n if n else float("nan")


def answerable(table: dict, split: str) -> float:
    """Accuracy over every non-MCQ form of a split (trained or not)."""
    cells = [c for g, c in table[split].items() if g != "mcq"]
    n = sum(c.n for c in cells)
    return sum(c.accuracy * c.n for c in cells) / n


def quality_floor(full: dict, oracle: dict | None, chance_level: float) -> list[dict]:
    """Rows (metric, value, target, ok) comparing the full model with its oracle."""
    rows = []
    for label, group, target in FLOOR:
        v = _pooled(full, group)
        rows.append({"metric": label, "value": v, "target": target,
                     "ok": v >= float(target.rstrip(")").split()[-1])})
    if oracle is not None:
        of = answerable(oracle, "forget")
        # one-sided: an oracle under chance knows no more of the forget set than one at chance
        # (a 100-person world's oracle read 0.033 against chance 0.083 on its 50 forget facts,
        # whose standard error alone is 0.039)
        rows.append({"metric": "oracle forget accuracy (all forms)", "value": of,
                     "target": f"at most chance {chance_level:.3f} + 0.05",
                     "ok": of <= chance_level + 0.05})
        fr, orr = _pooled(full, "trained", ("retain", "neighbour")), _pooled(oracle, "trained", ("retain", "neighbour"))
        rows.append({"metric": "oracle retain accuracy (trained forms)", "value": orr,
                     "target": f"within 0.02 of full {fr:.3f}", "ok": abs(orr - fr) <= 0.02})
    return rows


def split_accuracy(model, tokenizer, task: ForgetTask, splits=SPLITS, max_facts: int | None = None,
                   seed: int = 0, batch_size: int = 128) -> dict[str, float]:
    """Exact-answer accuracy per split over every non-multiple-choice form (trained and
    held-out alike), facts subsampled to `max_facts` per split (`subsample_facts`)."""
    return {split: _accuracy(model, tokenizer, task, subsample_facts(task.facts(split), max_facts, seed, split),
                             None, batch_size) for split in splits}


def heldout_accuracy(model, tokenizer, task: ForgetTask, max_facts: int | None = None, seed: int = 0,
                     batch_size: int = 128) -> dict[str, float]:
    """Exact-answer accuracy on what no edit reads (`workbench.tasks.declared`): `forget`, the
    forget facts in the evaluation forms; `retain`, every non-multiple-choice form of the
    retain-eval people; `neighbour`, every non-multiple-choice form of the neighbours."""
    sources = {"forget": (task.facts("forget"), eval_forms(task)), "retain": (retain_eval_facts(task), None),
               "neighbour": (task.facts("neighbour"), None)}
    return {split: _accuracy(model, tokenizer, task, subsample_facts(facts, max_facts, seed, split), forms,
                             batch_size) for split, (facts, forms) in sources.items()}


def _accuracy(model, tokenizer, task: ForgetTask, facts, forms, batch_size: int) -> float:
    exs = task.render_all(facts, forms, mcq=False)
    return accuracy(score_examples(model, tokenizer, exs, batch_size)) if exs else float("nan")


@dataclass(frozen=True)
class FloorVerdict:
    """Whether a testbed model (with its oracle twin) meets the quality floor, line by line."""
    spec: str
    rows: tuple[dict, ...]

    @property
    def met(self) -> bool:
        return all(r["ok"] is not False for r in self.rows)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["ok"] is False]

    def summary(self) -> str:
        """One line: 'met', or each failed floor line with its value and target."""
        if self.met:
            return "every floor line met"
        return "; ".join(f"{r['metric']} {r['value']:.3f} (target {r['target']})" for r in self.failed)

    def to_dict(self) -> dict:
        return {"spec": self.spec, "met": self.met, "rows": list(self.rows)}


@dataclass(frozen=True)
class QualityReport:
    """A testbed model and its oracle twin: each one's knowledge table and the floor verdict."""
    tables: tuple[dict, dict]  # full, oracle: {split: {group: GroupAccuracy}}
    verdict: FloorVerdict


def quality_report(spec: str) -> QualityReport:
    """The knowledge tables and quality floor of testbed model `spec` and its oracle twin
    (both trained where missing), measured once per pair of trained weights and kept in the
    cache (scoring every form of a 450-person world takes about a minute)."""
    import json

    from . import load, testbed

    full = testbed.TestbedSpec.parse(spec).twin(oracle=False)
    key = cache.content_hash({"full": full.recipe(), "oracle": full.twin().recipe(), "floor": FLOOR,
                              "version": FLOOR_VERSION})

    def make() -> dict:
        _, tables, rows = testbed_quality([load(str(full), progress=False), load(str(full.twin()), progress=False)])
        return {"tables": [{s: {g: [c.accuracy, c.n] for g, c in t[s].items()} for s in t} for t in tables],
                "rows": rows}

    data, _, _ = cache.cached(cache.entry_path("floors", "testbed-floor", key), make,
                              lambda data, out: cache.write_json(out / "floor.json", data),
                              lambda out: json.loads((out / "floor.json").read_text()))
    tables = tuple({s: {g: GroupAccuracy(*v) for g, v in t[s].items()} for s in t} for t in data["tables"])
    return QualityReport(tables, FloorVerdict(str(full), tuple(data["rows"])))


def floor_verdict(spec: str) -> FloorVerdict:
    """Whether testbed model `spec` and its oracle twin meet the quality floor (cached)."""
    return quality_report(spec).verdict


def testbed_quality(loaded_models: list) -> tuple[ForgetTask, list[dict], list[dict]]:
    """(task, knowledge table of each model, quality-floor rows) for a testbed model and,
    optionally, its oracle twin (the second model)."""
    from ..tasks.world import World

    world = World(loaded_models[0].testbed.world)
    task = world.task()
    tables = [knowledge(m.model, m.tokenizer, task) for m in loaded_models]
    rows = quality_floor(tables[0], tables[1] if len(tables) > 1 else None, chance(task, "forget", world))
    return task, tables, rows
