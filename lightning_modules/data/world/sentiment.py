"""Reviews whose label follows negation, double negation and contrast."""

from __future__ import annotations

import random

from lightning_modules.data.examples import Splits, TextExample
from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _DIMINISHERS,
    _DOUBLE_NEGATION_FRAMES,
    _INTENSIFIERS,
    _NEG_ADJ,
    _NEG_VERB,
    _PLURAL_FOODS,
    _POS_ADJ,
    _POS_VERB,
    COLOURS,
    FOODS,
    SENTIMENT_LABELS,
    SIZES,
    THINGS,
    _capitalise,
    _sizes,
)


class SentimentTask(Cast):
    """Reviews whose label follows negation, double negation and contrast."""

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
