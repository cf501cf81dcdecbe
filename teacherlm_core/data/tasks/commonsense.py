"""``commonsense``: five-way everyday-knowledge questions (in the spirit of ECQA / CommonsenseQA).

"Where would you most likely keep butter?" or "What would you mainly use a rake for?", with four
distractors drawn from other objects. Held out by entity: each object is in one split.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from .base import Annotated, Split, article, conclude, partition, shuffled_choices

__all__ = ["OBJECTS", "Commonsense"]


class Thing(NamedTuple):
    name: str
    place: str
    use: str
    why: str
    also: tuple[str, ...] = ()  # other places that would also be right, never used as distractors


# fmt: off
OBJECTS: tuple[Thing, ...] = (
    Thing("milk", "refrigerator", "drinking", "Milk is a drink that spoils quickly unless it is kept cold."),
    Thing("butter", "refrigerator", "spreading on bread", "Butter is a soft food that melts and spoils when warm.", ("pantry",)),
    Thing("cheese", "refrigerator", "making sandwiches", "Cheese is made from milk and stays fresh only when cold."),
    Thing("ice cream", "freezer", "a cold dessert", "Ice cream melts unless it stays below freezing."),
    Thing("frozen peas", "freezer", "cooking a side dish", "Frozen food thaws and spoils if it leaves the freezer."),
    Thing("a novel", "bookshelf", "reading a story", "Books are read again and again, so they stand on a shelf."),
    Thing("a dictionary", "bookshelf", "looking up words", "A dictionary is a reference book kept where books are kept."),
    Thing("a car", "garage", "driving to work", "A car is a large vehicle that needs a covered space to park."),
    Thing("a coat", "closet", "keeping warm outside", "Clothes hang in a closet so they stay clean and neat."),
    Thing("a hammer", "toolbox", "driving in nails", "A hammer is a tool, and tools are stored together in a toolbox."),
    Thing("a screwdriver", "toolbox", "turning screws", "A screwdriver is a hand tool kept with other tools."),
    Thing("a wrench", "toolbox", "tightening bolts", "A wrench is a tool for bolts, stored with other tools."),
    Thing("toothpaste", "bathroom cabinet", "cleaning teeth", "Toothpaste is used at the bathroom sink every day."),
    Thing("shampoo", "bathroom cabinet", "washing hair", "Shampoo is used when washing, so it is kept in the bathroom."),
    Thing("cash", "wallet", "paying in a shop", "Money is carried in a wallet so it is safe and at hand.", ("piggy bank",)),
    Thing("a credit card", "wallet", "paying without cash", "Cards are small and valuable, so they go in a wallet."),
    Thing("coins", "piggy bank", "saving money", "Children save small coins in a piggy bank.", ("wallet",)),
    Thing("a rake", "garden shed", "gathering leaves", "Garden tools are dirty and large, so they stay in a shed."),
    Thing("a shovel", "garden shed", "digging holes", "A shovel is a garden tool stored outside the house.", ("garage",)),
    Thing("a lawn mower", "garden shed", "cutting grass", "A mower is a big garden machine kept outdoors.", ("garage",)),
    Thing("rice", "pantry", "cooking dinner", "Dry food like rice keeps for months in a cool, dry pantry."),
    Thing("flour", "pantry", "baking bread", "Flour is a dry baking food kept in a pantry."),
    Thing("a pencil", "desk drawer", "writing notes", "Small things for writing are kept in a desk."),
    Thing("a stapler", "desk drawer", "joining papers", "A stapler is office equipment kept at a desk."),
    Thing("a ring", "jewelry box", "wearing on a finger", "Jewelry is small and precious, so it has its own box."),
    Thing("a necklace", "jewelry box", "wearing around the neck", "A necklace is jewelry that tangles if not put away."),
    Thing("a bandage", "first aid kit", "covering a cut", "Things for small injuries are kept together in a first aid kit."),
    Thing("a letter", "mailbox", "sending a message", "Letters are delivered to and collected from a mailbox."),
    Thing("a pillow", "bed", "resting your head", "A pillow is used when sleeping, so it lies on the bed."),
    Thing("a fork", "kitchen drawer", "eating food", "Cutlery is kept in a kitchen drawer near where food is served."),
    Thing("a spoon", "kitchen drawer", "eating soup", "Spoons are cutlery, kept in a kitchen drawer."),
    Thing("a towel", "linen closet", "drying off after a bath", "Clean towels are folded and stored in a linen closet.", ("closet", "bathroom cabinet")),
    Thing("firewood", "fireplace", "making a fire", "Wood is burned in a fireplace to heat a room."),
    Thing("a suitcase", "attic", "packing for a trip", "A suitcase is used only for trips, so it is stored out of the way.", ("closet",)),
    Thing("a tent", "attic", "camping outdoors", "Camping gear is used a few times a year and stored away.", ("garage",)),
    Thing("a houseplant", "windowsill", "decorating a room", "A plant needs sunlight, so it sits by a window."),
    Thing("an umbrella", "umbrella stand", "staying dry in rain", "Wet umbrellas are left by the door in a stand.", ("closet",)),
    Thing("a soccer ball", "sports bag", "playing a game", "Sports gear is carried to games in a sports bag.", ("garage",)),
    Thing("sunscreen", "beach bag", "protecting skin from sun", "Sunscreen is taken to sunny places like the beach.", ("bathroom cabinet",)),
    Thing("a pan", "kitchen cupboard", "frying eggs", "Cookware is stored in a kitchen cupboard near the stove."),
)
# fmt: on

_POOL = partition(OBJECTS, key=lambda t: t.name)
PLACE_QUESTIONS = (
    "Where would you most likely keep {}?",
    "Where do people usually store {}?",
    "Where should you put {} away at home?",
)
USE_QUESTIONS = (
    "What would you mainly use {} for?",
    "Why would someone usually need {}?",
    "What is the main purpose of {}?",
)
PLACES = sorted({t.place for t in OBJECTS})
USES = sorted({t.use for t in OBJECTS})


class Commonsense:
    name = "commonsense"
    version = "1"
    description = "Five-way questions about where everyday things are kept and what they are for (ECQA-like)."
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        t: Thing = rng.choice(_POOL[split])
        wording = rng.randrange(3)
        if rng.random() < 0.5:
            bad = [p for p in PLACES if p != t.place and p not in t.also]
            choices = shuffled_choices(rng, t.place, bad, 5)
            others = [c for c in choices if c != t.place]
            question = PLACE_QUESTIONS[wording].format(t.name)
            cot = (
                f"The question asks where {t.name} is usually kept. {t.why} "
                f"The {t.place} is the usual place for it. "
                f"{article(others[0]).capitalize()} or {article(others[1])} is for other things. {conclude(t.place)}"
            )
            mistakes = f"Picking a place just because it is in the home, like the {others[2]}, without asking whether {t.name} belongs there."
            fundamentals = (
                "Everyday things are kept where they stay in good condition and where they are used."
            )
            template = f"place_{wording}"
        else:
            bad = [u for u in USES if u != t.use]
            choices = shuffled_choices(rng, t.use, bad, 5)
            others = [c for c in choices if c != t.use]
            question = USE_QUESTIONS[wording].format(t.name)
            cot = (
                f"The question asks what {t.name} is mainly for. {t.why} "
                f"Its main use is {t.use}. Options like {others[0]} or {others[1]} belong to other things. "
                f"{conclude(t.use)}"
            )
            mistakes = f"Choosing a use of a related object, such as {others[2]}, or a rare use instead of the main one."
            fundamentals = (
                "An object's main use is what it was made for and what people do with it most often."
            )
            template = f"use_{wording}"
        return Annotated(
            question=question,
            choices=choices,
            answer=t.place if template.startswith("place") else t.use,
            fundamentals=fundamentals,
            chain_of_thought=cot,
            common_mistakes=mistakes,
            template=template,
            entities=(t.name,),
        )
