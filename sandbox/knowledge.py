"""What the sandbox models know: arithmetic, and a small table of simple facts.

`lookup(question)` returns a `Known` (the short answer, a sentence around it, and plausible wrong
answers a model might give instead) or None. Arithmetic comes first: every expression of numbers
with `+ - * / ×  ÷` (word forms `plus`, `minus`, `times`, `multiplied by`, `divided by` too),
parentheses and the usual precedence, `square root of N` and `N squared`. Then `FACTS`: a question
matches a fact when it contains every one of the fact's keys (lower-case substrings).

Numbers are written the way a person would: `714`, `2.5`, `0.333333` (at most 6 decimals).
Dividing by zero has the answer `undefined`.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Known:
    """A question's answer: `sentence` holds `{answer}`, `wrong` are plausible mistakes."""

    answer: str
    sentence: str
    wrong: tuple[str, ...]

    def say(self, answer: str | None = None) -> str:
        """The sentence with `answer` (default: the right one) in it."""
        text = self.answer if answer is None else answer
        if "{answer}" in self.sentence:
            return self.sentence.format(answer=text)
        # Several expressions: one slot each (`{0}`, `{1}`), the answers joined by ", ".
        return self.sentence.format(*text.split(", "))


@dataclass(frozen=True, slots=True)
class Fact:
    """One row of the fact table."""

    keys: tuple[str, ...]
    answer: str
    sentence: str
    wrong: tuple[str, ...]


def _fact(keys: str, answer: str, sentence: str, *wrong: str) -> Fact:
    return Fact(tuple(keys.split("|")), answer, sentence, wrong)


