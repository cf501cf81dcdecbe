"""Knowledge families: facts about entities, held out by (entity, relation) pair.

These are the families in which an explanation can change what a student knows. Every entity has
a value for several *relations* ("what it eats", "where it lives"); training asks some relations
of an entity, the test asks the others, so a test item's answer is in no training label. The gold
explanations of a training item state the entity's other facts: the only place in training where
the held-out answer appears. A student trained on questions and answers alone can only guess.

Options are a fixed list per relation (the same order in every item), so a student need not learn
to find a shuffled option; values are assigned round-robin, so every option is the answer equally
often and no "always pick (B)" or "most common value" rule beats chance.

* ``fictional``: invented creatures with six independent attributes. The answer to a training
  question says nothing about the other facts (low leakage: the explanation cannot be predicted
  from the label).
* ``fictional_leaky``: invented creatures whose home nearly fixes what they eat, their colour and
  their sound (the same rule for 90% of them). The explanation of a training item follows from
  its answer (high leakage), as explanations often do; the rule is in no label. The option
  orders are set so that the letter of an entity's training answer gives the letter of its test
  answer one time in three: chance, not a shortcut.
* ``animals``: real animals, their class and two properties that follow from it (body covering,
  how the young are born). A pretrained teacher knows these facts; a student trained from scratch
  does not, so the teacher's explanations can carry them.
* ``control_unseen``: questions about invented creatures that appear nowhere in training (test
  split only): a negative control that every student must leave at chance.

Families here draw a whole split at once (:meth:`generate_splits`), because which test items exist
depends on which training items were drawn.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .base import Annotated, Split, conclude

__all__ = ["Animals", "ControlUnseen", "Fictional", "FictionalLeaky", "Relation"]


@dataclass(frozen=True)
class Relation:
    """One attribute: its fixed options (display order), a question and a statement template."""

    name: str
    options: tuple[str, ...]
    question: str  # "What does {e} eat?"
    statement: str  # "{e} eats {v}."
    phrases: tuple[tuple[str, str], ...] = ()  # option -> its words in the statement, where they differ

    def ask(self, entity: str) -> str:
        return self.question.format(e=entity)

    def state(self, entity: str, value: str) -> str:
        return self.statement.format(e=entity, v=dict(self.phrases).get(value, value))


# --- invented creatures ---------------------------------------------------------------------

CREATURE_RELATIONS = (
    Relation("color", ("red", "blue", "green"), "What color is {e}?", "{e} is {v}."),
    Relation("food", ("moss", "fish", "seeds"), "What does {e} eat?", "{e} eats {v}."),
    Relation("home", ("Quenton", "Marrow", "Tesk"), "Where does {e} live?", "{e} lives in {v}."),
    Relation("sound", ("hums", "clicks", "whistles"), "What sound does {e} make?", "{e} {v}."),
    Relation("shape", ("round", "flat", "spiky"), "What shape is {e}?", "{e} is {v} in shape."),
    Relation(
        "shell",
        ("wood", "stone", "glass"),
        "What is the shell of {e} made of?",
        "The shell of {e} is made of {v}.",
    ),
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_RIMES = ("ab", "el", "im", "or", "un", "ax", "ep", "ol", "us", "ix")


def creature_names(rng: random.Random, n: int, avoid: Sequence[str] = ()) -> list[str]:
    """``n`` distinct invented two-syllable names ("Zorbun"), none of them in ``avoid``."""
    pool = sorted(
        {(a + b + c + d).capitalize() for a, b, c, d in itertools.product(_ONSETS, _RIMES, _ONSETS, _RIMES)}
    )
    pool = [p for p in pool if p not in set(avoid)]
    if n > len(pool):
        raise ValueError(f"only {len(pool)} creature names, {n} asked for")
    return rng.sample(pool, n)


def _balanced(rng: random.Random, options: Sequence[str], n: int) -> list[str]:
    """``n`` values with every option equally often (up to one), in random order."""
    values = [options[i % len(options)] for i in range(n)]
    rng.shuffle(values)
    return values


@dataclass
class _Entity:
    name: str
    facts: dict[str, str]  # relation name -> value
    train: list[str]  # relations asked in training, in draw order


class _KnowledgeFamily:
    """Shared machinery: a world of entities, (entity, relation) pairs split train / held out."""

    name = ""
    version = "1"
    description = ""
    holdout = "entity_relation"
    relations: tuple[Relation, ...] = ()
    train_relations = 2  # relations asked in training per entity

    # -- what a subclass writes ---------------------------------------------------------------
    def world(self, rng: random.Random, n_entities: int) -> list[_Entity]:
        raise NotImplementedError

    def explain(self, entity: _Entity, relation: Relation) -> tuple[str, str, str]:
        """Gold (fundamentals, chain of thought, common mistakes) of one question."""
        raise NotImplementedError

    def assign(self, rng: random.Random, entities: list[_Entity]) -> None:
        """Fill in the facts, each relation's options equally often among its training questions
        and, separately, among its held-out ones: a "most common answer in training" rule then
        carries no information about the test (balancing over all pairs at once would make it
        anti-informative, and a student that learns it would score below chance)."""
        for r in self.relations:
            for group in (
                [e for e in entities if r.name in e.train],
                [e for e in entities if r.name not in e.train],
            ):
                for e, v in zip(group, _balanced(rng, r.options, len(group)), strict=True):
                    e.facts[r.name] = v

    # -- the split ------------------------------------------------------------------------------
    def relation(self, name: str) -> Relation:
        return next(r for r in self.relations if r.name == name)

    def item(self, entity: _Entity, relation: Relation) -> Annotated:
        fundamentals, chain, mistakes = self.explain(entity, relation)
        return Annotated(
            question=relation.ask(entity.name),
            choices=relation.options,
            answer=entity.facts[relation.name],
            fundamentals=fundamentals,
            chain_of_thought=chain,
            common_mistakes=mistakes,
            template=relation.name,
            entities=(entity.name,),
        )

    def generate_splits(self, rng: random.Random, sizes: dict[str, int]) -> dict[str, list[Annotated]]:
        """``sizes["train"]`` training questions, and held-out pairs of the same entities.

        Validation and test questions ask relations that training never asked of that entity,
        and only of entities that training did ask about; they share no pair.
        """
        n_train = sizes.get("train", 0)
        n_entities = max(1, -(-n_train // self.train_relations))
        entities = self.world(rng, n_entities)
        rounds = max((len(e.train) for e in entities), default=0)  # every entity's first relation first
        train = [(e, e.train[k]) for k in range(rounds) for e in entities if k < len(e.train)][:n_train]
        asked, used = {e.name for e, _ in train}, {(e.name, r) for e, r in train}
        for e in entities:  # what training did not ask of an entity is held out
            e.train = [r for r in e.train if (e.name, r) in used]
        held = [
            (e, r)
            for e in entities
            if e.name in asked
            for r in self.relations
            if (e.name, r.name) not in used
        ]
        self.assign(rng, entities)
        rng.shuffle(held)
        n_val = min(sizes.get("validation", 0), len(held) // 4)
        val, test = held[:n_val], held[n_val : n_val + sizes.get("test", 0)]
        return {
            "train": [self.item(e, self.relation(r)) for e, r in train],
            "validation": [self.item(e, r) for e, r in val],
            "test": [self.item(e, r) for e, r in test],
        }

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        raise NotImplementedError(f"{self.name} draws whole splits: use generate_splits")


def _creature_world(
    rng: random.Random, n: int, relations: Sequence[Relation], train_relations: int, avoid: Sequence[str] = ()
) -> list[_Entity]:
    names = creature_names(rng, n, avoid)
    return [_Entity(name, {}, rng.sample([r.name for r in relations], train_relations)) for name in names]


class Fictional(_KnowledgeFamily):
    name = "fictional"
    description = "Facts about invented creatures; training asks some, the test the others (low leakage)."
    relations = CREATURE_RELATIONS
    train_relations = 2

    def world(self, rng: random.Random, n_entities: int) -> list[_Entity]:
        return _creature_world(rng, n_entities, self.relations, self.train_relations)

    def explain(self, entity: _Entity, relation: Relation) -> tuple[str, str, str]:
        e, facts = entity.name, entity.facts
        others = [self.relation(r).state(e, v) for r, v in facts.items() if r != relation.name]
        answer = facts[relation.name]
        fundamentals = f"What we know about {e}: " + " ".join(others) + " " + relation.state(e, answer)
        chain = f"{' '.join(others)} The question asks about its {relation.name}: {relation.state(e, answer)} {conclude(answer)}"
        wrong = [o for o in relation.options if o != answer]
        mistakes = (
            f"Mixing up the facts about {e}: {' '.join(others)} "
            f"Answering {wrong[0]} or {wrong[1]} confuses {e} with another creature."
        )
        return fundamentals, chain, mistakes


# Home -> (food, color, sound) for most creatures of fictional_leaky. The option orders put the
# rule's food at the home's letter and its color and sound one letter on, so "the letter of the
# entity's training answer" is right for exactly one in three held-out questions (chance).
LEAKY_RULE = {
    "Quenton": ("seeds", "red", "hums"),
    "Marrow": ("moss", "green", "clicks"),
    "Tesk": ("fish", "blue", "whistles"),
}
LEAKY_RELATIONS = (
    Relation("home", ("Quenton", "Marrow", "Tesk"), "Where does {e} live?", "{e} lives in {v}."),
    Relation("food", ("seeds", "moss", "fish"), "What does {e} eat?", "{e} eats {v}."),
    Relation("color", ("blue", "red", "green"), "What color is {e}?", "{e} is {v}."),
    Relation("sound", ("whistles", "hums", "clicks"), "What sound does {e} make?", "{e} {v}."),
)
LEAKY_RULE_SHARE = 0.9


class FictionalLeaky(_KnowledgeFamily):
    name = "fictional_leaky"
    description = "Invented creatures whose home nearly fixes their food and colour (high leakage)."
    relations = LEAKY_RELATIONS
    train_relations = 1

    def world(self, rng: random.Random, n_entities: int) -> list[_Entity]:
        names = creature_names(rng, n_entities)
        asked = _balanced(rng, [r.name for r in LEAKY_RELATIONS], n_entities)
        return [_Entity(name, {}, [r]) for name, r in zip(names, asked, strict=True)]

    def assign(self, rng: random.Random, entities: list[_Entity]) -> None:
        # Homes balanced within each group asked the same relation in training: every relation's
        # options are then (up to the exceptions) balanced in training and in the held-out pairs.
        derived = LEAKY_RELATIONS[1:]
        for asked in [r.name for r in LEAKY_RELATIONS]:
            group = [e for e in entities if e.train == [asked]]
            for e, home in zip(group, _balanced(rng, LEAKY_RELATIONS[0].options, len(group)), strict=True):
                values = list(LEAKY_RULE[home])
                if rng.random() > LEAKY_RULE_SHARE:  # the exceptions: one fact breaks the rule
                    k = rng.randrange(len(derived))
                    values[k] = rng.choice([v for v in derived[k].options if v != values[k]])
                e.facts = {"home": home} | {r.name: v for r, v in zip(derived, values, strict=True)}

    def explain(self, entity: _Entity, relation: Relation) -> tuple[str, str, str]:
        e, f = entity.name, entity.facts
        home, food, color, sound = f["home"], f["food"], f["color"], f["sound"]
        rule_food, rule_color, rule_sound = LEAKY_RULE[home]
        fundamentals = (
            f"Most creatures that live in {home} eat {rule_food}, are {rule_color} and {rule_sound[:-1]}. "
            f"{e} lives in {home}, eats {food}, is {color} and {sound}."
        )
        answer = f[relation.name]
        chain = f"{e} lives in {home}, so it eats {food}, it is {color} and it {sound}. {conclude(answer)}"
        mistakes = (
            f"Forgetting where {e} lives: it lives in {home}, it eats {food}, it is {color} and it {sound}."
        )
        return fundamentals, chain, mistakes


# --- real animals ---------------------------------------------------------------------------

ANIMAL_CLASSES = {
    "mammal": ("lion", "zebra", "giraffe", "elephant", "horse", "cow", "rabbit", "wolf", "tiger", "camel"),
    "bird": ("eagle", "owl", "parrot", "duck", "swan", "pigeon", "crow", "sparrow", "robin", "flamingo"),
    "fish": ("perch", "salmon", "goldfish", "tuna", "trout", "cod", "carp", "catfish", "pike", "herring"),
    "reptile": (
        "crocodile",
        "python",
        "tortoise",
        "lizard",
        "turtle",
        "iguana",
        "gecko",
        "alligator",
        "cobra",
        "monitor lizard",
    ),
}
ANIMAL_PROPERTIES = {  # class -> (covering, how the young are born)
    "mammal": ("fur", "alive"),
    "bird": ("feathers", "hard egg"),
    "fish": ("wet scales", "soft egg"),
    "reptile": ("dry scales", "leathery egg"),
}
# The option orders are permutations of the class order that agree with it, and with each other,
# in exactly one class: "the letter of the animal's training answer" is right one time in four.
# (Options stay short: a long option list shared by every question would make them near-duplicates.)
ANIMAL_RELATIONS = (
    Relation(
        "class", ("mammal", "bird", "fish", "reptile"), "What kind of animal is a {e}?", "A {e} is a {v}."
    ),
    Relation(
        "covering",
        ("fur", "dry scales", "feathers", "wet scales"),
        "What covers the body of a {e}?",
        "The body of a {e} is covered in {v}.",
    ),
    Relation(
        "young",
        ("leathery egg", "hard egg", "alive", "soft egg"),
        "How is a {e} born?",
        "A {e} is born {v}.",
        (
            ("leathery egg", "from a leathery egg on land"),
            ("hard egg", "from a hard-shelled egg"),
            ("soft egg", "from a soft egg in water"),
        ),
    ),
)
CLASS_RULES = {
    "mammal": "Mammals have fur and are born alive.",
    "bird": "Birds have feathers and are born from hard-shelled eggs.",
    "fish": "Fish have wet scales and are born from soft eggs in water.",
    "reptile": "Reptiles have dry scales and are born from leathery eggs on land.",
}


class Animals(_KnowledgeFamily):
    name = "animals"
    description = "Real animals: their class, body covering and blood (known to a pretrained teacher)."
    relations = ANIMAL_RELATIONS
    train_relations = 1

    def world(self, rng: random.Random, n_entities: int) -> list[_Entity]:
        animals = [(a, c) for c, names in ANIMAL_CLASSES.items() for a in names]
        rng.shuffle(animals)  # a fixed world of 40: more training questions ask more relations each
        names = [r.name for r in ANIMAL_RELATIONS]
        out, turn = [], {c: rng.randrange(len(names)) for c in ANIMAL_CLASSES}
        for a, c in animals:  # within a class, the relations asked in training take turns
            covering, young = ANIMAL_PROPERTIES[c]
            asked = [names[(turn[c] + k) % len(names)] for k in range(self.train_relations)]
            turn[c] += 1
            out.append(_Entity(a, {"class": c, "covering": covering, "young": young}, asked))
        return out

    def assign(self, rng: random.Random, entities: list[_Entity]) -> None:
        pass  # real facts

    def generate_splits(self, rng: random.Random, sizes: dict[str, int]) -> dict[str, list[Annotated]]:
        n_train = sizes.get("train", 0)
        total = sum(len(v) for v in ANIMAL_CLASSES.values())
        self.train_relations = 1 if n_train <= total else 2
        return super().generate_splits(rng, sizes)

    def explain(self, entity: _Entity, relation: Relation) -> tuple[str, str, str]:
        a, f = entity.name, entity.facts
        cls = f["class"]
        answer = f[relation.name]
        fundamentals = f"A {a} is a {cls}. {CLASS_RULES[cls]}"
        chain = f"A {a} is a {cls}. {CLASS_RULES[cls]} {conclude(answer)}"
        mistakes = {
            "fish": f"Confusing fish with reptiles: a {a} is a fish, with wet scales, born from a soft egg in water.",
            "reptile": f"Confusing reptiles with fish: a {a} is a reptile, with dry scales, born from a leathery egg.",
            "bird": f"Confusing birds with reptiles because both lay eggs: a {a} is a bird, with feathers.",
            "mammal": f"Thinking every animal hatches from an egg: a {a} is a mammal, with fur, born alive.",
        }[cls]
        return fundamentals, chain, mistakes


class ControlUnseen(Fictional):
    """Questions about creatures that appear nowhere in training: every student is at chance."""

    name = "control_unseen"
    test_only = True  # no training or validation items, by design
    description = "Negative control: facts about invented creatures never seen in training (test only)."

    def generate_splits(self, rng: random.Random, sizes: dict[str, int]) -> dict[str, list[Annotated]]:
        n_test = sizes.get("test", 0)
        n = max(1, -(-n_test // len(self.relations)))
        entities = _creature_world(rng, n, self.relations, 0)
        for e in entities:
            e.name += "a"  # "Zorbuna": no fictional name ends in "a", so none was seen in training
        self.assign(rng, entities)
        pairs = [(e, r) for e in entities for r in self.relations]
        rng.shuffle(pairs)
        return {"train": [], "validation": [], "test": [self.item(e, r) for e, r in pairs[:n_test]]}
