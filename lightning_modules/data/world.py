"""A small synthetic world, generated from a seed: pretraining text and five tasks that need it.

The world
    ``World(seed)`` invents a cast of people (first names, some with a surname: "Anna Berg"),
    places (invented city names such as "Varen", two-word ones such as "New Varen" or "Port Lena",
    and a few named like a surname: "Holm"), organisations ("Kestrel Labs", "Berg Foods",
    "Varen Bank", "Holm and Lind"), things with colours and sizes, foods and a few professions.
    Facts relate them: *lives in*, *was born in*, *works at*, *owns a <colour> <thing>*,
    *likes <food>*, *age*; every relation has several surface templates so the wording varies.
    Facts are drawn afresh for every paragraph and every QA context, so nothing about a person can
    be memorised: an answer has to be read from the text at hand. What pretraining teaches is the
    language itself: the templates, the names, multi-word entities, sentence structure, and the
    habit of looking back in the context (corpus paragraphs often restate or ask about a fact
    stated earlier in the same paragraph).

    Everything is pure Python from ``random.Random``; one seed gives the same world, corpus and
    tasks on every machine, and another seed gives other names, places, organisations and another
    invented target language. The whole vocabulary stays around a thousand words, so a small
    tokenizer and tiny models are enough.

The tasks and why each is hard
    * ``qa`` (extractive QA): a context of 4-8 shuffled facts about 3-5 people, always with at
      least one distractor fact of the same relation about someone else, so the answer is a
      matter of matching the person (or, for "Who ...?" questions, the value) rather than of
      recognising the answer type. A place may appear both as someone's home and as someone
      else's birthplace, and a surname may also be a city ("Emil Holm" next to "lives in Holm").
      It takes retrieval over the whole context, through names of one or two words.
    * ``sentiment`` (2 classes, balanced): the label follows a compositional rule: negation
      ("was not good", "never hated"), double negation ("it is not true that ... was not good"),
      and contrast where one clause decides: the clause after "but" or "; however," and the main
      clause of "although" (which can come first or last). The bag of polarity words alone is
      close to chance (see ``bag_of_words_sentiment``); ``sentiment_rule`` gets every label.
    * ``ner`` (IOB2 over PER, LOC, ORG): multi-word entities ("Port Lena", "Kestrel Labs",
      "Holm and Lind") whose words are ambiguous out of context: "Holm" is a surname and a city,
      "Lena" a first name and part of a city, "Varen" a city and part of a bank.
    * ``translation``: English sentences from the world into an invented language with its own
      lexicon (one invented stem per English word, new for every seed), subject-object-verb
      order with adverbs and postpositional phrases before the object, adjectives after the noun,
      no articles, and suffixes: plural ``-li`` on nouns, tense on verbs (``-ma`` present, ``-ri``
      past, ``-su`` future), and the object case marker ``-ko`` (written as a separate word ``ko``
      after a name, since names stay as they are). The reordering needs position information
      and the suffixes need several English words at once ("will buy" gives one word with the
      future suffix; "the red bikes" as an object gives noun + plural + object suffix, then
      "red").
    * ``summarization``: a short document titled after one person ("About Anna Berg:") and
      holding 4-8 shuffled facts about 2-4 people, always with a fact of the same relation about
      someone else; the summary keeps only the titled person's facts, in document order, each
      rewritten in one canonical phrase and joined into one sentence ("Anna Berg works at
      Kestrel Labs and is 34 years old."). It needs matching the title to the facts, skipping
      the distractors, and turning four surface templates per relation into one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from lightning_modules.data.examples import (
    PairExample,
    QAExample,
    Splits,
    TextExample,
    TokenExample,
)

__all__ = [
    "COLOURS",
    "FOODS",
    "NEGATIVE_WORDS",
    "NEGATORS",
    "NER_LABELS",
    "OBJECT_SUFFIX",
    "PLURAL_SUFFIX",
    "POSITIVE_WORDS",
    "SENTIMENT_LABELS",
    "TENSE_SUFFIXES",
    "THINGS",
    "VERBS",
    "VERDICTS",
    "World",
    "bag_of_words_sentiment",
    "sentiment_rule",
]

# --------------------------------------------------------------------------- fixed inventories

FIRST_NAMES = (
    "Anna", "Ben", "Mia", "Tom", "Lena", "Omar", "Sara", "Jonas", "Eva", "Karl", "Nina", "Felix",
    "Ida", "Hugo", "Clara", "Leo", "Maya", "Oskar", "Rosa", "Emil", "Vera", "Paul", "Lily", "Max",
    "Nora", "Theo", "Alma", "Ivan", "Zoe", "Finn", "Greta", "Luca", "Elsa", "Milo", "Ruth", "Adam",
    "Iris", "Otto", "Kai", "Dora", "Sven", "Hana", "Yusuf", "Lara", "Nils", "Tara", "Amir", "Ines",
    "Jan", "Ella", "Bruno", "Mira", "Aron", "Liv", "Sami", "Wanda",
)  # fmt: skip
SURNAMES = (
    "Berg", "Holm", "Lind", "Stone", "Marsh", "Brook", "Vale", "Crane", "Frost", "Hale", "Moss",
    "Reed", "Ford", "Wells", "Dale", "Nash", "Grove", "Hart", "Shaw", "Lowe", "Pike", "Quist",
)  # fmt: skip
ORG_HEADS = (
    "Kestrel", "Heron", "Falcon", "Otter", "Badger", "Lynx", "Raven", "Marten", "Osprey", "Wren",
    "Bison", "Puffin",
)  # fmt: skip
ORG_TAILS = ("Labs", "Bank", "Foods", "Motors", "Press", "Studio", "Works", "Group", "Books")
CITY_PREFIXES = ("New", "East", "Upper", "Lake")

COLOURS = (
    "red", "blue", "green", "yellow", "black", "white", "grey", "orange", "purple", "brown",
    "pink", "silver",
)  # fmt: skip
SIZES = ("small", "big", "tiny", "huge", "old", "new")
# thing lemma -> plural
THINGS = {
    "bike": "bikes", "car": "cars", "lamp": "lamps", "boat": "boats", "hat": "hats",
    "coat": "coats", "chair": "chairs", "kite": "kites", "guitar": "guitars", "clock": "clocks",
    "bag": "bags", "cup": "cups", "book": "books", "phone": "phones", "radio": "radios",
    "scarf": "scarves", "tent": "tents", "watch": "watches", "box": "boxes", "knife": "knives",
}  # fmt: skip
# food lemma -> (surface used in facts and reviews, plural form or None for mass nouns)
_FOOD_NOUNS = {
    "soup": ("soup", None), "bread": ("bread", None), "cheese": ("cheese", None),
    "rice": ("rice", None), "fish": ("fish", None), "cake": ("cake", None),
    "pasta": ("pasta", None), "salad": ("salad", None), "honey": ("honey", None),
    "pie": ("pie", None), "stew": ("stew", None), "apple": ("apples", "apples"),
    "pear": ("pears", "pears"), "noodle": ("noodles", "noodles"), "bean": ("beans", "beans"),
    "plum": ("plums", "plums"), "egg": ("eggs", "eggs"), "carrot": ("carrots", "carrots"),
}  # fmt: skip
FOODS = tuple(surface for surface, _ in _FOOD_NOUNS.values())
_PLURAL_FOODS = frozenset(plural for _, plural in _FOOD_NOUNS.values() if plural)
FOOD_ADJS = ("fresh", "hot", "cold", "sweet", "salty")
# profession -> plural
PROFESSIONS = {
    "teacher": "teachers", "farmer": "farmers", "doctor": "doctors", "baker": "bakers",
    "child": "children", "driver": "drivers", "nurse": "nurses", "pilot": "pilots",
    "student": "students", "painter": "painters",
}  # fmt: skip
PERSON_ADJS = ("old", "young", "tall", "kind", "tired", "happy")

# verb lemma -> (base, third person singular, past)
VERBS = {
    "buy": ("buy", "buys", "bought"), "sell": ("sell", "sells", "sold"),
    "find": ("find", "finds", "found"), "carry": ("carry", "carries", "carried"),
    "paint": ("paint", "paints", "painted"), "clean": ("clean", "cleans", "cleaned"),
    "lose": ("lose", "loses", "lost"), "take": ("take", "takes", "took"),
    "eat": ("eat", "eats", "ate"), "cook": ("cook", "cooks", "cooked"),
    "see": ("see", "sees", "saw"), "visit": ("visit", "visits", "visited"),
    "call": ("call", "calls", "called"), "help": ("help", "helps", "helped"),
    "meet": ("meet", "meets", "met"), "walk": ("walk", "walks", "walked"),
    "run": ("run", "runs", "ran"), "swim": ("swim", "swims", "swam"),
    "travel": ("travel", "travels", "travelled"), "sing": ("sing", "sings", "sang"),
    "sleep": ("sleep", "sleeps", "slept"), "work": ("work", "works", "worked"),
    "wait": ("wait", "waits", "waited"), "dance": ("dance", "dances", "danced"),
}  # fmt: skip
# transitive verb -> kinds of object it takes
_TRANSITIVE = {
    "buy": ("thing", "food"), "sell": ("thing", "food"), "find": ("thing",),
    "carry": ("thing",), "paint": ("thing",), "clean": ("thing",), "lose": ("thing",),
    "take": ("thing", "food"), "eat": ("food",), "cook": ("food",), "see": ("name", "thing"),
    "visit": ("name", "person"), "call": ("name", "person"), "help": ("name", "person"),
    "meet": ("name", "person"),
}  # fmt: skip
_MOTION = ("walk", "run", "swim", "travel")
_INTRANSITIVE = _MOTION + ("sing", "sleep", "work", "wait", "dance")
_ADVERBS = {
    "present": (("often",), ("every", "day"), ("today",)),
    "past": (("yesterday",), ("last", "week"), ("last", "year")),
    "future": (("tomorrow",), ("next", "week"), ("next", "year"), ("soon",)),
}
_PREPOSITIONS = ("in", "to", "at", "with")

PLURAL_SUFFIX = "li"
OBJECT_SUFFIX = "ko"
TENSE_SUFFIXES = {"present": "ma", "past": "ri", "future": "su"}

# --------------------------------------------------------------------------- sentiment lexicon

_POS_ADJ = (
    "good", "great", "excellent", "wonderful", "lovely", "fantastic", "pleasant", "superb",
    "delightful", "nice",
)  # fmt: skip
_NEG_ADJ = (
    "bad", "awful", "terrible", "horrible", "poor", "dreadful", "disappointing", "nasty",
    "unpleasant", "mediocre",
)  # fmt: skip
_POS_VERB = {"like": "liked", "love": "loved", "enjoy": "enjoyed", "adore": "adored"}
_NEG_VERB = {"hate": "hated", "dislike": "disliked", "detest": "detested"}
POSITIVE_WORDS = frozenset(_POS_ADJ + tuple(_POS_VERB) + tuple(_POS_VERB.values()))
NEGATIVE_WORDS = frozenset(_NEG_ADJ + tuple(_NEG_VERB) + tuple(_NEG_VERB.values()))
NEGATORS = frozenset({"not", "never"})
_INTENSIFIERS = ("very", "extremely", "really", "truly", "incredibly")
_DIMINISHERS = ("slightly", "somewhat", "quite", "fairly", "rather")
_DOUBLE_NEGATION_FRAMES = ("it is not true that", "I would never say that")
SENTIMENT_LABELS = ["negative", "positive"]
# What a reviewer concludes, by label (corpus only: task examples never carry one).
_VERDICTS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("So I was disappointed.", "Not recommended.", "I would not go back.", "Overall, a poor one."),
    ("So I was pleased.", "Recommended.", "I would go back.", "Overall, a fine one."),
)
VERDICTS = frozenset(_VERDICTS[0] + _VERDICTS[1])

NER_LABELS = sorted(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])

# --------------------------------------------------------------------------- QA templates

RELATIONS = ("lives", "born", "works", "owns", "likes", "age")
_FACT_TEMPLATES = {
    "lives": (
        "{p} lives in {v}.",
        "{p} has a flat in {v}.",
        "The home of {p} is in {v}.",
        "These days {p} lives in {v}.",
    ),
    "born": (
        "{p} was born in {v}.",
        "{p} was born in the city of {v}.",
        "The birthplace of {p} is {v}.",
        "{p} comes from {v}.",
    ),
    "works": (
        "{p} works at {v}.",
        "{p} is employed by {v}.",
        "{p} has a job at {v}.",
        "Every morning {p} goes to work at {v}.",
    ),
    "owns": (
        "{p} owns {art} {v} {t}.",
        "{p} has {art} {v} {t}.",
        "{p}'s {t} is {v}.",
        "The {t} that {p} owns is {v}.",
    ),
    "likes": (
        "{p} likes {v}.",
        "{p} loves {v}.",
        "The favourite food of {p} is {v}.",
        "{p} often eats {v}.",
    ),
    "age": (
        "{p} is {v} years old.",
        "{p} just turned {v}.",
        "The age of {p} is {v}.",
        "{p} is now {v} years old.",
    ),
}
# questions whose answer is the value of the fact ("what" questions)
_VALUE_QUESTIONS = {
    "lives": (
        "Where does {p} live?",
        "In which city does {p} live?",
        "Which city does {p} live in?",
    ),
    "born": ("Which city was {p} born in?", "Where was {p} born?", "Where does {p} come from?"),
    "works": ("Where does {p} work?", "Which company does {p} work for?", "Who employs {p}?"),
    "owns": ("What colour is {p}'s {t}?", "What is the colour of {p}'s {t}?"),
    "likes": ("What food does {p} like?", "What does {p} like to eat?"),
    "age": ("How old is {p}?", "What is the age of {p}?"),
}
# questions whose answer is the person
_PERSON_QUESTIONS = {
    "lives": ("Who lives in {v}?", "Who has a flat in {v}?"),
    "born": ("Who was born in {v}?", "Who comes from {v}?"),
    "works": ("Who works at {v}?", "Who is employed by {v}?"),
    "owns": ("Who owns the {v} {t}?", "Who has the {v} {t}?"),
    "likes": ("Who likes {v}?", "Who loves {v}?"),
    "age": ("Who is {v} years old?",),
}

# --------------------------------------------------------------------------- summaries

_SUMMARY_TITLES = ("About {p}:", "A note on {p}:", "Profile of {p}:", "News about {p}:")
# One canonical phrase per relation ("owns" is built from its colour and thing).
_SUMMARY_PHRASES = {
    "lives": "lives in {v}",
    "born": "was born in {v}",
    "works": "works at {v}",
    "likes": "likes {v}",
    "age": "is {v} years old",
}

# --------------------------------------------------------------------------- NER templates

_NER_TEMPLATES = (
    "{PER} lives in {LOC} .",
    "{PER} moved from {LOC} to {LOC} last year .",
    "{PER} works at {ORG} in {LOC} .",
    "{ORG} opened a new office in {LOC} .",
    "{ORG} hired {PER} as a {job} .",
    "In {LOC} , {PER} met {PER} .",
    "{PER} and {PER} founded {ORG} in {LOC} .",
    "The mayor of {LOC} , {PER} , visited {ORG} .",
    "Dr {SUR} from {ORG} spoke in {LOC} .",
    "{SUR} said that {ORG} will open a shop in {LOC} .",
    "Yesterday {PER} flew from {LOC} to {LOC} .",
    "{PER} bought a {colour} {thing} from {ORG} .",
    "People in {LOC} like {food} .",
    "{LOC} is a small city near {LOC} .",
    "{ORG} sells {food} in {LOC} and {LOC} .",
    "According to {PER} , {ORG} is growing .",
    "{PER} was born in {LOC} .",
    "{LOC} welcomed {PER} on Monday .",
    "Mr {SUR} and Ms {SUR} left {ORG} .",
    "{PER} visited {PER} in {LOC} .",
    "{PER} thinks the {food} in {LOC} is {adj} .",
    "The {job} from {LOC} now works for {ORG} .",
)

# --------------------------------------------------------------------------- invented words

_PLACE_ONSETS = ("b", "d", "k", "l", "m", "n", "p", "r", "s", "t", "v", "br", "st", "tr", "gr")
_PLACE_NUCLEI = ("a", "e", "i", "o", "u", "a", "e", "o")
_PLACE_CODAS = ("n", "r", "l", "s", "k", "m", "", "")
_TARGET_ONSETS = ("k", "t", "m", "n", "l", "r", "s", "v", "z", "sh", "th", "q", "d", "f")
_TARGET_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ou", "ei")


def _english_words() -> set[str]:
    words: set[str] = set()
    sources: list[Any] = [
        FIRST_NAMES, SURNAMES, ORG_HEADS, ORG_TAILS, CITY_PREFIXES, COLOURS, SIZES, FOOD_ADJS,
        PERSON_ADJS, tuple(POSITIVE_WORDS), tuple(NEGATIVE_WORDS), tuple(NEGATORS),
        _INTENSIFIERS, _DIMINISHERS, _PREPOSITIONS,
        tuple(THINGS) + tuple(THINGS.values()), tuple(_FOOD_NOUNS) + FOODS,
        tuple(PROFESSIONS) + tuple(PROFESSIONS.values()),
        tuple(w for forms in VERBS.values() for w in forms),
        tuple(w for advs in _ADVERBS.values() for adv in advs for w in adv),
    ]  # fmt: skip
    for source in sources:
        words.update(w.lower() for w in source)
    for templates in list(_FACT_TEMPLATES.values()) + [_NER_TEMPLATES]:
        for template in templates:
            words.update(w.lower().strip(".,?{}") for w in template.split())
    return words


_ENGLISH = frozenset(_english_words())


def _invent(
    rng: random.Random,
    onsets: tuple[str, ...],
    nuclei: tuple[str, ...],
    codas: tuple[str, ...],
    n_syllables: int,
) -> str:
    syllables = [rng.choice(onsets) + rng.choice(nuclei) for _ in range(n_syllables)]
    return "".join(syllables) + rng.choice(codas)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, **values: str) -> tuple[str, dict[str, int]]:
    """Format ``template`` and return the text with the character start of every slot."""
    parts: list[str] = []
    starts: dict[str, int] = {}
    length = pos = 0
    for match in _SLOT.finditer(template):
        literal = template[pos : match.start()]
        parts.append(literal)
        length += len(literal)
        key = match.group(1)
        starts[key] = length
        parts.append(values[key])
        length += len(values[key])
        pos = match.end()
    parts.append(template[pos:])
    return "".join(parts), starts


def _detokenise(tokens: tuple[str, ...] | list[str]) -> str:
    return re.sub(r" ([.,?;])", r"\1", " ".join(tokens))


# --------------------------------------------------------------------------- sentiment rule


def _clause_polarity(clause: str) -> int:
    words = clause.split()
    base = [1 if w in POSITIVE_WORDS else -1 for w in words if w in POSITIVE_WORDS | NEGATIVE_WORDS]
    if len(base) != 1:
        raise ValueError(f"expected exactly one polarity word in clause {clause!r}")
    flips = sum(w in NEGATORS for w in words)
    return base[0] * (-1) ** flips


def sentiment_rule(text: str) -> int:
    """The compositional rule that labels every ``World.sentiment`` example.

    The deciding clause is the one after "but" or "; however,", and the main clause of
    "although" (first or last). Its polarity is the sign of its one polarity word, flipped once
    per negator ("not", "never"); intensifiers, diminishers and reported speech change nothing.

    Args:
        text: A sentence produced by ``World.sentiment``.

    Returns:
        1 for positive, 0 for negative.

    Raises:
        ValueError: If the deciding clause does not hold exactly one polarity word.
    """
    t = " ".join(text.lower().split()).rstrip(" .")
    if t.startswith("although "):
        deciding = t[len("although ") :].split(", ", 1)[1]
    elif ", although " in t:
        deciding = t.split(", although ", 1)[0]
    elif "; however, " in t:
        deciding = t.split("; however, ", 1)[1]
    elif " but " in t:
        deciding = t.split(" but ", 1)[1]
    else:
        deciding = t
    return 1 if _clause_polarity(deciding) > 0 else 0


def bag_of_words_sentiment(text: str) -> int:
    """A baseline that ignores composition: the majority of polarity words decides.

    Args:
        text: Any sentence.

    Returns:
        1 when positive polarity words outnumber negative ones, else 0 (ties are negative).
    """
    words = re.findall(r"[a-z]+", text.lower())
    score = sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)
    return 1 if score > 0 else 0


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class _Fact:
    person: str
    rel: str
    value: Any  # str, or (colour, thing) for "owns"


def _sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        if n < 1:
            raise ValueError(f"{name} must be at least 1, got {n}")


class World:
    """A seeded synthetic world: its cast, its pretraining corpus and its five tasks.

    Every method draws from its own random stream (derived from the seed and the method name), so
    the result of one method does not depend on which others were called before. Splits are drawn
    test first, then validation, then train, with duplicates rejected across all three: the test
    and validation sets stay the same when only ``n_train`` changes, and no example is shared.

    Attributes:
        seed: The seed everything is derived from.
        people: Display names of the cast ("Anna", "Anna Berg"); first names are unique.
        cities: City names, single- and multi-word.
        organisations: Organisation names, single- and multi-word.
        ambiguous_cities: The cities named like a surname of the cast or "Port <first name>".
        ambiguous_organisations: The organisations named after surnames or cities.
        lexicon: English lemma -> invented stem of the translation target language.
    """

    def __init__(self, seed: int = 0, n_people: int = 40) -> None:
        """Invent the cast, places, organisations and target lexicon for ``seed``.

        Args:
            seed: Seed of the world; the same seed always gives the same world.
            n_people: Size of the cast (at most the number of built-in first names).
        """
        if not 5 <= n_people <= len(FIRST_NAMES):
            raise ValueError(f"n_people must be in [5, {len(FIRST_NAMES)}], got {n_people}")
        self.seed = seed
        rng = self._rng("inventory")

        firsts = rng.sample(FIRST_NAMES, n_people)
        self.people: list[str] = []
        self._surname_of: dict[str, str] = {}
        for first in firsts:
            if rng.random() < 0.45:
                surname = rng.choice(SURNAMES)
                self.people.append(f"{first} {surname}")
                self._surname_of[f"{first} {surname}"] = surname
            else:
                self.people.append(first)
        used_surnames = sorted(set(self._surname_of.values()))

        taken = set(_ENGLISH)
        invented: list[str] = []
        while len(invented) < 22:
            name = _invent(rng, _PLACE_ONSETS, _PLACE_NUCLEI, _PLACE_CODAS, rng.choice((2, 2, 3)))
            if name not in taken and 4 <= len(name) <= 9:
                taken.add(name)
                invented.append(name.capitalize())
        # Ambiguous places: named like a surname of the cast, or "Port <first name>".
        self.surname_cities = rng.sample(used_surnames, min(3, len(used_surnames)))
        port_names = rng.sample([p.split()[0] for p in self.people], 2)
        self.cities: list[str] = (
            invented[:18]
            + [f"{rng.choice(CITY_PREFIXES)} {base}" for base in invented[18:22]]
            + self.surname_cities
            + [f"Port {first}" for first in port_names]
        )
        self.ambiguous_cities = self.surname_cities + [f"Port {first}" for first in port_names]

        heads = rng.sample(ORG_HEADS, 7)
        self.organisations: list[str] = [f"{head} {rng.choice(ORG_TAILS)}" for head in heads]
        self.ambiguous_organisations = [
            f"{rng.choice(used_surnames or SURNAMES)} {rng.choice(ORG_TAILS)}",
            f"{rng.choice(invented[:18])} {rng.choice(ORG_TAILS)}",
            f"{rng.choice(invented[:18])} {rng.choice(ORG_TAILS)}",
            " and ".join(rng.sample(used_surnames if len(used_surnames) > 1 else SURNAMES, 2)),
        ]
        self.organisations += self.ambiguous_organisations
        self.organisations += [
            _invent(rng, _PLACE_ONSETS, _PLACE_NUCLEI, ("x", "ix", "a"), 2).capitalize()
            for _ in range(2)
        ]
        self.organisations = list(dict.fromkeys(self.organisations))

        self.lexicon = self._invent_lexicon(rng)

    # ------------------------------------------------------------------ helpers

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"adaptnas.world/{self.seed}/{purpose}")

    def _invent_lexicon(self, rng: random.Random) -> dict[str, str]:
        lemmas = (
            list(PROFESSIONS) + list(THINGS) + list(_FOOD_NOUNS) + list(COLOURS) + list(SIZES)
            + list(FOOD_ADJS) + list(PERSON_ADJS) + list(VERBS) + list(_PREPOSITIONS)
            + sorted({w for advs in _ADVERBS.values() for adv in advs for w in adv})
        )  # fmt: skip
        lemmas = list(dict.fromkeys(lemmas))
        suffixes = (PLURAL_SUFFIX, OBJECT_SUFFIX, PLURAL_SUFFIX + OBJECT_SUFFIX)
        suffixes += tuple(TENSE_SUFFIXES.values())
        reserved = {OBJECT_SUFFIX} | set(_ENGLISH) | {c.lower() for c in self.cities}
        while True:
            lexicon: dict[str, str] = {}
            forms: set[str] = set()
            for lemma in lemmas:
                while True:
                    n = 2 if rng.random() < 0.75 else 3
                    stem = _invent(rng, _TARGET_ONSETS, _TARGET_NUCLEI, ("",), n)
                    if stem not in reserved and stem not in forms:
                        break
                lexicon[lemma] = stem
                forms.add(stem)
            surface = [s + x for s in lexicon.values() for x in suffixes]
            if not forms & set(surface) and len(set(surface)) == len(surface):
                return lexicon

    def _first(self, person: str) -> str:
        return person.split()[0]

    def _value(self, rng: random.Random, rel: str) -> Any:
        if rel in ("lives", "born"):
            return rng.choice(self.cities)
        if rel == "works":
            return rng.choice(self.organisations)
        if rel == "owns":
            return (rng.choice(COLOURS), rng.choice(list(THINGS)))
        if rel == "likes":
            return rng.choice(FOODS)
        return str(rng.randint(18, 79))

    # ------------------------------------------------------------------ facts and QA

    def _facts(self, rng: random.Random, n_people: int, n_facts: int, rel: str) -> list[_Fact]:
        """Facts about ``n_people`` people; the first one asks to be questioned on ``rel``.

        The first fact is about relation ``rel``; one or two further facts of the same relation
        about other people act as distractors. Values of one relation are distinct.
        """
        people = rng.sample(self.people, n_people)
        stated: dict[tuple[str, str], Any] = {}

        def state(person: str, r: str, value: Any = None) -> None:
            used = {v for (_, rr), v in stated.items() if rr == r}
            for _ in range(200):
                v = value if value is not None else self._value(rng, r)
                value = None
                if v not in used:
                    stated[(person, r)] = v
                    return
            raise RuntimeError("could not draw a distinct value")  # pragma: no cover

        target = people[0]
        state(target, rel)
        n_distractors = rng.randint(1, min(2, n_people - 1))
        for other in people[1 : 1 + n_distractors]:
            if rel == "owns":  # same thing in another colour, or same colour on another thing
                colour, thing = stated[(target, rel)]
                if rng.random() < 0.7:
                    state(other, rel, (rng.choice([c for c in COLOURS if c != colour]), thing))
                else:
                    state(other, rel, (colour, rng.choice([t for t in THINGS if t != thing])))
            else:
                state(other, rel)
        if rel in ("lives", "born") and rng.random() < 0.5:  # the same city, other relation
            other_rel = "born" if rel == "lives" else "lives"
            state(rng.choice(people[1:]), other_rel, stated[(target, rel)])
        for person in people:
            if not any(p == person for p, _ in stated):
                state(person, rng.choice([r for r in RELATIONS if r != rel]))
        while len(stated) < n_facts:
            person, r = rng.choice(people), rng.choice(RELATIONS)
            if (person, r) not in stated:
                state(person, r)
        facts = [_Fact(p, r, v) for (p, r), v in stated.items()]
        return facts

    def _render_fact(self, rng: random.Random, fact: _Fact) -> tuple[str, dict[str, int]]:
        values = {"p": fact.person}
        if fact.rel == "owns":
            colour, thing = fact.value
            values.update(v=colour, t=thing, art=_article(colour))
        else:
            values["v"] = fact.value
        return _fill(rng.choice(_FACT_TEMPLATES[fact.rel]), **values)

    @staticmethod
    def _has_distractor(fact: _Fact, facts: list[_Fact], ask_person: bool) -> bool:
        others = [f for f in facts if f.rel == fact.rel and f.person != fact.person]
        if fact.rel == "owns":
            colour, thing = fact.value
            if ask_person:
                return any(f.value[0] == colour or f.value[1] == thing for f in others)
            return any(f.value[1] == thing for f in others)
        return bool(others)

    def _question(self, rng: random.Random, fact: _Fact, ask_person: bool) -> str:
        if ask_person:
            template = rng.choice(_PERSON_QUESTIONS[fact.rel])
        else:
            template = rng.choice(_VALUE_QUESTIONS[fact.rel])
        person = fact.person
        if person in self._surname_of and rng.random() < 0.3:
            person = self._first(person)
        if fact.rel == "owns":
            colour, thing = fact.value
            return _fill(template, p=person, v=colour, t=thing)[0]
        return _fill(template, p=person, v=fact.value)[0]

    def _qa_context(self, rng: random.Random) -> tuple[str, list[tuple[str, str, int]]]:
        """One context with one or two questions: (context, [(question, answer, start)])."""
        while True:  # the first question must have a same-relation distractor in the context
            n_people = rng.randint(3, 5)
            n_facts = rng.randint(max(4, n_people + 1), 8)
            facts = self._facts(rng, n_people, n_facts, rng.choice(RELATIONS))
            asked = [(facts[0], rng.random() < 0.35)]
            if self._has_distractor(facts[0], facts, asked[0][1]):
                break
        for fact in rng.sample(facts[1:], len(facts) - 1):
            ask_person = rng.random() < 0.35
            if rng.random() < 0.6 and self._has_distractor(fact, facts, ask_person):
                asked.append((fact, ask_person))
                break
        order = list(range(len(facts)))
        rng.shuffle(order)
        sentences: list[str] = []
        offsets: dict[int, tuple[int, dict[str, int]]] = {}
        length = 0
        for index in order:
            sentence, starts = self._render_fact(rng, facts[index])
            offsets[index] = (length, starts)
            sentences.append(sentence)
            length += len(sentence) + 1
        context = " ".join(sentences)
        out = []
        for fact, ask_person in asked:
            base, starts = offsets[facts.index(fact)]
            slot = "p" if ask_person else "v"
            answer = fact.person if ask_person else (
                fact.value[0] if fact.rel == "owns" else fact.value
            )  # fmt: skip
            start = base + starts[slot]
            assert context[start : start + len(answer)] == answer
            out.append((self._question(rng, fact, ask_person), answer, start))
        return context, out

    def qa(self, n_train: int = 2000, n_val: int = 300, n_test: int = 300) -> Splits:
        """Extractive QA over short contexts of shuffled facts with same-relation distractors.

        Each context holds 4-8 facts about 3-5 people and yields one or two questions; both stay
        in the same split, and ``group`` names the context. Contexts are unique across splits.

        Args:
            n_train: Number of training questions.
            n_val: Number of validation questions.
            n_test: Number of test questions.

        Returns:
            Splits of ``QAExample`` whose single answer is ``(text, char_start)`` in the context.
        """
        _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        rng = self._rng("qa")
        seen: set[str] = set()
        splits: dict[str, list[QAExample]] = {}
        n_context = 0
        for split, n in (("test", n_test), ("validation", n_val), ("train", n_train)):
            examples: list[QAExample] = []
            attempts = 0
            while len(examples) < n:
                attempts += 1
                if attempts > 100 * n + 1000:  # pragma: no cover
                    raise RuntimeError("could not draw enough distinct QA contexts")
                context, questions = self._qa_context(rng)
                if context in seen:
                    continue
                seen.add(context)
                group = f"world{self.seed}-ctx{n_context}"
                n_context += 1
                for question, answer, start in questions[: n - len(examples)]:
                    examples.append(
                        QAExample(
                            id=f"world{self.seed}-qa-{split}-{len(examples)}",
                            question=question,
                            context=context,
                            answers=((answer, start),),
                            group=group,
                        )
                    )
            splits[split] = examples
        return Splits(splits["train"], splits["validation"], splits["test"])

    # ------------------------------------------------------------------ sentiment

    def _aspect(self, rng: random.Random) -> tuple[str, bool]:
        """Something to have an opinion about, and whether it is plural."""
        kind = rng.randrange(7)
        if kind == 0:
            food = rng.choice(FOODS)
            return f"the {food}", food in _PLURAL_FOODS
        if kind == 1:
            adj = rng.choice(COLOURS + SIZES)
            return f"the {adj} {rng.choice(list(THINGS))}", False
        if kind == 2:
            return f"the service at {rng.choice(self.organisations)}", False
        if kind == 3:
            return f"the trip to {rng.choice(self.cities)}", False
        if kind == 4:
            return f"the hotel in {rng.choice(self.cities)}", False
        if kind == 5:
            food = rng.choice(FOODS)
            return f"the {food} at {rng.choice(self.organisations)}", food in _PLURAL_FOODS
        return f"the {rng.choice(list(THINGS))}", False

    def _opinion(self, rng: random.Random, word_polarity: int, negated: bool) -> str:
        """A clause with exactly one polarity word and zero or one negator."""
        aspect, plural = self._aspect(rng)
        if rng.random() < 0.6:  # copula: "the soup was not very good"
            adj = rng.choice(_POS_ADJ if word_polarity > 0 else _NEG_ADJ)
            past = rng.random() < 0.6
            copula = ("were" if plural else "was") if past else ("are" if plural else "is")
            degree = ""
            r = rng.random()
            if r < 0.3:
                degree = rng.choice(_INTENSIFIERS) + " "
            elif r < 0.45 and not negated:
                degree = rng.choice(_DIMINISHERS) + " "
            negation = rng.choice(("not ", "not ", "never ")) if negated else ""
            return f"{aspect} {copula} {negation}{degree}{adj}"
        verbs = _POS_VERB if word_polarity > 0 else _NEG_VERB
        base = rng.choice(list(verbs))
        who = rng.choice(("I", "we", "my friend", "my sister", rng.choice(self.people)))
        if not negated:
            adverb = rng.choice(("", "", "really ", "truly "))
            return f"{who} {adverb}{verbs[base]} {aspect}"
        if rng.random() < 0.65:
            return f"{who} did not {base} {aspect}"
        return f"{who} never {verbs[base]} {aspect}"

    def _sentiment_clause(self, rng: random.Random, polarity: int, negations: int) -> str:
        """A clause of the given polarity carrying ``negations`` (0-2) negators."""
        word_polarity = polarity * (-1) ** negations
        if negations == 2 or (negations == 1 and rng.random() < 0.25):
            inner = self._opinion(rng, word_polarity, negated=negations == 2)
            clause = f"{rng.choice(_DOUBLE_NEGATION_FRAMES)} {inner}"
        else:
            clause = self._opinion(rng, word_polarity, negated=negations == 1)
        if rng.random() < 0.15:  # reported opinion: changes nothing
            reporter = rng.choice((f"{rng.choice(self.people)} said that", "I think"))
            clause = f"{rng.choice((reporter, 'everyone agreed that'))} {clause}"
        return clause

    def _sentiment_text(self, rng: random.Random, label: int) -> str:
        polarity = 1 if label == 1 else -1
        # Mostly one negation or none, some double: learnable in a short fine-tune, yet a bag of
        # words stays far from the rule, so models that read order and scope score higher.
        negations = rng.choices((0, 1, 2), weights=(50, 38, 12))[0]
        deciding = self._sentiment_clause(rng, polarity, negations)
        if rng.random() < 0.5:
            return _capitalise(deciding) + "."
        other_polarity = -polarity if rng.random() < 0.75 else polarity
        other = self._sentiment_clause(rng, other_polarity, rng.choices((0, 1, 2), (65, 30, 5))[0])
        form = rng.choices(("but", "however", "although_first", "although_last"), (35, 20, 25, 20))
        if form[0] == "but":
            text = f"{other} but {deciding}"
        elif form[0] == "however":
            text = f"{other}; however, {deciding}"
        elif form[0] == "although_first":
            text = f"although {other}, {deciding}"
        else:
            text = f"{deciding}, although {other}"
        return _capitalise(text) + "."

    def sentiment(self, n_train: int = 2000, n_val: int = 400, n_test: int = 400) -> Splits:
        """Binary sentiment whose label needs composition (negation, contrast, "although").

        Labels alternate while drawing, so each split is balanced (within one when odd).
        ``sentiment_rule`` reproduces every label from the text alone.

        Args:
            n_train: Number of training sentences.
            n_val: Number of validation sentences.
            n_test: Number of test sentences.

        Returns:
            Splits of ``TextExample`` with labels ``["negative", "positive"]``.
        """
        _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        rng = self._rng("sentiment")

        def make(i: int) -> TextExample:
            return TextExample(text=self._sentiment_text(rng, i % 2), label=i % 2)

        return self._draw(make, lambda ex: ex.text, n_train, n_val, n_test, SENTIMENT_LABELS, rng)

    # ------------------------------------------------------------------ NER

    def _ner_example(self, rng: random.Random) -> TokenExample:
        template = rng.choice(_NER_TEMPLATES)
        tokens: list[str] = []
        tags: list[str] = []
        used: set[str] = set()

        def entity(kind: str) -> str:
            for _ in range(50):
                if kind == "PER":
                    person = rng.choice(self.people)
                    name = self._first(person) if rng.random() < 0.15 else person
                elif kind == "SUR":
                    name = rng.choice(
                        self.surname_cities
                        if rng.random() < 0.5 and self.surname_cities
                        else sorted(set(self._surname_of.values())) or SURNAMES
                    )
                elif kind == "LOC":
                    pool = self.ambiguous_cities if rng.random() < 0.3 else self.cities
                    name = rng.choice(pool)
                else:
                    pool = (
                        self.ambiguous_organisations if rng.random() < 0.3 else self.organisations
                    )
                    name = rng.choice(pool)
                if name not in used:
                    used.add(name)
                    return name
            raise RuntimeError("could not draw a distinct entity")  # pragma: no cover

        for word in template.split():
            match = _SLOT.fullmatch(word)
            if not match:
                tokens.append(word)
                tags.append("O")
                continue
            slot = match.group(1)
            if slot in ("PER", "SUR", "LOC", "ORG"):
                kind = "PER" if slot == "SUR" else slot
                words = entity(slot).split()
                tokens.extend(words)
                tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
                continue
            if slot == "job":
                value = rng.choice(list(PROFESSIONS))
            elif slot == "colour":
                value = rng.choice(COLOURS)
            elif slot == "thing":
                value = rng.choice(list(THINGS))
            elif slot == "food":
                value = rng.choice(FOODS)
            else:
                value = rng.choice(_POS_ADJ + _NEG_ADJ)
            tokens.append(value)
            tags.append("O")
        return TokenExample(tokens=tuple(tokens), tags=tuple(tags))

    def ner(self, n_train: int = 2000, n_val: int = 300, n_test: int = 300) -> Splits:
        """Named entities (PER, LOC, ORG) in IOB2 over sentences of the world.

        Entities span one to three words; surnames double as city names ("Holm"), first names
        appear inside city names ("Port Lena") and city names inside organisations
        ("Varen Bank"), so a word's tag depends on its neighbours.

        Args:
            n_train: Number of training sentences.
            n_val: Number of validation sentences.
            n_test: Number of test sentences.

        Returns:
            Splits of ``TokenExample``; ``labels`` is the sorted tag list including ``"O"``.
        """
        _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        rng = self._rng("ner")
        return self._draw(
            lambda i: self._ner_example(rng),
            lambda ex: ex.tokens,
            n_train,
            n_val,
            n_test,
            list(NER_LABELS),
            rng,
        )

    # ------------------------------------------------------------------ translation

    def _noun_phrase(
        self, rng: random.Random, kind: str, is_object: bool, exclude: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str], bool]:
        """English words, target words and plurality of one noun phrase."""
        if kind == "name":
            name = rng.choice([p for p in self.people if p not in exclude])
            words = name.split()
            return words, words + ([OBJECT_SUFFIX] if is_object else []), False
        if kind == "person":
            noun = rng.choice(list(PROFESSIONS))
            plural = rng.random() < 0.35
            english_noun = PROFESSIONS[noun] if plural else noun
            adjs = [rng.choice(PERSON_ADJS)] if rng.random() < 0.4 else []
        elif kind == "thing":
            noun = rng.choice(list(THINGS))
            plural = rng.random() < 0.35
            english_noun = THINGS[noun] if plural else noun
            r = rng.random()
            if r < 0.25:
                adjs = [rng.choice(SIZES), rng.choice(COLOURS)]
            elif r < 0.6:
                adjs = [rng.choice(COLOURS)]
            elif r < 0.75:
                adjs = [rng.choice(SIZES)]
            else:
                adjs = []
        else:
            noun = rng.choice(list(_FOOD_NOUNS))
            surface, plural_form = _FOOD_NOUNS[noun]
            plural = plural_form is not None
            english_noun = surface
            adjs = [rng.choice(FOOD_ADJS)] if rng.random() < 0.35 else []
        if plural:
            article = "the" if rng.random() < 0.7 else ""
        elif is_object and kind == "thing" and rng.random() < 0.4:
            article = _article((adjs or [english_noun])[0])
        else:
            article = "the"
        english = ([article] if article else []) + adjs + [english_noun]
        stem = self.lexicon[noun] + (PLURAL_SUFFIX if plural else "")
        stem += OBJECT_SUFFIX if is_object else ""
        target = [stem] + [self.lexicon[a] for a in adjs]
        return english, target, plural

    def _translation_pair(
        self, rng: random.Random, cast: list[str] | None = None
    ) -> tuple[str, str]:
        """One English sentence and its translation (SOV, postpositions, suffixes)."""
        if cast and rng.random() < 0.7:
            name = rng.choice(cast)
            subject, subject_t, plural = name.split(), name.split(), False
        else:
            subject, subject_t, plural = self._noun_phrase(
                rng, "name" if rng.random() < 0.5 else "person", is_object=False
            )
        tense = rng.choice(list(TENSE_SUFFIXES))
        transitive = rng.random() < 0.7
        verb = rng.choice(list(_TRANSITIVE) if transitive else list(_INTRANSITIVE))
        base, third, past = VERBS[verb]
        if tense == "present":
            verb_en = [base if plural else third]
        elif tense == "past":
            verb_en = [past]
        else:
            verb_en = ["will", base]
        verb_t = [self.lexicon[verb] + TENSE_SUFFIXES[tense]]

        obj: list[str] = []
        obj_t: list[str] = []
        if transitive:
            obj, obj_t, _ = self._noun_phrase(
                rng, rng.choice(_TRANSITIVE[verb]), is_object=True, exclude=(" ".join(subject),)
            )

        pp: list[str] = []
        pp_t: list[str] = []
        if rng.random() < (0.8 if verb in _MOTION else 0.5):
            if verb in _MOTION:
                prep, place = "to", rng.choice(self.cities)
            else:
                prep = rng.choice(("in", "at", "with"))
                if prep == "in":
                    place = rng.choice(self.cities)
                elif prep == "at":
                    place = rng.choice(self.organisations)
                else:
                    named = (" ".join(subject), " ".join(obj))
                    place = rng.choice([p for p in self.people if p not in named])
            pp, pp_t = [prep, *place.split()], [*place.split(), self.lexicon[prep]]

        adverb: list[str] = []
        if rng.random() < 0.6:
            adverb = list(rng.choice(_ADVERBS[tense]))
        adverb_t = [self.lexicon[w] for w in adverb]

        english = subject + verb_en + obj + pp + adverb
        target = subject_t + adverb_t + pp_t + obj_t + verb_t
        return _capitalise(" ".join(english)) + ".", _capitalise(" ".join(target)) + "."

    def translation(self, n_train: int = 2000, n_val: int = 300, n_test: int = 300) -> Splits:
        """English to an invented subject-object-verb language with suffixes.

        Args:
            n_train: Number of training pairs.
            n_val: Number of validation pairs.
            n_test: Number of test pairs.

        Returns:
            Splits of ``PairExample`` (source: English, target: the invented language).
        """
        _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        rng = self._rng("translation")

        def make(i: int) -> PairExample:
            return PairExample(*self._translation_pair(rng))

        return self._draw(make, lambda ex: ex.source, n_train, n_val, n_test, [], rng)

    # ------------------------------------------------------------------ summarization

    def _summary_pair(self, rng: random.Random) -> tuple[str, str]:
        """One titled document of shuffled facts and the summary of the titled person's facts."""
        n_people = rng.randint(2, 4)
        facts = self._facts(
            rng, n_people, rng.randint(max(4, n_people + 2), 8), rng.choice(RELATIONS)
        )
        person = facts[0].person  # _facts puts the person with a same-relation distractor first
        rng.shuffle(facts)
        title = rng.choice(_SUMMARY_TITLES).format(p=person)
        document = " ".join([title] + [self._render_fact(rng, f)[0] for f in facts])
        phrases = []
        for fact in facts:
            if fact.person != person:
                continue
            if fact.rel == "owns":
                colour, thing = fact.value
                phrases.append(f"owns {_article(colour)} {colour} {thing}")
            else:
                phrases.append(_SUMMARY_PHRASES[fact.rel].format(v=fact.value))
        if len(phrases) == 1:
            said = phrases[0]
        else:
            said = ", ".join(phrases[:-1]) + " and " + phrases[-1]
        return document, f"{person} {said}."

    def summarization(self, n_train: int = 2000, n_val: int = 300, n_test: int = 300) -> Splits:
        """Summaries of the titled person's facts in short documents about several people.

        The reference summary is a deterministic compression of the document: the facts about
        the person the title names, in document order, each in one canonical phrase
        (``lives in X``, ``was born in X``, ``works at X``, ``owns a C T``, ``likes X``,
        ``is N years old``), joined into one sentence.

        Args:
            n_train: Number of training documents.
            n_val: Number of validation documents.
            n_test: Number of test documents.

        Returns:
            Splits of ``PairExample`` (source: the document, target: its summary).
        """
        _sizes(n_train=n_train, n_val=n_val, n_test=n_test)
        rng = self._rng("summarization")

        def make(i: int) -> PairExample:
            return PairExample(*self._summary_pair(rng))

        return self._draw(make, lambda ex: ex.source, n_train, n_val, n_test, [], rng)

    # ------------------------------------------------------------------ corpus

    def corpus(self, n_sentences: int = 20000) -> list[str]:
        """Pretraining documents: short paragraphs over the world's whole task vocabulary.

        Paragraph kinds: profiles (facts about a few people, often followed by a restatement or a
        question and its answer, so a language model learns to look back), stories (sentences of
        the translation grammar about a small cast), reviews (sentiment sentences) and news
        (sentences with named entities).

        Args:
            n_sentences: Stop once the documents hold at least this many sentences.

        Returns:
            A list of paragraphs, each a few sentences joined by spaces.
        """
        _sizes(n_sentences=n_sentences)
        rng = self._rng("corpus")
        # Verdicts draw from their own stream and do not count as sentences: the corpus is the
        # same as without them, plus them.
        verdicts = self._rng("verdicts")
        documents: list[str] = []
        total = 0
        while total < n_sentences:
            kind = rng.choices(("profile", "story", "review", "news"), (40, 25, 20, 15))[0]
            if kind == "profile":
                sentences = self._profile(rng)
            elif kind == "story":
                cast = rng.sample(self.people, rng.randint(1, 2))
                sentences = [self._story_sentence(rng, cast) for _ in range(rng.randint(3, 5))]
            elif kind == "review":
                sentences = self._review(rng, verdicts)
            else:
                sentences = [
                    _detokenise(self._ner_example(rng).tokens) for _ in range(rng.randint(2, 4))
                ]
            documents.append(" ".join(sentences))
            total += sum(s not in VERDICTS for s in sentences)
        return documents

    def _review(self, rng: random.Random, verdicts: random.Random) -> list[str]:
        """Opinion sentences, most followed by the writer's verdict on them.

        Reviews in the wild say what their sentences mean ("Not recommended."): predicting the
        verdict teaches a language model the composition (negation, contrast) that the sentiment
        task scores, as star ratings next to reviews do for real models. Verdicts never follow a
        held-out example (those sentences are removed from the corpus, ``leakage``).
        """
        sentences: list[str] = []
        for _ in range(rng.randint(2, 4)):
            label = rng.randrange(2)
            sentences.append(self._sentiment_text(rng, label))
            if verdicts.random() < 0.7:
                sentences.append(verdicts.choice(_VERDICTS[label]))
        return sentences

    def _profile(self, rng: random.Random) -> list[str]:
        n_people = rng.randint(2, 4)
        facts = self._facts(rng, n_people, rng.randint(n_people + 1, 6), rng.choice(RELATIONS))
        rng.shuffle(facts)
        sentences = [self._render_fact(rng, fact)[0] for fact in facts]
        for fact in rng.sample(facts, min(len(facts), rng.randint(0, 2))):
            restated = self._render_fact(rng, fact)[0]
            if rng.random() < 0.5:
                ask_person = rng.random() < 0.35 and self._has_distractor(fact, facts, True)
                sentences += [self._question(rng, fact, ask_person), restated]
            else:
                sentences.append(restated)
        return sentences

    def _story_sentence(self, rng: random.Random, cast: list[str]) -> str:
        sentence = self._translation_pair(rng, cast)[0]
        if rng.random() < 0.3:
            opener = rng.choice(("Then", "Later", "After that,"))
            first = sentence.split()[0]
            if first == "The":
                sentence = "the" + sentence[3:]
            sentence = f"{opener} {sentence}"
        return sentence

    # ------------------------------------------------------------------ splits

    def _draw(
        self,
        make: Callable[[int], Any],
        key: Callable[[Any], Hashable],
        n_train: int,
        n_val: int,
        n_test: int,
        labels: list[str],
        rng: random.Random,
    ) -> Splits:
        """Draw test, validation, then train examples, rejecting duplicates across all three."""
        seen: set[Hashable] = set()
        splits: dict[str, list[Any]] = {}
        for split, n in (("test", n_test), ("validation", n_val), ("train", n_train)):
            examples: list[Any] = []
            attempts = 0
            while len(examples) < n:
                attempts += 1
                if attempts > 100 * n + 1000:  # pragma: no cover
                    raise RuntimeError(f"could not draw {n} distinct examples for '{split}'")
                example = make(len(examples))
                k = key(example)
                if k not in seen:
                    seen.add(k)
                    examples.append(example)
            rng.shuffle(examples)
            splits[split] = examples
        return Splits(splits["train"], splits["validation"], splits["test"], labels=labels)
