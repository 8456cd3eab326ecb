"""IOB2 entity tagging over ambiguous multi-word names."""

from __future__ import annotations

import random

from lightning_modules.data.examples import Splits, TokenExample
from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _NEG_ADJ,
    _NER_TEMPLATES,
    _POS_ADJ,
    _SLOT,
    COLOURS,
    FOODS,
    NER_LABELS,
    PROFESSIONS,
    SURNAMES,
    THINGS,
    _sizes,
)


class NERTask(Cast):
    """IOB2 entity tagging over ambiguous multi-word names."""

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