FACTS: tuple[Fact, ...] = (
    _fact("capital|france", "Paris", "The capital of France is {answer}.", "Lyon", "Marseille"),
    _fact("capital|australia", "Canberra", "The capital of Australia is {answer}.", "Sydney", "Melbourne"),
    _fact("capital|japan", "Tokyo", "The capital of Japan is {answer}.", "Kyoto", "Osaka"),
    _fact("capital|canada", "Ottawa", "The capital of Canada is {answer}.", "Toronto", "Montreal"),
    _fact("capital|germany", "Berlin", "The capital of Germany is {answer}.", "Munich", "Bonn"),
    _fact("capital|italy", "Rome", "The capital of Italy is {answer}.", "Milan", "Florence"),
    _fact("capital|spain", "Madrid", "The capital of Spain is {answer}.", "Barcelona", "Seville"),
    _fact("capital|brazil", "Brasília", "The capital of Brazil is {answer}.", "Rio de Janeiro", "São Paulo"),
    _fact("capital|egypt", "Cairo", "The capital of Egypt is {answer}.", "Alexandria", "Giza"),
    _fact("continents", "7", "There are {answer} continents.", "6", "5"),
    _fact("gas|plants", "carbon dioxide", "Plants absorb {answer} from the air.", "oxygen", "nitrogen"),
    _fact("mona lisa", "Leonardo da Vinci", "The Mona Lisa was painted by {answer}.",
          "Michelangelo", "Raphael"),
    _fact("largest planet", "Jupiter", "{answer} is the largest planet in the solar system.",
          "Saturn", "Neptune"),
    _fact("red planet", "Mars", "{answer} is known as the red planet.", "Venus", "Mercury"),
    _fact("symbol|gold", "Au", "The chemical symbol for gold is {answer}.", "Ag", "Gd"),
    _fact("symbol|silver", "Ag", "The chemical symbol for silver is {answer}.", "Au", "Si"),
    _fact("symbol|iron", "Fe", "The chemical symbol for iron is {answer}.", "Ir", "In"),
    _fact("formula|water", "H2O", "The chemical formula of water is {answer}.", "H2O2", "HO2"),
    _fact("legs|spider", "8", "A spider has {answer} legs.", "6", "10"),
    _fact("legs|insect", "6", "An insect has {answer} legs.", "8", "4"),
    _fact("sides|hexagon", "6", "A hexagon has {answer} sides.", "8", "5"),
    _fact("boiling|water", "100 °C", "At sea level, water boils at {answer}.", "90 °C", "120 °C"),
    _fact("freez|water", "0 °C", "Water freezes at {answer}.", "-10 °C", "4 °C"),
    _fact("pride and prejudice", "Jane Austen", "Pride and Prejudice was written by {answer}.",
          "Charlotte Brontë", "Emily Brontë"),
    _fact("romeo and juliet", "William Shakespeare", "Romeo and Juliet was written by {answer}.",
          "Christopher Marlowe", "Ben Jonson"),
    _fact("1984", "George Orwell", "1984 was written by {answer}.", "Aldous Huxley", "Ray Bradbury"),
    _fact("http|stand", "HyperText Transfer Protocol", "HTTP stands for {answer}.",
          "HyperText Transport Protocol", "High Transfer Text Protocol"),
    _fact("sky|blue", "Rayleigh scattering",
          "The sky looks blue because of {answer}.",
          "the oceans' reflection", "ozone in the air"),
    _fact("photosynthesis", "plants turn light, water and carbon dioxide into sugar and oxygen",
          "Photosynthesis is how {answer}.", "plants turn oxygen into carbon dioxide at night"),
    _fact("prime|than ten", "11, 13 and 17", "Three prime numbers greater than ten are {answer}.",
          "11, 15 and 17", "12, 13 and 17"),
    _fact("synonym|quick", "fast", "A synonym for quick is {answer}.", "quiet", "slow"),
    _fact("good morning|spanish", "buenos días", "Good morning in Spanish is {answer}.",
          "buenas noches", "buenas tardes"),
    _fact("parquet", "a columnar file format",
          "A Parquet file is {answer} for analytics data.",
          "a spreadsheet format", "a plain-text log format"),
    _fact("tallest mountain", "Mount Everest", "The tallest mountain on Earth is {answer}.",
          "K2", "Kangchenjunga"),
    _fact("largest ocean", "the Pacific Ocean", "The largest ocean is {answer}.", "the Atlantic Ocean"),
    _fact("longest river", "the Nile", "The longest river is usually given as {answer}.", "the Amazon"),
    _fact("largest mammal", "the blue whale", "The largest mammal is {answer}.", "the African elephant"),
    _fact("penicillin", "Alexander Fleming", "Penicillin was discovered by {answer}.", "Louis Pasteur"),
    _fact("moon|first", "Neil Armstrong", "The first person to walk on the Moon was {answer}.",
          "Buzz Aldrin"),
    _fact("speed of light", "about 299,792 km/s", "The speed of light in a vacuum is {answer}.",
          "about 150,000 km/s"),
    _fact("laws of thermodynamics",
          "energy is conserved; the entropy of an isolated system never decreases; absolute zero "
          "cannot be reached", "The three laws of thermodynamics: {answer}.",
          "energy can be created; entropy always decreases; absolute zero is easy to reach"),
    _fact("hours|day", "24", "A day has {answer} hours.", "12", "20"),
    _fact("days|leap year", "366", "A leap year has {answer} days.", "365", "364"),
    _fact("days|year", "365", "A year has {answer} days.", "366", "360"),
)  # fmt: skip


def _index(facts: tuple[Fact, ...]) -> dict[str, tuple[int, ...]]:
    """Fact positions by each word of their keys: a lookup checks only facts sharing a word."""
    index: dict[str, list[int]] = {}
    for position, fact in enumerate(facts):
        for word in {w for key in fact.keys for w in _WORD_RE.findall(key)}:
            index.setdefault(word, []).append(position)
    return {word: tuple(positions) for word, positions in index.items()}


_WORD_RE = re.compile(r"[a-z0-9]+")
_BY_WORD = _index(FACTS)

