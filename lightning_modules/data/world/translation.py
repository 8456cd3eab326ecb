"""English into the world's invented subject-object-verb language."""

from __future__ import annotations

import random

from lightning_modules.data.examples import PairExample, Splits
from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _ADVERBS,
    _FOOD_NOUNS,
    _INTRANSITIVE,
    _MOTION,
    _TRANSITIVE,
    COLOURS,
    FOOD_ADJS,
    OBJECT_SUFFIX,
    PERSON_ADJS,
    PLURAL_SUFFIX,
    PROFESSIONS,
    SIZES,
    TENSE_SUFFIXES,
    THINGS,
    VERBS,
    _article,
    _capitalise,
    _sizes,
)


class TranslationTask(Cast):
    """English into the world's invented subject-object-verb language."""

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
