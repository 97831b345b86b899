"""The train/eval declaration of a task: what an edit may read, and what only evaluation does."""
import pytest

from workbench.tasks.declared import EVAL_SHARE, eval_forms, retain_eval_facts, retain_eval_people, train_view
from workbench.tasks.world import World, WorldConfig

pytestmark = pytest.mark.unit


def test_the_train_view_holds_only_train_pairs():
    task = World(WorldConfig(people=60, attributes=3)).task()
    view = train_view(task)
    held = retain_eval_people(task)
    retain_people = {f.subject for f in task.facts("retain")}
    # a seeded fifth of the retain people, the same every time, none of them in the view
    assert len(held) == round(EVAL_SHARE * len(retain_people)) and held == retain_eval_people(task)
    assert held <= retain_people and not held & {f.subject for f in view.all_facts}
    assert view.facts("forget") == task.facts("forget") and view.facts("neighbour") == []
    assert len(view.facts("retain")) + len(retain_eval_facts(task)) == len(task.facts("retain"))
    # the forms an edit trains on: the five trained paraphrases and the question; never the unseen
    # paraphrase, cloze or multiple choice, which stay for evaluation
    assert sorted(view.forms) == ["para0", "para1", "para2", "para3", "para4", "qa"]
    assert eval_forms(task) == ["para_unseen", "cloze"]
    with pytest.raises(ValueError, match="form 'cloze': expected one of"):
        view.render(task.facts("forget")[0], "cloze")
    assert train_view(view) is view and view.name == f"{task.name}[train]"
    # the full task (and so the testbed's training recipe) is unchanged; the view has its own identity
    assert task.content_hash == World(WorldConfig(people=60, attributes=3)).task().content_hash
    assert view.content_hash != task.content_hash


def test_another_world_seed_holds_out_other_people():
    a = retain_eval_people(World(WorldConfig(seed=0)).task())
    b = retain_eval_people(World(WorldConfig(seed=1)).task())
    assert a != b


def test_holdout_people_are_new_people_no_model_or_edit_sees():
    cfg = WorldConfig(people=60, attributes=3)
    world = World(cfg)
    task = world.task()
    holdout = {f.subject for f in task.facts("holdout")}
    # as many holdout people as forget people, none of them a person of the world
    assert len(holdout) == len(world.forget_people) == len(world.holdout_people)
    assert not holdout & {p.name for p in world.people}
    assert len(task.facts("holdout")) == len(holdout) * cfg.attributes
    # never trained: not in either corpus, never marked trained, not in the train view
    corpus = world.corpus() + world.corpus(include_forget=False)
    assert not [t for t in corpus if any(name in t for name in holdout)]
    assert not any(ex.trained for ex in task.examples("holdout"))
    assert train_view(task).facts("holdout") == [] and not holdout & {f.subject for f in train_view(task).all_facts}
    # the world's people and every split but the holdout are the same without it, so is the
    # training recipe's task hash (models trained before the holdout split existed stay valid)
    bare = world.task(holdout=False)
    assert {s: bare.facts(s) for s in ("forget", "retain", "neighbour")} == \
        {s: task.facts(s) for s in ("forget", "retain", "neighbour")}
    assert bare.facts("holdout") == [] and "holdout" not in bare.to_dict()["splits"]
    # seeded: the same world gives the same holdout people, another seed others
    assert World(cfg).task().facts("holdout") == task.facts("holdout")
    assert {f.subject for f in World(WorldConfig(seed=1, people=60, attributes=3)).task().facts("holdout")} != holdout
