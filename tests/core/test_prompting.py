"""Prompts that restate a question: filled, placed after the conversation, cut to fit."""

from ponder.core.prompting import ELIDED, Numbered, Prompt, render_prompts
from tests.scripted import ScriptedEngine

TEMPLATE = "Q: {question}\n{choices}\nA: {answer}"


def test_a_prompt_fills_its_fields_and_numbers_its_quoted_texts() -> None:
    prompt = Prompt(
        TEMPLATE, {"question": "2 + 3?"}, {"choices": Numbered("Choice", ("4", "5")), "answer": "5"}
    )
    assert prompt.texts() == ["4", "5", "5"]
    assert prompt.message(prompt.texts()) == {
        "role": "user",
        "content": "Q: 2 + 3?\nChoice 1:\n4\n\nChoice 2:\n5\nA: 5",
    }


async def test_prompts_follow_the_head_and_cut_the_longest_quote_from_its_start() -> None:
    engine = ScriptedEngine(max_model_len=120)
    head = [{"role": "system", "content": "Be brief."}]
    long = "x" * 100 + "END"
    prompt = Prompt(
        TEMPLATE, {"question": "q"}, {"choices": Numbered("Choice", ("a", long)), "answer": "b"}
    )
    (ids,) = await render_prompts(engine, [prompt], 20, head=head)
    assert len(ids) <= 100
    text = engine.decode(ids)
    assert text.startswith("<system>Be brief.\n<user>Q: q\nChoice 1:\na\n\nChoice 2:\n" + ELIDED)
    assert "END\nA: b" in text
