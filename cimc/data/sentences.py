"""Generated English sentences for the synthetic corpus: unlimited, varied, and reproducible from an RNG.

A small grammar (clauses joined by conjunctions, some questions) over a few hundred everyday words.
Generating rather than shipping a fixed list means a speaker can have any number of utterances without
repeating a sentence, and the length can follow a target word count (hence a target duration).

>>> import numpy as np
>>> sentence = make_sentence(np.random.default_rng(0), num_words=8)
>>> sentence[0].isupper() and sentence[-1] in ".?!"
True
"""
from __future__ import annotations

import numpy as np

ADJECTIVES = (
    "old new small large quiet loud bright dark warm cold heavy light round narrow wide soft hard "
    "green red blue yellow brown golden silver wooden broken clean dusty empty full young ancient "
    "friendly careful busy lazy strange simple famous hidden distant early late gentle bitter sweet"
).split()
NOUNS = (
    "dog cat horse bird fish farmer teacher doctor sailor baker child neighbour captain student "
    "painter driver garden river mountain village kitchen window table chair letter basket bottle "
    "candle ladder bridge road forest island market station engine clock hammer blanket lantern "
    "orchard meadow harbour castle tower wagon kettle pocket mirror ribbon button pencil journal "
    "piano violin trumpet drum apple orange lemon onion carrot potato cheese bread soup coffee"
).split()
NAMES = (
    "Anna Ben Clara David Emma Frank Grace Henry Iris Jack Kate Leo Maria Nora Oscar Paul Rosa Sam "
    "Tom Vera William Alice Martin Helen Peter Lucy George Diana"
).split()
TRANSITIVE = (
    "carried painted found lifted opened cleaned dropped watched followed repaired pushed pulled "
    "noticed visited borrowed covered filled ordered measured packed chose wrapped buried counted"
).split()
BASE_VERBS = (
    "carry paint find lift open clean drop watch follow repair push pull notice visit borrow cover "
    "fill order measure pack choose wrap bury count"
).split()
INTRANSITIVE = (
    "waited laughed slept arrived vanished shouted listened wandered rested smiled trembled "
    "returned hurried stopped danced whispered"
).split()
ADVERBS = (
    "slowly quickly quietly carefully suddenly happily gently loudly nearly seldom again today "
    "yesterday outside downstairs together"
).split()
PREPOSITIONS = "near behind under beside above across along inside around beyond through".split()
TIMES = (
    "in the morning|after dinner|before noon|at midnight|on Monday|last winter|every evening|"
    "during the storm|after the rain|at sunrise"
).split("|")
CONJUNCTIONS = (", and", ", but", " while", " because", ", so", " when", " until", " although")


def _pick(rng: np.random.Generator, words: tuple[str, ...] | list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return _pick(rng, NAMES)
    words = [_pick(rng, ADJECTIVES)] if rng.random() < 0.6 else []
    words.append(_pick(rng, NOUNS))
    determiner = _pick(rng, ("the", "the", "a", "my", "our", "that"))
    if determiner == "a" and words[0][0] in "aeiou":
        determiner = "an"
    return " ".join([determiner, *words])


def _clause(rng: np.random.Generator) -> str:
    kind = int(rng.integers(5))
    if kind == 0:
        return f"{_noun_phrase(rng)} {_pick(rng, TRANSITIVE)} {_noun_phrase(rng)}"
    if kind == 1:
        return f"{_noun_phrase(rng)} {_pick(rng, INTRANSITIVE)} {_pick(rng, ADVERBS)}"
    if kind == 2:
        return f"{_noun_phrase(rng)} {_pick(rng, INTRANSITIVE)} {_pick(rng, PREPOSITIONS)} {_noun_phrase(rng)}"
    if kind == 3:
        return f"{_noun_phrase(rng)} {_pick(rng, TRANSITIVE)} {_noun_phrase(rng)} {_pick(rng, TIMES)}"
    return f"{_noun_phrase(rng)} will {_pick(rng, BASE_VERBS)} {_noun_phrase(rng)} {_pick(rng, PREPOSITIONS)} " \
           f"{_noun_phrase(rng)}"


def make_sentence(rng: np.random.Generator, num_words: int) -> str:
    """One sentence of roughly ``num_words`` words (at least one clause), capitalised and punctuated.

    :param rng: the source of all choices (same state, same sentence).
    :param num_words: target length; clauses are added until it is reached.
    """
    if rng.random() < 0.12:  # a question: espeak's rising intonation varies the pitch contours
        sentence = f"did {_noun_phrase(rng)} {_pick(rng, BASE_VERBS)} {_noun_phrase(rng)}"
        end = "?"
    else:
        sentence, end = _clause(rng), "."
    while len(sentence.split()) < num_words - 2:
        sentence += f"{_pick(rng, CONJUNCTIONS)} {_clause(rng)}"
    return sentence[0].upper() + sentence[1:] + end
