"""The pretraining text: reviews, profiles and stories about the cast."""

from __future__ import annotations

import random

from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _VERDICTS,
    RELATIONS,
    VERDICTS,
    _detokenise,
    _sizes,
)


class Corpus(Cast):
    """The pretraining text: reviews, profiles and stories about the cast."""

    # ------------------------------------------------------------------ corpus

    def corpus(self, n_sentences: int = 20000, target_stories: float = 0.0) -> list[str]:
        """Pretraining documents: short paragraphs over the world's whole task vocabulary.

        Paragraph kinds: profiles (facts about a few people, often followed by a restatement or a
        question and its answer, so a language model learns to look back), stories (sentences of
        the translation grammar about a small cast), reviews (sentiment sentences) and news
        (sentences with named entities).

        A share ``target_stories`` of the stories is told in the translation task's target
        language instead of English: monolingual text, never a sentence next to its translation,
        as a real model's pretraining holds other languages. The choice draws from a stream of
        its own, so at 0 the corpus is exactly the English-only one.

        Args:
            n_sentences: Stop once the documents hold at least this many sentences.
            target_stories: Share of the stories told in the target language, in [0, 1].

        Returns:
            A list of paragraphs, each a few sentences joined by spaces.
        """
        _sizes(n_sentences=n_sentences)
        if not 0.0 <= target_stories <= 1.0:
            raise ValueError(f"target_stories must be in [0, 1], got {target_stories}")
        rng = self._rng("corpus")
        told = self._rng("target_stories")  # which stories are told in the target language
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
                target = target_stories > 0 and told.random() < target_stories
                sentences = [
                    self._story_sentence(rng, cast, target) for _ in range(rng.randint(3, 5))
                ]
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

    def _story_sentence(self, rng: random.Random, cast: list[str], target: bool = False) -> str:
        english, translated = self._translation_pair(rng, cast)
        opens = rng.random() < 0.3
        if target:  # the target language has no openers
            return translated
        sentence = english
        if opens:
            opener = rng.choice(("Then", "Later", "After that,"))
            first = sentence.split()[0]
            if first == "The":
                sentence = "the" + sentence[3:]
            sentence = f"{opener} {sentence}"
        return sentence
