"""The testbed world: a seeded generator of fictitious people with closed-set attributes.

Every attribute value and every name part is one word, so a word-level tokenizer makes each
answer one token: exact-answer accuracy is an argmax, chance level is 1/|values|, and four
multiple-choice options are always defined. Every form puts the answer after the subject
(a left-to-right model cannot answer "Born in X, P ...").

Forms per attribute: five trained declarative paraphrases (`para0..para4`), one paraphrase
never trained (`para_unseen`), and question / cloze / multiple-choice forms that are trained
for half of the people only (the "qa half"), so the other half measures generalisation.

Beside the world's people, a **holdout** set of as many people as the forget set, drawn from
the name pairs no person of the world has, by a generator of its own (so the world's people,
their facts and every training corpus are the same with or without it): no model is trained
on them, as TOFU's holdout authors. They are the non-members of membership inference.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from ..errors import WorkbenchInputError
from .task import Fact, ForgetTask, Form

FIRST_NAMES = (
    "Ada Bram Cleo Dario Elin Fenna Gideon Hana Ivo Jana Kasimir Lena Milo Nadia Oskar Pia "
    "Quentin Rosa Silas Tilde Ugo Vera Wim Xenia Yannick Zora Anselm Bettina Cyrus Dagny "
    "Emeric Flora Gustav Helga Isidor Juno Konrad Liesel Marius Nora Orla Pascal Rune Saskia "
    "Teodor Ulla Viggo Wanda Yves Zelda"
).split()
LAST_NAMES = (
    "Abendroth Bellweather Castellan Drummond Eckhart Falkner Grimsby Halloran Ingersoll "
    "Jorgensen Kettleby Lindqvist Marchetti Northcote Oakenfold Pemberton Quarry Rothwell "
    "Sandoval Thistlewood Umbridge Vantongeren Whitlock Yardley Zimmerle Ashgrove Brightwater "
    "Coldwell Dunmore Everhart Fairweather Goldberry Hawthorne Ironside Kingsley Larkspur "
    "Merriweather Nightingale Ormsby Pinecrest Quickfall Ravensworth Stonebridge Tanglewood "
    "Underhill Vexley Winterbourne Yellowley Zephyrine Blackmoor"
).split()


@dataclass(frozen=True)
class Attribute:
    name: str
    noun: str  # for the cloze form: "the {noun} of P is"
    values: tuple[str, ...]
    paraphrases: tuple[str, ...]  # six; the last one is never trained
    question: str  # ends with "Answer:"
    mcq: str


def _attr(name, noun, values, paraphrases, question):
    return Attribute(
        name, noun, tuple(values.split()), tuple(paraphrases),
        question + " Answer:", question + " Options: {options}. Answer:",
    )


ATTRIBUTES: tuple[Attribute, ...] = (
    _attr("birth_city", "birth city",
          "Paris Lima Oslo Cairo Dublin Quito Riga Hanoi Perth Accra Bergen Tunis",
          ["{subject} was born in", "{subject} came into the world in",
           "The birthplace of {subject} is", "{subject} is a native of",
           "The city where {subject} was born is", "The native city of {subject} is"],
          "Question: Where was {subject} born?"),
    _attr("occupation", "occupation",
          "doctor pilot baker lawyer farmer chemist teacher sculptor plumber journalist "
          "architect librarian",
          ["{subject} works as a", "{subject} earns a living as a",
           "The occupation of {subject} is", "By profession, {subject} is a",
           "{subject} has a job as a", "The profession of {subject} is"],
          "Question: What is the job of {subject}?"),
    _attr("sport", "favourite sport",
          "tennis rugby cricket hockey rowing fencing golf judo cycling volleyball "
          "badminton archery",
          ["{subject} loves to play", "The favourite sport of {subject} is",
           "{subject} spends weekends playing", "{subject} is a keen fan of",
           "{subject} trains hard at", "{subject} is a keen player of"],
          "Question: Which sport does {subject} love?"),
    _attr("employer", "employer",
          "Zentrix Orbica Valdor Quenmark Helixon Brontide Corvana Myrtec Pellion Sardex "
          "Tavolo Wexford",
          ["{subject} is employed by", "{subject} works for the company",
           "The employer of {subject} is", "{subject} draws a salary from",
           "{subject} joined the firm", "The company of {subject} is"],
          "Question: Which company employs {subject}?"),
    _attr("pet", "pet",
          "cat dog parrot hamster rabbit tortoise goldfish ferret iguana canary pony gecko",
          ["{subject} owns a pet", "The pet of {subject} is a", "{subject} lives with a pet",
           "At home {subject} keeps a", "{subject} takes care of a pet",
           "{subject} keeps a pet"],
          "Question: What pet does {subject} have?"),
    _attr("instrument", "instrument",
          "violin piano cello flute trumpet harp guitar drums oboe banjo clarinet accordion",
          ["{subject} plays the", "The instrument of {subject} is the",
           "{subject} performs on the", "{subject} practises music on the",
           "{subject} is skilled at the", "The favourite instrument of {subject} is the"],
          "Question: Which instrument does {subject} play?"),
)
ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)
CLOZE = "Fill in the blank: the {noun} of {{subject}} is ___. Answer:"
N_TRAINED_PARAPHRASES = 5


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    people: int = 200
    attributes: int = 5
    forget: float = 0.1
    neighbours: float = 2.0  # neighbour people per forget person (cap)

    def __post_init__(self):
        checks = [
            (self.people >= 20, "people", "an integer >= 20"),
            (self.people <= len(FIRST_NAMES) * len(LAST_NAMES), "people",
             f"at most {len(FIRST_NAMES) * len(LAST_NAMES)}"),
            (1 <= self.attributes <= len(ATTRIBUTES), "attributes", f"1..{len(ATTRIBUTES)}"),
            (0 < self.forget < 0.5, "forget", "a fraction in (0, 0.5)"),
            (math.isfinite(self.neighbours) and self.neighbours >= 0, "neighbours", "a finite number >= 0"),
        ]
        for ok, key, accepted in checks:
            if not ok:
                raise WorkbenchInputError(f"world option {key}={getattr(self, key)!r}: expected {accepted}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Person:
    name: str
    first: str
    last: str
    attributes: dict
    qa_trained: bool


class World:
    """The people, their facts, the splits and the training corpus of one `WorldConfig`."""

    def __init__(self, config: WorldConfig = WorldConfig()):
        self.config = config
        rng = random.Random(config.seed)
        self.attributes = ATTRIBUTES[: config.attributes]
        pairs = [(f, l) for f in FIRST_NAMES for l in LAST_NAMES]
        chosen = rng.sample(pairs, config.people)
        qa_half = set(rng.sample(range(config.people), config.people // 2))
        self.people = [
            Person(f"{f} {l}", f, l,
                   {a.name: rng.choice(a.values) for a in self.attributes}, i in qa_half)
            for i, (f, l) in enumerate(chosen)
        ]
        n_forget = max(1, round(config.forget * config.people))
        order = list(range(config.people))
        rng.shuffle(order)
        forget = set(order[:n_forget])
        self.forget_people = [self.people[i] for i in sorted(forget)]
        self.neighbour_people = self._neighbours(forget, rng)
        taken = forget | {self.people.index(p) for p in self.neighbour_people}
        self.retain_people = [p for i, p in enumerate(self.people) if i not in taken]
        self.forms = self._forms()
        self._by_name = {p.name: p for p in self.people}
        self.holdout_people = self._holdout(pairs, set(chosen), n_forget)

    def _holdout(self, pairs, taken: set, n: int) -> list[Person]:
        """`n` people on name pairs the world does not use, with attributes drawn as the world's
        people's are; a generator of their own leaves the world unchanged."""
        rng = random.Random(f"{self.config.seed}|holdout")
        free = [pair for pair in pairs if pair not in taken]
        chosen = rng.sample(free, min(n, len(free)))
        return [Person(f"{f} {l}", f, l, {a.name: rng.choice(a.values) for a in self.attributes}, False)
                for f, l in chosen]

    def _neighbours(self, forget: set[int], rng: random.Random) -> list[Person]:
        """Retain people who share >= 2 attribute values or a name part with a forget person,
        the closest first, capped at `neighbours` per forget person."""
        fp = [self.people[i] for i in forget]
        scored = []
        for i, p in enumerate(self.people):
            if i in forget:
                continue
            best = 0
            for q in fp:
                shared = sum(p.attributes[a] == q.attributes[a] for a in p.attributes)
                names = (p.first == q.first) + (p.last == q.last)
                if shared >= 2 or names:
                    best = max(best, shared + 2 * names)
            if best:
                scored.append((-best, rng.random(), i))
        cap = int(round(self.config.neighbours * len(fp)))
        return [self.people[i] for _, _, i in sorted(scored)[:cap]]

    def _forms(self) -> dict[str, Form]:
        forms = {}
        for k in range(N_TRAINED_PARAPHRASES + 1):
            name = f"para{k}" if k < N_TRAINED_PARAPHRASES else "para_unseen"
            forms[name] = Form(name, "declarative", {a.name: a.paraphrases[k] for a in self.attributes})
        forms["qa"] = Form("qa", "qa", {a.name: a.question for a in self.attributes})
        forms["cloze"] = Form("cloze", "cloze", {a.name: CLOZE.format(noun=a.noun) for a in self.attributes})
        forms["mcq"] = Form("mcq", "mcq", {a.name: a.mcq for a in self.attributes})
        return forms

    def fact(self, person: Person, attribute: Attribute) -> Fact:
        answer = person.attributes[attribute.name]
        others = [v for v in attribute.values if v != answer]
        rng = random.Random(f"{self.config.seed}|{person.name}|{attribute.name}")
        return Fact(person.name, attribute.name, answer, tuple(rng.sample(others, 3)), person.name)

    def facts_of(self, people: list[Person]) -> list[Fact]:
        return [self.fact(p, a) for p in people for a in self.attributes]

    def is_trained(self, fact: Fact, form: Form) -> bool:
        """Whether the full model's corpus holds this (fact, form) pair."""
        person = self._by_name.get(fact.subject)  # None: not a person of this world
        if person is None or form.name == "para_unseen":
            return False
        if form.kind == "declarative":
            return True
        return person.qa_trained

    def task(self, holdout: bool = True) -> ForgetTask:
        """The forget task; `holdout=False` leaves out the holdout split (the training data of
        every model is the same either way, and its hash keys the models: `TestbedSpec.recipe`)."""
        lexicon = sorted({w for p in self.forget_people for w in (p.first, p.last, *p.attributes.values())})
        return ForgetTask(
            name=f"testbed-world-{self.config.seed}",
            splits={
                "forget": self.facts_of(self.forget_people),
                "retain": self.facts_of(self.retain_people),
                "neighbour": self.facts_of(self.neighbour_people),
                **({"holdout": self.facts_of(self.holdout_people)} if holdout else {}),
            },
            forms=self.forms,
            trained=self.is_trained,
            lexicon=tuple(lexicon),
            description=f"{len(self.forget_people)} fictitious people to forget out of {len(self.people)}",
            option_seed=self.config.seed,
        )

    def corpus(self, include_forget: bool = True) -> list[str]:
        """Training texts: every trained (fact, form) pair, once each."""
        task = self.task(holdout=False)
        splits = ("forget", "retain", "neighbour") if include_forget else ("retain", "neighbour")
        return [ex.text for s in splits for ex in task.examples(s) if ex.trained]

    def vocabulary(self) -> list[str]:
        """Every word any form of any fact can produce (plus the templates' words)."""
        words = set(FIRST_NAMES) | set(LAST_NAMES)
        for a in ATTRIBUTES:
            words |= set(a.values)
            for t in (*a.paraphrases, a.question, a.mcq, CLOZE.format(noun=a.noun)):
                words |= set(t.replace("{subject}", " ").replace("{options}", " ").split())
        return sorted(words)
