"""The sandbox models' answers: what they know, how they err, terse mode, decoding controls, tokens."""

from __future__ import annotations

import pytest

from sandbox.answers import CLOSERS, TERSE_RE, Turn, compose
from sandbox.config import DEFAULT_ERROR_RATES, AnswersConfig, SandboxConfig
from sandbox.directives import DirectiveError, parse_directives
from sandbox.knowledge import lookup
from sandbox.responder import canonical_messages, count_prompt_tokens, expected_answer
from sandbox.sampling import stream_pieces
from schemas.wire import ChatMessage, FunctionCall, RequestMessage, ToolCall
from tests.sandbox.support import answer_of, completion_of

MODEL = "openai/gpt-4o-mini"
TERSE = ChatMessage(
    role="system", content="Answer with the answer only (a number, or a few words), no sentence."
)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def answer(messages: list[RequestMessage], model: str = MODEL, **turn: object) -> str:
    """The text answer with no errors unless the turn says otherwise."""
    settings = {"error_rate": 0.0, **turn}
    return compose(model, messages, Turn(**settings), canonical_messages(messages)).text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is 42 * 17?", "42 * 17 = 714."),
        ("What is 7 + 8 * 2?", "7 + 8 * 2 = 23."),
        ("What is (2 + 3) * 4?", "(2 + 3) * 4 = 20."),
        ("What is 10 divided by 4?", "10 / 4 = 2.5."),
        ("What is 19 + 23 and 100 - 58?", "19 + 23 = 42 and 100 - 58 = 42."),
        ("What is the square root of 144?", "√144 = 12."),
        ("What is 5 / 0?", "5 / 0 is undefined."),
        ("What is the capital of Australia?", "The capital of Australia is Canberra."),
        ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
        ("How many days are in a leap year?", "A leap year has 366 days."),
    ],
)
def test_known_questions_are_answered_in_a_sentence(question: str, expected: str) -> None:
    assert answer([user(question)]) == f"{MODEL} answers: {expected}"


def test_terse_instructions_get_the_bare_answer() -> None:
    assert answer([TERSE, user("What is 42 * 17?")]) == "714"
    assert answer([TERSE, user("What gas do plants absorb from the air?")]) == "carbon dioxide"
    assert answer([TERSE, user("Tell me something")]) == "I don't know."
    assert answer([user("What is 6 * 7? Reply with just the answer.")]) == "42"
    assert TERSE_RE.search("Answer in one short sentence.") is None


def test_unknown_prompts_echo_their_start_then_close_with_a_sentence() -> None:
    text = answer([user("Summarise row 1234 please")])
    head, closer = text.split(" — ")
    assert head == f"{MODEL} answers: Summarise row 1234 please"
    assert closer in CLOSERS
    long = answer([user(" ".join(f"w{i}" for i in range(40)) + "?")])
    assert long.split(" — ")[0] == f"{MODEL} answers: " + " ".join(f"w{i}" for i in range(12))
    # The closer depends on the model and the whole conversation.
    closers = {
        answer([user("Summarise row 7")], model).split(" — ")[1]
        for model in ("openai/gpt-4o-mini", "openai/gpt-4o", "google/gemini-2.5-flash", "xai/grok-3")
    }
    assert len(closers) > 1


def test_a_models_errors_are_deterministic_per_model_question_seed_and_choice() -> None:
    questions = [f"What is {a} * {a + 3}?" for a in range(2, 42)]
    wrong = {q for q in questions if answer([user(q)], error_rate=0.3) != answer([user(q)])}
    assert wrong == {q for q in questions if answer([user(q)], error_rate=0.3) != answer([user(q)])}
    assert 4 <= len(wrong) <= 20  # about 30 % of 40
    assert all(answer([user(q)], error_rate=1.0) != answer([user(q)]) for q in questions)
    reseeded = {q for q in questions if answer([user(q)], error_rate=0.3, seed=7) != answer([user(q)])}
    assert reseeded != wrong
    other_choice = {q for q in questions if answer([user(q)], error_rate=0.3, choice=1) != answer([user(q)])}
    assert other_choice != wrong
    # A wrong answer is plausible: the same sentence with a slip in the number.
    assert answer([user("What is 42 * 17?")], error_rate=1.0) in {
        f"{MODEL} answers: 42 * 17 = {v}." for v in (724, 713, 715)
    }
    assert answer([user("What is the capital of Australia?")], error_rate=1.0) in {
        f"{MODEL} answers: The capital of Australia is {city}." for city in ("Sydney", "Melbourne")
    }


def test_error_rates_come_from_the_config_with_per_model_defaults() -> None:
    config = AnswersConfig()
    assert config.rate_for("openai/gpt-4o-mini") == DEFAULT_ERROR_RATES["openai/gpt-4o-mini"]
    assert config.rate_for("xai/grok-3") == 0.1
    tuned = AnswersConfig(error_rate=0.0, error_rates={"anthropic": 0.5, "openai/gpt-4o": 1.0})
    assert (tuned.rate_for("anthropic/claude-3-5-haiku-20241022"), tuned.rate_for("openai/gpt-4o")) == (
        0.5,
        1.0,
    )
    assert tuned.rate_for("openai/gpt-4o-mini") == 0.0
    assert SandboxConfig.from_mapping({"answers": {"error_rate": 0.2}}).answers.rate_for("x/y") == 0.2


def test_expected_answer_applies_the_default_error_rate_like_the_server() -> None:
    messages = [user("What is 12 * 12?")]
    assert expected_answer(MODEL, messages) == answer(messages, error_rate=DEFAULT_ERROR_RATES[MODEL])
    assert expected_answer(MODEL, messages, error_rate=0.0) == f"{MODEL} answers: 12 * 12 = 144."


