"""Extractive QA over a context of shuffled facts with a same-relation distractor."""

from __future__ import annotations

import random

from lightning_modules.data.examples import QAExample, Splits
from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.lexicon import (
    _PERSON_QUESTIONS,
    _VALUE_QUESTIONS,
    RELATIONS,
    _Fact,
    _fill,
    _sizes,
)


class QATask(Cast):
    """Extractive QA over a context of shuffled facts with a same-relation distractor."""

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
