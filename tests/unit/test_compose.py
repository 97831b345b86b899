"""Composed forget tasks: `default?relations=..&subjects=..` (no model is loaded)."""
import pytest

from workbench.tasks import compose
from workbench.tasks.world import World, WorldConfig

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def task():
    return World(WorldConfig(people=40, attributes=3)).task()


def test_compose_filters_the_forget_split_only(task):
    rel = task.facts("forget")[0].relation
    sub = task.facts("forget")[1].subject
    by_rel = compose(task, f"relations={rel}")
    assert by_rel.facts("forget") and {f.relation for f in by_rel.facts("forget")} == {rel}
    assert by_rel.facts("retain") == task.facts("retain") and by_rel.facts("neighbour") == task.facts("neighbour")
    both = compose(task, f"relations={rel}&subjects={sub}")
    assert all(f.relation == rel and f.subject == sub for f in both.facts("forget"))
    assert by_rel.content_hash != task.content_hash and by_rel.name.endswith(f"?relations={rel}")


@pytest.mark.parametrize("query, needle", [("colour=red", "unknown key 'colour'"),
                                           ("relations=telepathy", "relation 'telepathy' is not in the forget split"),
                                           ("subjects=Nobody Atall", "subject 'Nobody Atall'")])
def test_compose_names_bad_input(task, query, needle):
    with pytest.raises(ValueError, match=needle):
        compose(task, query)
