"""The testbed world: deterministic, sized as asked, splits disjoint, forms well-formed."""
import pytest

from workbench.tasks.task import SPLITS, mcq_options
from workbench.tasks.world import ATTRIBUTES, World, WorldConfig

pytestmark = pytest.mark.unit


def test_default_world_size_and_determinism():
    a, b = World(), World()
    assert len(a.people) >= 200 and len(a.attributes) >= 5
    assert [p.name for p in a.people] == [p.name for p in b.people]
    assert a.task().content_hash == b.task().content_hash
    assert World(WorldConfig(seed=7)).task().content_hash != a.task().content_hash


def test_splits_are_disjoint_and_forget_is_ten_percent():
    w = World(WorldConfig(people=300))
    task = w.task()
    subjects = {s: {f.subject for f in task.facts(s)} for s in SPLITS}
    assert len(subjects["forget"]) == 30
    for x in SPLITS:
        for y in SPLITS:
            if x < y:
                assert not subjects[x] & subjects[y]
    assert sum(len(v) for v in subjects.values()) == 300


def test_neighbours_share_two_values_or_a_name_part():
    w = World()
    for n in w.neighbour_people:
        assert any(
            sum(n.attributes[a] == f.attributes[a] for a in n.attributes) >= 2
            or n.first == f.first or n.last == f.last
            for f in w.forget_people
        )
    assert 0 < len(w.neighbour_people) <= 2 * len(w.forget_people)


def test_forms_cover_kinds_and_held_out_ones():
    w = World()
    task = w.task()
    kinds = {f.kind for f in task.forms.values()}
    assert kinds == {"declarative", "qa", "cloze", "mcq"}
    assert len(task.forms_of("declarative")) >= 6
    fact = task.facts("retain")[0]
    unseen = task.render(fact, "para_unseen")
    assert not unseen.trained and task.render(fact, "para0").trained
    qa_trained = [task.render(f, "qa").trained for f in task.facts("retain")]
    assert any(qa_trained) and not all(qa_trained)


def test_no_prompt_is_a_prefix_of_another():
    """A prompt that is a prefix of another makes the answer position ambiguous."""
    task = World(WorldConfig(attributes=len(ATTRIBUTES))).task()
    subject = task.all_facts[0].subject
    prompts = {t.format(subject=subject, options="a , b , c , d") for f in task.forms.values()
               for t in f.templates.values()}
    clashes = [(a, b) for a in prompts for b in prompts if a != b and b.startswith(a)]
    assert clashes == []


def test_answers_follow_subjects_and_mcq_has_four_options():
    task = World().task()
    for ex in task.examples("forget"):
        assert ex.fact.subject in ex.prompt
        if ex.kind == "mcq":
            assert len(ex.options) == 4 and ex.answer in ex.options
            assert len(set(ex.options)) == 4
    fact = task.facts("forget")[0]
    assert mcq_options(fact, 0) == mcq_options(fact, 0)


def test_oracle_corpus_has_no_forget_fact():
    w = World(WorldConfig(people=60))
    forget_names = {p.name for p in w.forget_people}
    assert any(n in t for t in w.corpus(True) for n in forget_names)
    assert not any(n in t for t in w.corpus(False) for n in forget_names)


@pytest.mark.parametrize("kwargs", [{"people": 5}, {"attributes": 0}, {"attributes": 99},
                                    {"forget": 0.0}, {"forget": 0.7}])
def test_bad_world_options_name_the_option(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=key):
        WorldConfig(**kwargs)
