"""The seeded cast of the world (people, places, organisations, target lexicon) and how facts
about it are drawn and rendered; every task generator builds on it."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from typing import Any

from lightning_modules.data.examples import Splits
from lightning_modules.data.world.lexicon import (
    _ADVERBS,
    _ENGLISH,
    _FACT_TEMPLATES,
    _FOOD_NOUNS,
    _PLACE_CODAS,
    _PLACE_NUCLEI,
    _PLACE_ONSETS,
    _PREPOSITIONS,
    _TARGET_NUCLEI,
    _TARGET_ONSETS,
    CITY_PREFIXES,
    COLOURS,
    FIRST_NAMES,
    FOOD_ADJS,
    FOODS,
    OBJECT_SUFFIX,
    ORG_HEADS,
    ORG_TAILS,
    PERSON_ADJS,
    PLURAL_SUFFIX,
    PROFESSIONS,
    RELATIONS,
    SIZES,
    SURNAMES,
    TENSE_SUFFIXES,
    THINGS,
    VERBS,
    _article,
    _Fact,
    _fill,
    _invent,
)


class Cast:
    """The seeded cast, its facts and the split drawing shared by every task generator.

    ``World`` (the package's one public class) documents the attributes.
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
