"""A titled document of facts, summarised to the titled person's facts."""

from __future__ import annotations

import random

from lightning_modules.data.examples import PairExample, Splits
from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _SUMMARY_PHRASES,
    _SUMMARY_TITLES,
    RELATIONS,
    _article,
    _sizes,
)


class SummarizationTask(Cast):
    """A titled document of facts, summarised to the titled person's facts."""

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
