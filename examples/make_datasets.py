"""Write the small Parquet datasets the examples read (already committed; rerun to regenerate)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent

TASKS = [
    "Write a Python function fizzbuzz(n) that returns the FizzBuzz sequence up to n.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Write a Python function that merges two sorted lists into one sorted list.",
    "Write a Python function that counts word frequencies in a text.",
]
QUESTIONS = [
    ("What is the capital of Australia?", "Canberra"),
    ("How many continents are there?", "7"),
    ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the largest planet in the solar system?", "Jupiter"),
]
# Questions with one short right answer, for the evaluation example's exact match and judge.
EVALUATION = [
    ("What is 42 * 17?", "714"),
    ("What is 1250 / 5?", "250"),
    ("What is 19 + 23?", "42"),
    ("What is 100 - 58?", "42"),
    ("What is 12 * 12?", "144"),
    ("What is 7 + 8 * 2?", "23"),
    ("What is the capital of Australia?", "Canberra"),
    ("How many continents are there?", "7"),
    ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("What is the chemical symbol for gold?", "Au"),
]
ARITHMETIC = [
    "What is 42 * 17?",
    "What is 1250 / 5?",
    "What is 19 + 23 and 100 - 58?",
    "What is 7 / 0?",
]


def main() -> None:
    """Write every example's prompts.parquet."""
    _write(HERE / "code_review" / "prompts.parquet", {"task": TASKS})
    _write(
        HERE / "model_comparison" / "prompts.parquet",
        {"question": [q for q, _ in QUESTIONS], "reference": [a for _, a in QUESTIONS]},
    )
    _write(HERE / "runner_tools" / "prompts.parquet", {"question": ARITHMETIC})
    write_evaluation_dataset(HERE / "evaluation" / "prompts.parquet")


def write_evaluation_dataset(path: Path) -> Path:
    """The evaluation example's questions with their reference answers."""
    _write(path, {"question": [q for q, _ in EVALUATION], "reference": [a for _, a in EVALUATION]})
    return path


def _write(path: Path, columns: dict[str, list[str]]) -> None:
    count = len(next(iter(columns.values())))
    table = pa.table({"id": [f"{path.parent.name}-{i:03d}" for i in range(count)], **columns})
    pq.write_table(table, path)


if __name__ == "__main__":
    main()
