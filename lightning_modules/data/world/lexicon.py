"""The world's fixed vocabulary: names, things, verbs, templates, the sentiment rule.

Everything here is a constant or a pure function of its arguments; the seeded parts of the world
(the cast, places, the invented target lexicon) are drawn in ``cast.py``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class _Fact:
    person: str
    rel: str
    value: Any  # str, or (colour, thing) for "owns"


def _sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        if n < 1:
            raise ValueError(f"{name} must be at least 1, got {n}")
