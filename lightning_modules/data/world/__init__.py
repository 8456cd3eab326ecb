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

The code
    ``lexicon.py`` holds the fixed vocabulary and templates, ``cast.py`` the seeded cast and the
    drawing of facts and splits; each task generator has its own module (``qa.py``,
    ``sentiment.py``, ``ner.py``, ``translation.py``, ``summarization.py``) and ``corpus.py`` the
    pretraining text. ``World`` joins them: one object, one cast, so the corpus and every task
    speak about the same people and places.
"""

from __future__ import annotations

from lightning_modules.data.world.cast import Cast
from lightning_modules.data.world.corpus import Corpus
from lightning_modules.data.world.lexicon import (
    COLOURS,
    FOODS,
    NEGATIVE_WORDS,
    NEGATORS,
    NER_LABELS,
    OBJECT_SUFFIX,
    PLURAL_SUFFIX,
    POSITIVE_WORDS,
    SENTIMENT_LABELS,
    TENSE_SUFFIXES,
    THINGS,
    VERBS,
    VERDICTS,
    bag_of_words_sentiment,
    sentiment_rule,
)
from lightning_modules.data.world.ner import NERTask
from lightning_modules.data.world.qa import QATask
from lightning_modules.data.world.sentiment import SentimentTask
from lightning_modules.data.world.summarization import SummarizationTask
from lightning_modules.data.world.translation import TranslationTask

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


class World(QATask, SentimentTask, NERTask, TranslationTask, SummarizationTask, Corpus, Cast):
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
