"""Planted signals (`workbench.faithfulness.planted`): one forget person's facts taught to the
small world's oracle through 8 neurons of one MLP layer only (so they live nowhere else; each
planted row and column keeps its norm), four times (four people, four seeds), and an MoE router
row that sends one person's tokens to one expert. A localiser must rank the planted sites at the
top; on the same models with a retain person as the forget set (the shuffled null) the planted
sites must not stand out; and scorers that ignore the forget set (random, weight magnitude)
must fail the same test (so the test can fail).

Measured on the AVX2 machine, the mean share of the planted neurons among a localiser's top 16
of 2,048 neurons (chance: 0.008), planted / null: circuits[oct,neuron] 0.66 / 0.00, WAGLE 0.69 /
0.03, SalUn 0.78 / 0.19, SNIP 0.78 / 0.09, selective 0.28 / 0.00, concept (resolved scorer)
about 0.16 / 0.00 (the earlier top-k scorer: 0.06 / 0.03), magnitude 0.06 / 0.06."""
import pytest

from workbench.faithfulness.planted import person_task, plant_expert, plant_neurons
from workbench.localise import localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N = 8  # planted neurons

# localiser (options) -> what it must find: neuron localisers rank the planted neurons, weight
# localisers put their top scalars in the planted neurons' rows and columns
NEURON_RUNS = {"circuits[oct,neuron]": ("circuits", {"nodes": "neuron"})}
WEIGHT_RUNS = {"wagle": ("wagle", {}), "salun": ("salun", {})}
WEIGHT_RUNS["snip"] = ("snip", {})
# measured failures (strict xfail: a fix is noticed)
FAILING = {
    "concept": ("concept", {}, "about 0.16 planted vs 0.00 null with the resolved scorer (the top-k entity scorer: "
                               "0.06 / 0.03): the planted neurons' value vectors need not write the answers "
                               "through the unembedding directly, which is the paper's premise"),
    "selective": ("selective", {}, "0.28 planted vs 0.00 null: 35x chance and clean in the null, but below "
                                   "half of the planted neurons (why is not yet understood)"),
}
PLANTS = 4


@pytest.fixture(scope="module")
def plants(small_dense_oracle):
    task = small_dense_oracle.task()
    people = sorted({f.subject for f in task.facts("forget")})
    layer = small_dense_oracle.model.config.num_hidden_layers - 2
    return [plant_neurons(small_dense_oracle, task, people[i % len(people)], layer=layer, n=N, seed=i)
            for i in range(PLANTS)]


@pytest.fixture(scope="module")
def planted(plants):
    return plants[0]


@pytest.fixture(scope="module")
def null_task(planted, small_dense_oracle):
    task = small_dense_oracle.task()
    return person_task(task, sorted({f.subject for f in task.facts("retain")})[0], split="retain")


def _neuron_scores(loc, model) -> dict:
    """A weight localisation's scores summed over each neuron's three slices (gate and up rows,
    the down-projection column): the unit a planted neuron is."""
    from workbench.models.arch import resolve, sites_of_kind

    return {site: sum(float(loc.weight_scores[ps.name][ps.index].sum()) for ps in resolve(site, model).params)
            for site in sites_of_kind(model, "neuron")}


def _found(loc, planted) -> float:
    """The share of the planted neurons among a localisation's top 2N neurons (a weight
    localisation's scalars summed per neuron)."""
    if loc.kind == "weight":
        scores = _neuron_scores(loc, planted.loaded.model)
        top = sorted(scores, key=lambda s: -scores[s])[: 2 * N]
    else:
        top = loc.top(k=2 * N)
    return len(set(top) & set(planted.sites)) / N


def _mean_found(plants, method, options, task_of=lambda pl: pl.task) -> float:
    return sum(_found(localise(pl.loaded, task_of(pl), method, options, progress=False), pl) for pl in plants) / len(plants)


def test_the_plants_took_and_left_the_retain_facts(plants):
    for pl in plants:
        assert pl.before["forget"] <= 0.4 and pl.after["forget"] >= 0.8, (pl.before, pl.after)
        assert pl.after["retain"] >= pl.before["retain"] - 0.1, (pl.before, pl.after)
    person = plants[0].task.facts("forget")[0].subject
    assert plants[0].loaded.spec.endswith(f"#planted-{person}-L{plants[0].sites[0].layer}")
    assert len({pl.sites for pl in plants}) == PLANTS  # other neurons each time


@pytest.mark.parametrize("label", [*NEURON_RUNS, *WEIGHT_RUNS])
def test_localisers_find_the_planted_neurons_and_not_in_the_null(label, plants, null_task):
    method, options = {**NEURON_RUNS, **WEIGHT_RUNS}[label]
    found = _mean_found(plants, method, options)
    null = _mean_found(plants, method, options, lambda pl: null_task)
    assert found >= 0.5 and null <= found / 2, (label, found, null)


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2]))
                                   for k, v in FAILING.items()])
def test_localisers_that_miss_the_planted_neurons(label, plants, null_task):
    method, options, _ = FAILING[label]
    found = _mean_found(plants, method, options)
    assert found >= 0.5 and _mean_found(plants, method, options, lambda pl: null_task) <= found / 2


def test_scorers_that_ignore_the_forget_set_fail_the_planted_test(plants):
    """Random scores and weight magnitudes find nothing: the planted neurons keep their norms,
    so what the localisers above find is the forget set's signal, not a conspicuous component."""
    for method in ("random", "magnitude"):
        assert _mean_found(plants, method, {}) < 0.25, method


def test_uoe_finds_the_planted_expert_and_not_in_the_null(small_moe):
    task = small_moe.task()
    person = sorted({f.subject for f in task.facts("forget")})[0]
    expert = small_moe.model.config.num_local_experts - 1
    pe = plant_expert(small_moe, task, person, layer=1, expert=expert)
    ranked = [s for s, _ in localise(pe.loaded, pe.task, "experts", {}, progress=False).ranked()]
    assert ranked[0] == pe.sites[0], ranked[:3]
    null = person_task(task, sorted({f.subject for f in task.facts("retain")})[0], split="retain")
    ranked_null = [s for s, _ in localise(pe.loaded, null, "experts", {}, progress=False).ranked()]
    assert ranked_null.index(pe.sites[0]) >= 2, ranked_null[:3]


def test_bad_plant_inputs_are_named(small_dense_oracle):
    task = small_dense_oracle.task()
    with pytest.raises(ValueError, match="person 'Nobody': not in the forget split; expected one of"):
        person_task(task, "Nobody")
    with pytest.raises(ValueError, match="layer 99: out of range"):
        plant_neurons(small_dense_oracle, task, sorted({f.subject for f in task.facts("forget")})[0], layer=99)