_WORD_OPERATORS = (
    (re.compile(r"\bmultiplied by\b|\btimes\b|×"), "*"),
    (re.compile(r"\bdivided by\b|÷"), "/"),
    (re.compile(r"\bplus\b"), "+"),
    (re.compile(r"\bminus\b"), "-"),
)
_NUMBER = r"\d+(?:\.\d+)?"
_EXPRESSION_RE = re.compile(rf"[-(]*\s*{_NUMBER}(?:\s*[)]*\s*[-+*/]\s*[(]*\s*-?{_NUMBER}\s*[)]*)+")
_SQRT_RE = re.compile(rf"square root of\s*({_NUMBER})")
_SQUARED_RE = re.compile(rf"({_NUMBER})\s*squared")
_OPERATOR_MARK_RE = re.compile(r"[-+*/×÷]|plus|minus|times|by|squared|root")
_BINARY = {
    ast.Add: float.__add__,
    ast.Sub: float.__sub__,
    ast.Mult: float.__mul__,
    ast.Div: float.__truediv__,
}


def format_number(value: float) -> str:
    """A number as a person writes it: no `.0` on integers, at most 6 decimals."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def normalise_operators(text: str) -> str:
    """`text` (lower case) with word operators replaced by symbols."""
    for pattern, symbol in _WORD_OPERATORS:
        text = pattern.sub(f" {symbol} ", text)
    return text


def _evaluate(node: ast.AST) -> float:
    """The value of a parsed arithmetic expression (numbers, + - * /, unary minus)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def _tidy(expression: str) -> str:
    """An expression with one space around each binary operator: `42 * 17`."""
    text = re.sub(r"\s+", "", expression)
    text = re.sub(r"(?<=[\d)])([-+*/])", r" \1 ", text)
    return text


def arithmetic(question: str) -> Known | None:
    """The answer to the arithmetic in `question`, or None when it has none."""
    lowered = question.lower()
    if _OPERATOR_MARK_RE.search(lowered) is None:
        return None
    text = normalise_operators(lowered)
    parts: list[tuple[str, float | None]] = []
    for match in _SQRT_RE.finditer(text):
        parts.append((f"√{match.group(1)}", math.sqrt(float(match.group(1)))))
    for match in _SQUARED_RE.finditer(text):
        parts.append((f"{match.group(1)}²", float(match.group(1)) ** 2))
    for match in _EXPRESSION_RE.finditer(text):
        expression = _tidy(match.group(0).strip())
        try:
            parts.append((expression, _evaluate(ast.parse(expression.replace("−", "-"), mode="eval"))))
        except ZeroDivisionError:
            parts.append((expression, None))
        except (SyntaxError, ValueError, RecursionError):
            continue
    if not parts:
        return None
    return _arithmetic_known(parts)


def _arithmetic_known(parts: list[tuple[str, float | None]]) -> Known:
    """One Known for one or more evaluated expressions."""
    answers = [format_number(v) if v is not None else "undefined" for _, v in parts]
    if len(parts) == 1 and parts[0][1] is None:
        return Known("undefined", f"{parts[0][0]} is {{answer}}.", ("0", "infinity"))
    sentence = " and ".join(f"{expr} = {{{i}}}" for i, (expr, _) in enumerate(parts)) + "."
    joined = ", ".join(answers)
    wrong = tuple(", ".join(_off_by(answers, k)) for k in range(3))
    return Known(joined, sentence, wrong)


def _off_by(answers: list[str], k: int) -> list[str]:
    """The answers with the last one wrong by a plausible slip (10, 1 or a tenth too far)."""
    *head, last = answers
    try:
        value = float(last)
    except ValueError:
        return [*head, "0"]
    slip = (10, -1, 1)[k] if value == int(value) else (1, -0.1, 0.1)[k]
    return [*head, format_number(value + slip)]


@lru_cache(maxsize=4096)
def lookup(question: str) -> Known | None:
    """What the models know about `question`: arithmetic first, then the fact table."""
    known = arithmetic(question)
    if known is not None:
        return known
    lowered = question.lower()
    candidates = {p for word in _WORD_RE.findall(lowered) for p in _BY_WORD.get(word, ())}
    # In table order, so a more specific fact listed first wins (leap year before year).
    for position in sorted(candidates):
        fact = FACTS[position]
        if all(key in lowered for key in fact.keys):
            return Known(fact.answer, fact.sentence, fact.wrong)
    return None