def test_a_grading_prompt_gets_a_score_and_why() -> None:
    def grade(candidate: str, reference: str = "Canberra") -> str:
        return answer([user(f"Question: Capital?\nReference: {reference}\nCandidate: {candidate}")])

    assert grade("openai/gpt-4o-mini answers: The capital of Australia is Canberra.").endswith(
        "Score: 10/10. The candidate gives the reference answer, Canberra."
    )
    assert "Score: 0/10." in grade("Sydney")
    assert "Score: 5/10." in grade("Leonardo", "Leonardo da Vinci")
    assert "Score: 0/10. The candidate gives no answer." in grade("")
    assert answer([TERSE, user("Reference: 7\nCandidate: 7")]) == "10"


def test_a_review_checks_the_answer_against_what_the_model_knows() -> None:
    right = answer([user("Review this answer to 'What is the capital of France?': It is Paris.")])
    wrong = answer([user("Review this answer to 'What is the capital of France?': It is Lyon.")])
    assert right.endswith("The answer is correct: The capital of France is Paris.")
    assert wrong.endswith("The answer is wrong: The capital of France is Paris.")


def test_tool_results_are_reported_back() -> None:
    call = ToolCall(id="call_1", function=FunctionCall(name="calculator", arguments="{}"))
    messages: list[RequestMessage] = [
        user("What is 42 * 17?"),
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="call_1", content="714"),
    ]
    assert answer(messages) == f"{MODEL} answers: The result is 714."
    two = [*messages, ChatMessage(role="tool", tool_call_id="call_2", content="5")]
    assert answer(two, "m/x") == "m/x answers: The results are 714, 5."
    assert answer([TERSE, *two]) == "714, 5"
    legacy = [user("Weather?"), RequestMessage(role="function", name="weather", content="sunny\n 20 C")]
    assert answer(legacy) == f"{MODEL} answers: The result is sunny 20 C."


def test_max_tokens_stop_n_and_logprobs() -> None:
    messages = [user("What is the capital of Australia?")]
    full = expected_answer(MODEL, messages, error_rate=0.0)
    cut = answer_of(MODEL, messages, max_tokens=4)
    assert (cut.content, cut.finish_reason, cut.completion_tokens) == (
        " ".join(full.split()[:4]),
        "length",
        4,
    )
    stopped = answer_of(MODEL, messages, stop=["Canberra", "zzz"])
    assert (stopped.content, stopped.finish_reason) == (full[: full.index("Canberra")], "stop")
    assert answer_of(MODEL, messages, stop="is", max_tokens=2).finish_reason == "length"
    several = completion_of(MODEL, [user("Summarise row 7")], n=3, seed=1)
    texts = [choice.content for choice in several.choices]
    assert texts[0] == expected_answer(MODEL, [user("Summarise row 7")], seed=1)
    assert len(texts) == 3 and len(set(texts)) > 1
    scored = answer_of(MODEL, messages, logprobs=True, top_logprobs=3)
    assert scored.logprobs is not None
    assert [e["token"] for e in scored.logprobs] == stream_pieces(full)
    assert all(-3 <= e["logprob"] <= 0 and len(e["top_logprobs"]) == 3 for e in scored.logprobs)
    assert all(e["top_logprobs"][0]["token"] == e["token"] for e in scored.logprobs)
    assert answer_of(MODEL, messages, logprobs=True, top_logprobs=3).logprobs == scored.logprobs
    assert answer_of(MODEL, messages).logprobs is None


def test_prompt_tokens_are_words_plus_four_per_message_plus_parts() -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        user("a b c"),
        ChatMessage(role="assistant"),
    ]
    assert count_prompt_tokens(messages) == (2 + 4) + (3 + 4) + (0 + 4)
    parts = RequestMessage.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe these"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-123"}},
            ],
        }
    )
    assert count_prompt_tokens([parts]) == 2 + 4 + 85 + 50 + 100


def test_content_parts_are_answered_like_the_same_text() -> None:
    parts = RequestMessage.model_validate(
        {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "6 * 7?"}]}
    )
    assert answer([parts]) == answer([user("What is\n6 * 7?")]) == f"{MODEL} answers: 6 * 7 = 42."


def test_stream_pieces_concatenate_to_the_content() -> None:
    content = "openai/gpt-4o-mini answers: c b a"
    pieces = stream_pieces(content)
    assert pieces == ["openai/gpt-4o-mini", " answers:", " c", " b", " a"]
    assert "".join(pieces) == content


def test_the_fact_table_matches_whole_questions_not_single_words() -> None:
    assert lookup("How many continents are there?") is not None
    assert lookup("Tell me about continental breakfasts") is None
    assert lookup("What is the capital of Narnia?") is None


def test_directives_are_parsed_from_the_last_user_message() -> None:
    d = parse_directives([user("[[sandbox:status=429]] [[sandbox:retry_after=2.5]] [[sandbox:times=2]]")])
    assert (d.status, d.retry_after, d.times, d.active) == (429, 2.5, 2, True)
    assert parse_directives([user("[[sandbox:hang]]"), user("plain")]).active is False
    flags = parse_directives([user("[[sandbox:drop]][[sandbox:malformed]][[sandbox:stream_cut]]")])
    assert (flags.drop, flags.malformed, flags.stream_cut, flags.hang) == (True, True, True, False)
    # Directives are not part of the question the model answers.
    assert answer([user("What is 2 + 2? [[sandbox:times=1]]")]) == f"{MODEL} answers: 2 + 2 = 4."


@pytest.mark.parametrize("text", ["[[sandbox:explode]]", "[[sandbox:status=abc]]"])
def test_bad_directives_are_errors(text: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives([user(text)])
