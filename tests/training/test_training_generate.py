"""Generation from base model + adapter, in the training prompt format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from training_helpers import Run

from training.data import Example, tokenize
from training.generate import GenerateArguments, main, prompt_ids

CAPITAL_ANSWER = re.compile(r"The capital of [A-Z][a-z]+ is [A-Z][A-Za-z ]+\.")
COLOUR_ANSWER = re.compile(r"The [a-z]+ is [a-z]+\.")


def ask(model: Path, adapter: Path | None, prompt: str, context: str = "") -> str:
    return main(GenerateArguments(model_path=str(model), adapter_path=str(adapter) if adapter else None,
                                  prompt=prompt, context=context, max_new_tokens=24))


def test_the_generation_prompt_is_the_training_prompt_without_the_answer(tokenizer: Any) -> None:
    trained = tokenize([Example("What colour is the fox?", "I saw a red fox.", "The fox is red.")], tokenizer)[0]
    asked = prompt_ids(tokenizer, "What colour is the fox?", "I saw a red fox.")
    assert trained[: len(asked)] == asked
    assert tokenizer.decode(trained[len(asked):], skip_special_tokens=True) == "The fox is red."


# Why the shape assertions hold on any CPU: they check the pattern the run learns (answer shape, then EOS),
# not which city or colour comes out. With the linear lr decay of LEARNABLE_FLAGS, 13 of 13 seeds (each a
# different trajectory, as a CPU with other rounding gives) answered both prompts in shape; with a constant
# lr only 4 of 8 did, which is why these tests used to pass on one machine and fail on another.
def test_base_plus_adapter_answers_in_the_trained_shape(lora_run: Run, tiny_model: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    answer = ask(tiny_model, lora_run.output_dir, "What is the capital of Japan?")
    assert CAPITAL_ANSWER.fullmatch(answer), answer
    assert capsys.readouterr().out.strip() == answer  # the CLI prints the answer


def test_context_reaches_the_model(lora_run: Run, tiny_model: Path) -> None:
    answer = ask(tiny_model, lora_run.output_dir, "What colour is the animal in the text?",
                 "I saw a green owl in the garden today.")
    assert COLOUR_ANSWER.fullmatch(answer), answer


def test_the_base_model_alone_has_not_learned_it(tiny_model: Path) -> None:
    answer = ask(tiny_model, None, "What is the capital of Japan?")
    assert not CAPITAL_ANSWER.fullmatch(answer)
