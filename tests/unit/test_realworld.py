"""The real-knowledge facts: sizes, distractors, splits by topic."""
import pytest

from workbench.tasks.realworld import all_facts, real_task, topics

pytestmark = pytest.mark.unit


def test_facts_and_relations():
    facts = all_facts()
    assert len(facts) >= 150
    rels = {f.relation for f in facts}
    assert len(rels) >= 6
    for f in facts:
        assert len(f.distractors) == 3 and f.answer not in f.distractors
    assert len({f.key for f in facts}) == len(facts)


def test_split_by_topic_is_disjoint_and_renders():
    task = real_task("Japan")
    assert all(f.topic == "Japan" for f in task.facts("forget"))
    assert len(task.facts("forget")) >= 6
    keys = [set(f.key for f in task.facts(s)) for s in ("forget", "retain", "neighbour")]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert sum(map(len, keys)) == len(all_facts())
    ex = task.render(task.facts("forget")[0], "mcq")
    assert ex.answer in ex.options and ex.prompt.endswith("Answer:")


def test_unknown_topic_names_the_choices():
    with pytest.raises(ValueError, match="Japan"):
        real_task("Atlantis")
    assert "France" in topics()
