"""The real-knowledge task for pretrained models (SmolLM2): facts the project wrote itself.

`data/realfacts.json` holds >= 150 facts in 8 relations (capital, language, currency,
continent, landmark, element symbol, book author, company country), each with three
distractors and a topic. Forget = every fact of one topic (default: France); neighbour = the
facts of other countries on the same continent (the hardest retain cases); retain = the
rest. `workbench.models` keeps only the facts a model answers correctly (`usable_task`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import WorkbenchInputError
from .task import Fact, ForgetTask, Form

DATA = Path(__file__).parent / "data" / "realfacts.json"
DEFAULT_TOPIC = "France"


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def all_facts() -> list[Fact]:
    return [Fact(f["subject"], f["relation"], f["answer"], tuple(f["distractors"]), f["topic"])
            for f in _data()["facts"]]


def topics() -> list[str]:
    return sorted({f.topic for f in all_facts()})


def forms() -> dict[str, Form]:
    rel = _data()["relations"]
    return {
        "prompt": Form("prompt", "declarative", {r: t["prompt"] for r, t in rel.items()}),
        "paraphrase": Form("paraphrase", "declarative", {r: t["paraphrase"] for r, t in rel.items()}),
        "qa": Form("qa", "qa", {r: f"Question: {t['question']}\nAnswer:" for r, t in rel.items()}),
        "cloze": Form("cloze", "cloze", {r: f"Fill in the blank: {t['prompt']} ___.\nAnswer:" for r, t in rel.items()}),
        "mcq": Form("mcq", "mcq", {r: f"Question: {t['question']}\nOptions: {{options}}\nAnswer:"
                                   for r, t in rel.items()}),
    }


def real_task(topic: str = DEFAULT_TOPIC, facts: list[Fact] | None = None) -> ForgetTask:
    facts = all_facts() if facts is None else facts
    known = topics()
    if topic not in known:
        raise WorkbenchInputError(f"topic {topic!r}: expected one of {', '.join(known)}")
    continent = {f.subject.removeprefix("the "): f.answer for f in all_facts() if f.relation == "continent"}
    home = continent.get(topic)
    forget = [f for f in facts if f.topic == topic]
    neighbour = [f for f in facts if f.topic != topic and home and continent.get(f.topic) == home]
    retain = [f for f in facts if f.topic != topic and f not in neighbour]
    return ForgetTask(
        name=f"real-{topic.lower().replace(' ', '-')}",
        splits={"forget": forget, "retain": retain, "neighbour": neighbour},
        forms=forms(),
        trained=None,
        lexicon=tuple(sorted({w for f in forget for w in (*f.subject.split(), *f.answer.split())})),
        description=f"forget everything about {topic}; neighbours: other countries in {home}",
    )
