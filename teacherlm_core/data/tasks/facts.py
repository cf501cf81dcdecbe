"""Small embedded fact tables shared by the built-in families (no downloads).

Values are rounded, textbook figures. Families only ask questions whose answer is robust to
that rounding (e.g. speed comparisons need a 1.5x gap), so a reasonable source never disagrees
with the gold answer. ``None`` marks a fact we deliberately do not use (contested or unclear).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ANIMALS", "CLASS_FACTS", "ITEMS", "NAMES", "PLACES", "Animal", "Place"]


class Animal(NamedTuple):
    name: str
    plural: str
    cls: str  # zoological class, in plain words
    legs: int | None
    flies: bool
    diet: str | None  # "plants", "meat" or "both"
    speed: float | None  # top running speed on land, km/h
    weight: float | None  # typical adult weight, kg
    confusion: str | None = None  # the classic wrong belief about it


# fmt: off
ANIMALS: tuple[Animal, ...] = (
    Animal("lion", "lions", "mammal", 4, False, "meat", 80, 190),
    Animal("zebra", "zebras", "mammal", 4, False, "plants", 65, 350),
    Animal("giraffe", "giraffes", "mammal", 4, False, "plants", 55, 1200),
    Animal("elephant", "elephants", "mammal", 4, False, "plants", 40, 6000),
    Animal("hippo", "hippos", "mammal", 4, False, "plants", 30, 1500),
    Animal("cheetah", "cheetahs", "mammal", 4, False, "meat", 110, 50),
    Animal("polar bear", "polar bears", "mammal", 4, False, "meat", 40, 450),
    Animal("horse", "horses", "mammal", 4, False, "plants", 70, 500),
    Animal("cow", "cows", "mammal", 4, False, "plants", 40, 700),
    Animal("sheep", "sheep", "mammal", 4, False, "plants", None, 70),
    Animal("pig", "pigs", "mammal", 4, False, "both", 17, 150),
    Animal("rabbit", "rabbits", "mammal", 4, False, "plants", 55, 2),
    Animal("mouse", "mice", "mammal", 4, False, "both", 13, 0.02),
    Animal("camel", "camels", "mammal", 4, False, "plants", 65, 500),
    Animal("wolf", "wolves", "mammal", 4, False, "meat", 60, 40),
    Animal("fox", "foxes", "mammal", 4, False, "both", 50, 6),
    Animal("deer", "deer", "mammal", 4, False, "plants", 60, 100),
    Animal("squirrel", "squirrels", "mammal", 4, False, "plants", 20, 0.5),
    Animal("tiger", "tigers", "mammal", 4, False, "meat", 60, 220),
    Animal("brown bear", "brown bears", "mammal", 4, False, "both", 50, 300),
    Animal("moose", "moose", "mammal", 4, False, "plants", 55, 500),
    Animal("cat", "cats", "mammal", 4, False, "meat", 48, 4),
    Animal("hamster", "hamsters", "mammal", 4, False, "both", None, 0.1),
    Animal("koala", "koalas", "mammal", 4, False, "plants", None, 10),
    Animal("dolphin", "dolphins", "mammal", 0, False, "meat", None, 150,
           "It lives in the sea and swims, so people think it is a fish."),
    Animal("blue whale", "blue whales", "mammal", 0, False, "meat", None, 150000,
           "It lives in the ocean, so people think it is a fish."),
    Animal("bat", "bats", "mammal", 2, True, None, None, None,
           "It has wings and flies, so people think it is a bird."),
    Animal("penguin", "penguins", "bird", 2, False, "meat", 3, None,
           "People assume every bird can fly, but penguins swim instead."),
    Animal("ostrich", "ostriches", "bird", 2, False, "both", 70, 120,
           "People assume every bird can fly, but ostriches only run."),
    Animal("eagle", "eagles", "bird", 2, True, "meat", None, 5),
    Animal("owl", "owls", "bird", 2, True, "meat", None, None),
    Animal("parrot", "parrots", "bird", 2, True, "plants", None, None),
    Animal("chicken", "chickens", "bird", 2, False, "both", 14, 2.5),
    Animal("duck", "ducks", "bird", 2, True, "both", None, 1),
    Animal("swan", "swans", "bird", 2, True, "plants", None, 10),
    Animal("shark", "sharks", "fish", 0, False, "meat", None, None),
    Animal("salmon", "salmon", "fish", 0, False, "meat", None, 5),
    Animal("goldfish", "goldfish", "fish", 0, False, "both", None, 0.1),
    Animal("frog", "frogs", "amphibian", 4, False, "meat", None, 0.05,
           "It has damp skin and lives near water, so people call it a reptile."),
    Animal("crocodile", "crocodiles", "reptile", 4, False, "meat", 15, 500),
    Animal("snake", "snakes", "reptile", 0, False, "meat", None, None),
    Animal("tortoise", "tortoises", "reptile", 4, False, "plants", 0.3, None),
    Animal("lizard", "lizards", "reptile", 4, False, None, None, None),
    Animal("ant", "ants", "insect", 6, False, "both", None, 0.000003),
    Animal("bee", "bees", "insect", 6, True, "plants", None, 0.0001),
    Animal("butterfly", "butterflies", "insect", 6, True, "plants", None, 0.0005),
    Animal("spider", "spiders", "arachnid", 8, False, "meat", None, 0.001,
           "It is small and creepy, so people call it an insect, but insects have six legs."),
    Animal("scorpion", "scorpions", "arachnid", 8, False, "meat", None, 0.03),
    Animal("snail", "snails", "mollusk", 0, False, "plants", 0.05, 0.01),
)
# fmt: on

CLASS_FACTS = {
    "mammal": "Mammals are warm-blooded, have hair or fur and feed their young with milk.",
    "bird": "Birds have feathers, beaks and wings, and they lay eggs.",
    "fish": "Fish live in water, breathe with gills and swim with fins.",
    "amphibian": "Amphibians start life in water with gills and later breathe air on land.",
    "reptile": "Reptiles are cold-blooded, have dry scales and mostly lay eggs on land.",
    "insect": "Insects have six legs and three body parts.",
    "arachnid": "Arachnids, such as spiders, have eight legs and two body parts.",
    "mollusk": "Mollusks have soft bodies, and many, like snails, carry a shell.",
}


class Place(NamedTuple):
    country: str
    capital: str
    continent: str | None
    famous_city: str | None = None  # a bigger or better-known city often mistaken for the capital


PLACES: tuple[Place, ...] = (
    Place("France", "Paris", "Europe"),
    Place("Japan", "Tokyo", "Asia"),
    Place("Egypt", "Cairo", "Africa"),
    Place("Brazil", "Brasilia", "South America", "Rio de Janeiro"),
    Place("Canada", "Ottawa", "North America", "Toronto"),
    Place("Australia", "Canberra", "Oceania", "Sydney"),
    Place("Kenya", "Nairobi", "Africa"),
    Place("India", "New Delhi", "Asia", "Mumbai"),
    Place("Italy", "Rome", "Europe", "Milan"),
    Place("Spain", "Madrid", "Europe", "Barcelona"),
    Place("Germany", "Berlin", "Europe", "Munich"),
    Place("Mexico", "Mexico City", "North America"),
    Place("Peru", "Lima", "South America"),
    Place("Argentina", "Buenos Aires", "South America"),
    Place("China", "Beijing", "Asia", "Shanghai"),
    Place("Norway", "Oslo", "Europe"),
    Place("Greece", "Athens", "Europe"),
    Place("Chile", "Santiago", "South America"),
    Place("Nigeria", "Abuja", "Africa", "Lagos"),
    Place("Thailand", "Bangkok", "Asia"),
    Place("Vietnam", "Hanoi", "Asia", "Ho Chi Minh City"),
    Place("Cuba", "Havana", "North America"),
    Place("Morocco", "Rabat", "Africa", "Casablanca"),
    Place("Poland", "Warsaw", "Europe", "Krakow"),
    Place("Sweden", "Stockholm", "Europe"),
    Place("Portugal", "Lisbon", "Europe", "Porto"),
    Place("Ireland", "Dublin", "Europe"),
    Place("South Korea", "Seoul", "Asia", "Busan"),
    Place("Colombia", "Bogota", "South America"),
    Place("Ghana", "Accra", "Africa"),
    Place("Ethiopia", "Addis Ababa", "Africa"),
    Place("New Zealand", "Wellington", "Oceania", "Auckland"),
    Place("Switzerland", "Bern", "Europe", "Zurich"),
    Place("Turkey", "Ankara", None, "Istanbul"),
)

# fmt: off
NAMES: tuple[str, ...] = (
    "Amy", "Ben", "Cal", "Dan", "Eva", "Fay", "Gus", "Hal", "Ivy", "Jay", "Kim", "Leo", "Max",
    "Nia", "Oli", "Pam", "Raj", "Sam", "Tom", "Uma", "Val", "Wes", "Zoe", "Ada", "Bea", "Dee",
    "Eli", "Flo", "Gil", "Hugo", "Ian", "Jo", "Kai", "Liv", "Mia", "Ned", "Ora", "Pia", "Ray",
    "Sue",
)

ITEMS: tuple[str, ...] = (
    "apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "balloons",
    "stamps", "shells", "coins", "eggs", "toys", "flowers", "candles", "buttons",
)
# fmt: on
