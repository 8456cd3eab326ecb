"""The built-in code task: small Python functions described in words, generated from a seed.

Each example is a one-sentence description naming the function and its arguments ("Write a
function add_7(n) that returns n plus 7."), the reference code (``def add_7(n):\\n    return n +
7``), the entry point and unit tests (``assert add_7(3) == 10``) whose expected values come from
a Python model of each template, so a template whose code and model disagree fails the test that
runs every reference program against its own tests.

The grammar: 42 function kinds (arithmetic on one or two numbers, predicates, clamping, list
reductions, filters and maps, ordering, strings), each with a few names, phrasings, argument
names and a constant, in three openings ("Write a function ...", "Define ...", "Implement
..."); some bodies are one ``return``, others loops with nested indentation. The pretraining
corpus holds no code, so what a candidate learns here comes from adaptation alone.

Code carries newlines and indentation, which the built-in BPE cannot keep (its alphabet has no
``\\n``; spaces survive). ``code_to_text`` writes each line break with its indentation as a marker
(`` `4 `` is a newline followed by four spaces) and ``text_to_code`` restores it, before scoring
and execution; only the code task uses them, so the tokenizer itself is unchanged.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import Splits

__all__ = [
    "KINDS",
    "CodeExample",
    "capacity",
    "code_splits",
    "code_to_text",
    "program",
    "text_to_code",
]


@dataclass(frozen=True)
class CodeExample:
    """A program to write and the unit tests that judge it.

    Attributes:
        source: What the model reads: a description (built-in, MBPP) or a signature with a
            docstring (HumanEval).
        target: The reference code (HumanEval: the body that continues ``prefix``).
        entry_point: The function the tests call.
        tests: Python statements (asserts; HumanEval: ``def check`` plus its call) that raise
            when the code is wrong.
        prefix: Code placed before the generated code when it runs (HumanEval's prompt).
    """

    source: str
    target: str
    entry_point: str
    tests: str
    prefix: str = ""


def program(example: CodeExample, code: str) -> str:
    """The whole program to execute: prefix, the (generated) code, then the tests."""
    return f"{example.prefix}{code}\n\n{example.tests}\n"


# ---------------------------------------------------------------------- newline/indent markers

_ENCODE = re.compile(r"`|\t|\n( *)")
_DECODE = re.compile(r" ?`(\d+) ?|``|`t")


def code_to_text(code: str) -> str:
    """Code as one line the BPE keeps: a line break plus ``k`` spaces of indent -> `` `k ``.

    Backticks (not Python syntax, but possible in strings) are doubled and tabs become `` `t``,
    so ``text_to_code(code_to_text(c)) == c`` for every ``c`` (``\\r\\n`` is read as ``\\n``).
    """

    def sub(m: re.Match) -> str:
        if m.group(0) == "`":
            return "``"
        if m.group(0) == "\t":
            return "`t"
        return f" `{len(m.group(1))} "

    return _ENCODE.sub(sub, code.replace("\r\n", "\n"))


def text_to_code(text: str) -> str:
    """Undo ``code_to_text`` (on any decoded text: what is not a marker stays as it is)."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "``":
            return "`"
        if m.group(0) == "`t":
            return "\t"
        return "\n" + " " * int(m.group(1))

    return _DECODE.sub(sub, text)


# ---------------------------------------------------------------------------------- the grammar

_NUM = ("x", "n", "num", "value", "k", "number", "v", "amount")
_PAIR = (
    ("a", "b"), ("x", "y"), ("m", "n"), ("first", "second"), ("p", "q"), ("left", "right"),
    ("u", "v"), ("i", "j"),
)  # fmt: skip
_LIST = ("xs", "nums", "values", "items", "numbers", "lst", "data", "seq")
_STR = ("s", "text", "word", "name", "string", "label")
_OPENINGS = (
    "Write a function {sig} that returns {phrase}.",
    "Define {sig}, which returns {phrase}.",
    "Implement {sig} so that it returns {phrase}.",
)
_WORDS = ("apple", "river", "stone", "banana", "cloud", "level", "tree", "moon", "paper", "zebra")


@dataclass(frozen=True)
class Kind:
    """One function kind of the grammar.

    Attributes:
        names: Function names (``{c}`` is the constant).
        phrases: What the function returns, in words (``{a}``, ``{b}``: argument names, ``{c}``).
        body: The code's body lines (after ``def ...:``), indented by four spaces per level.
        args: ``num``, ``pair``, ``list`` or ``str``: the argument shape.
        model: Python reference: ``model(*inputs, c)`` is the expected value.
        consts: The constants drawn for ``{c}``.
        nonempty: Lists given to it have at least one element.
        span: The range of a number given to it.
    """

    names: tuple[str, ...]
    phrases: tuple[str, ...]
    body: str
    args: str
    model: Callable[..., Any]
    consts: tuple[int, ...] = (0,)
    nonempty: bool = False
    span: tuple[int, int] = (-20, 20)


def _k(names, phrases, body, args, model, consts=(0,), nonempty=False, span=(-20, 20)) -> Kind:
    return Kind(tuple(names), tuple(phrases), body, args, model, tuple(consts), nonempty, span)


_C = tuple(range(2, 10))

# fmt: off
KINDS: dict[str, Kind] = {
    # one number
    "add": _k(["add_{c}", "plus_{c}"], ["{a} plus {c}", "the sum of {a} and {c}"],
              "return {a} + {c}", "num", lambda x, c: x + c, _C),
    "sub": _k(["minus_{c}", "subtract_{c}"], ["{a} minus {c}", "{a} with {c} taken away"],
              "return {a} - {c}", "num", lambda x, c: x - c, _C),
    "mul": _k(["times_{c}", "multiply_by_{c}"], ["{a} times {c}", "{a} multiplied by {c}"],
              "return {a} * {c}", "num", lambda x, c: x * c, _C),
    "square": _k(["square", "squared"], ["the square of {a}", "{a} times itself"],
                 "return {a} * {a}", "num", lambda x, c: x * x),
    "cube": _k(["cube", "cubed"], ["the cube of {a}", "{a} to the third power"],
               "return {a} ** 3", "num", lambda x, c: x**3),
    "floordiv": _k(["div_{c}", "divide_by_{c}"], ["{a} divided by {c}, rounded down",
                   "the integer quotient of {a} by {c}"],
                   "return {a} // {c}", "num", lambda x, c: x // c, _C),
    "mod": _k(["mod_{c}", "remainder_{c}"], ["the remainder of {a} divided by {c}",
              "{a} modulo {c}"], "return {a} % {c}", "num", lambda x, c: x % c, _C),
    "is_even": _k(["is_even", "even"], ["True if {a} is even, else False",
                  "whether {a} is even"], "return {a} % 2 == 0", "num", lambda x, c: x % 2 == 0),
    "is_odd": _k(["is_odd", "odd"], ["True if {a} is odd, else False", "whether {a} is odd"],
                 "return {a} % 2 == 1", "num", lambda x, c: x % 2 == 1),
    "divisible": _k(["divisible_by_{c}", "is_multiple_of_{c}"],
                    ["whether {a} is divisible by {c}", "True if {c} divides {a}"],
                    "return {a} % {c} == 0", "num", lambda x, c: x % c == 0, _C),
    "absolute": _k(["absolute", "magnitude"], ["the absolute value of {a}",
                   "{a} without its sign"],
                   "if {a} < 0:\n    return -{a}\nreturn {a}", "num", lambda x, c: abs(x)),
    "sign": _k(["sign", "signum"], ["1 if {a} is positive, -1 if it is negative and 0 if it "
               "is zero", "the sign of {a} as 1, -1 or 0"],
               "if {a} > 0:\n    return 1\nif {a} < 0:\n    return -1\nreturn 0", "num",
               lambda x, c: (x > 0) - (x < 0)),
    "greater": _k(["exceeds_{c}", "greater_than_{c}"], ["whether {a} is greater than {c}",
                  "True if {a} exceeds {c}"], "return {a} > {c}", "num", lambda x, c: x > c, _C),
    "clamp": _k(["clamp_{c}", "limit_{c}"], ["{a} clamped to the range from -{c} to {c}",
                "{a} limited to at least -{c} and at most {c}"],
                "return max(-{c}, min({c}, {a}))", "num", lambda x, c: max(-c, min(c, x)), _C),
    "factorial": _k(["factorial", "fact"], ["the factorial of {a}",
                    "the product of the numbers from 1 to {a}"],
                    "result = 1\nfor i in range(2, {a} + 1):\n    result *= i\nreturn result",
                    "num", lambda x, c: _factorial(x), span=(0, 7)),
    "sum_to": _k(["sum_to", "triangle"], ["the sum of the numbers from 1 to {a}",
                 "1 + 2 + ... + {a}"],
                 "total = 0\nfor i in range(1, {a} + 1):\n    total += i\nreturn total", "num",
                 lambda x, c: x * (x + 1) // 2 if x > 0 else 0),
    # two numbers
    "add2": _k(["add", "total"], ["the sum of {a} and {b}", "{a} plus {b}"],
               "return {a} + {b}", "pair", lambda x, y, c: x + y),
    "sub2": _k(["difference", "subtract"], ["{a} minus {b}", "the difference {a} - {b}"],
               "return {a} - {b}", "pair", lambda x, y, c: x - y),
    "mul2": _k(["product", "multiply"], ["the product of {a} and {b}", "{a} times {b}"],
               "return {a} * {b}", "pair", lambda x, y, c: x * y),
    "max2": _k(["larger", "maximum"], ["the larger of {a} and {b}", "the maximum of {a} and {b}"],
               "if {a} > {b}:\n    return {a}\nreturn {b}", "pair", lambda x, y, c: max(x, y)),
    "min2": _k(["smaller", "minimum"], ["the smaller of {a} and {b}",
               "the minimum of {a} and {b}"],
               "if {a} < {b}:\n    return {a}\nreturn {b}", "pair", lambda x, y, c: min(x, y)),
    "mean2": _k(["average", "mean"], ["the average of {a} and {b}", "the mean of {a} and {b}"],
                "return ({a} + {b}) / 2", "pair", lambda x, y, c: (x + y) / 2),
    "equal2": _k(["same", "equal"], ["whether {a} equals {b}", "True if {a} and {b} are equal"],
                 "return {a} == {b}", "pair", lambda x, y, c: x == y),
    # lists of numbers
    "sum": _k(["sum_list", "total_of"], ["the sum of the numbers in {a}",
              "the total of {a}"],
              "total = 0\nfor x in {a}:\n    total += x\nreturn total", "list",
              lambda xs, c: sum(xs)),
    "max": _k(["largest", "max_of"], ["the largest number in {a}", "the maximum of {a}"],
              "return max({a})", "list", lambda xs, c: max(xs), nonempty=True),
    "min": _k(["smallest", "min_of"], ["the smallest number in {a}", "the minimum of {a}"],
              "return min({a})", "list", lambda xs, c: min(xs), nonempty=True),
    "length": _k(["length", "count_all"], ["the number of elements in {a}",
                 "how many items {a} holds"], "return len({a})", "list", lambda xs, c: len(xs)),
    "count": _k(["count_{c}", "how_many_{c}"], ["how many times {c} occurs in {a}",
                "the number of elements of {a} equal to {c}"],
                "return {a}.count({c})", "list", lambda xs, c: xs.count(c), _C),
    "count_above": _k(["count_above_{c}", "num_greater_{c}"],
                      ["how many numbers in {a} are greater than {c}",
                       "the count of elements of {a} above {c}"],
                      "count = 0\nfor x in {a}:\n    if x > {c}:\n        count += 1\nreturn count",
                      "list", lambda xs, c: sum(x > c for x in xs), _C),
    "evens": _k(["evens", "keep_even"], ["the even numbers of {a}, in order",
                "a list of the elements of {a} that are even"],
                "return [x for x in {a} if x % 2 == 0]", "list",
                lambda xs, c: [x for x in xs if x % 2 == 0]),
    "above": _k(["above_{c}", "filter_above_{c}"], ["the numbers of {a} greater than {c}",
                "a list of the elements of {a} above {c}"],
                "result = []\nfor x in {a}:\n    if x > {c}:\n        result.append(x)\n"
                "return result", "list", lambda xs, c: [x for x in xs if x > c], _C),
    "add_each": _k(["add_{c}_each", "shift_{c}"], ["{a} with {c} added to every element",
                   "a list of each number of {a} plus {c}"],
                   "return [x + {c} for x in {a}]", "list", lambda xs, c: [x + c for x in xs], _C),
    "scale": _k(["scale_{c}", "times_{c}_each"], ["{a} with every element multiplied by {c}",
                "a list of each number of {a} times {c}"],
                "return [x * {c} for x in {a}]", "list", lambda xs, c: [x * c for x in xs], _C),
    "squares": _k(["squares", "square_all"], ["the squares of the numbers in {a}",
                  "a list of each element of {a} squared"],
                  "return [x * x for x in {a}]", "list", lambda xs, c: [x * x for x in xs]),
    "reverse": _k(["reverse", "backwards"], ["{a} in reverse order", "the elements of {a} "
                  "from last to first"], "return {a}[::-1]", "list", lambda xs, c: xs[::-1]),
    "sorted": _k(["sort_up", "ascending"], ["{a} sorted from smallest to largest",
                 "the elements of {a} in ascending order"],
                 "return sorted({a})", "list", lambda xs, c: sorted(xs)),
    "first": _k(["first", "head"], ["the first element of {a}", "the element at the start "
                "of {a}"], "return {a}[0]", "list", lambda xs, c: xs[0], nonempty=True),
    "contains": _k(["has_{c}", "contains_{c}"], ["whether {c} is in {a}",
                   "True if {a} contains {c}"], "return {c} in {a}", "list",
                   lambda xs, c: c in xs, _C),
    "sum_squares": _k(["sum_squares", "square_sum"], ["the sum of the squares of {a}",
                      "the total of every element of {a} squared"],
                      "total = 0\nfor x in {a}:\n    total += x * x\nreturn total", "list",
                      lambda xs, c: sum(x * x for x in xs)),
    # strings
    "reverse_str": _k(["reverse_text", "mirror"], ["{a} written backwards",
                      "the characters of {a} in reverse order"],
                      "return {a}[::-1]", "str", lambda s, c: s[::-1]),
    "upper": _k(["shout", "to_upper"], ["{a} in upper case", "{a} with every letter "
                "capitalised"], "return {a}.upper()", "str", lambda s, c: s.upper()),
    "repeat": _k(["repeat_{c}", "echo_{c}"], ["{a} repeated {c} times",
                 "{c} copies of {a} joined together"],
                 "return {a} * {c}", "str", lambda s, c: s * c, _C),
}
# fmt: on


def _factorial(n: int) -> int:
    out = 1
    for i in range(2, n + 1):
        out *= i
    return out


def _inputs(kind: Kind, rng: random.Random) -> tuple:
    if kind.args == "num":
        return (rng.randint(*kind.span),)
    if kind.args == "pair":
        return (rng.randint(-20, 20), rng.randint(-20, 20))
    if kind.args == "str":
        return (rng.choice(_WORDS),)
    return ([rng.randint(-9, 9) for _ in range(rng.randint(1 if kind.nonempty else 0, 6))],)


def _example(rng: random.Random) -> CodeExample:
    kind = KINDS[rng.choice(sorted(KINDS))]
    c = rng.choice(kind.consts)
    if kind.args == "pair":
        a, b = rng.choice(_PAIR)
    else:
        a, b = rng.choice({"num": _NUM, "list": _LIST, "str": _STR}[kind.args]), ""
    name = rng.choice(kind.names).format(c=c)
    args = f"{a}, {b}" if b else a
    phrase = rng.choice(kind.phrases).format(a=a, b=b, c=c)
    source = rng.choice(_OPENINGS).format(sig=f"{name}({args})", phrase=phrase)
    body = kind.body.format(a=a, b=b, c=c).replace("\n", "\n    ")
    target = f"def {name}({args}):\n    {body}"
    # Three tests with distinct inputs, and as many distinct expected values as 24 draws give:
    # tests that all expect [] (a filter above 8) or all True would pass a constant function.
    drawn: dict[str, tuple] = {}
    for _ in range(24):
        inputs = _inputs(kind, rng)
        drawn.setdefault(repr(inputs), (inputs, kind.model(*inputs, c)))
    chosen, values = [], set()
    for inputs, expected in drawn.values():
        if repr(expected) not in values:
            values.add(repr(expected))
            chosen.append((inputs, expected))
    chosen += [t for t in drawn.values() if t not in chosen]
    tests = [
        f"assert {name}({', '.join(map(repr, inputs))}) == {expected!r}"
        for inputs, expected in chosen[:3]
    ]
    return CodeExample(source, target, name, "\n".join(tests))


def capacity() -> int:
    """How many distinct descriptions the grammar can write (openings x names x phrasings x
    arguments x constants)."""
    args = {"num": len(_NUM), "pair": len(_PAIR), "list": len(_LIST), "str": len(_STR)}
    return len(_OPENINGS) * sum(
        len(k.names) * len(k.phrases) * len(k.consts) * args[k.args] for k in KINDS.values()
    )


def code_splits(seed: int = 0, n_train: int = 2000, n_val: int = 100, n_test: int = 300) -> Splits:
    """Train / validation / test ``CodeExample`` splits, the same for the same seed.

    Descriptions are unique across all splits (no validation or test function is trained on
    verbatim); the same kind with another name, argument or constant may be in several.

    Args:
        seed: The data seed.
        n_train: Number of training examples.
        n_val: Number of validation examples.
        n_test: Number of test examples.

    Raises:
        DataError: A size below 1, or more than half of ``capacity()`` examples in all.
    """
    for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"built-in task 'code': {key}={value!r} must be a positive integer")
    want = n_train + n_val + n_test
    # Drawing distinct descriptions slows down as they run out: allow at most half of them.
    if want > capacity() // 2:
        raise DataError(
            f"built-in task 'code': {want} examples asked, but the grammar has {capacity()} "
            f"distinct descriptions; ask for at most {capacity() // 2} in all"
        )
    rng = random.Random(f"code|{seed}")
    out: list[CodeExample] = []
    seen: set[str] = set()
    while len(out) < want:
        ex = _example(rng)
        if ex.source not in seen:
            seen.add(ex.source)
            out.append(ex)
    return Splits(out[:n_train], out[n_train : n_train + n_val], out[n_train + n_val :])
