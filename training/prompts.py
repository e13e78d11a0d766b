"""The prompt format, shared by training data and generation.

Training and inference must build the prompt the same way, or the model is asked
questions in a shape it never saw; so both go through `format_prompt` and
`encode_prompt` here and nowhere else.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION_HEADER = "### Instruction"
CONTEXT_HEADER = "### Context"
ANSWER_HEADER = "### Answer"


def format_prompt(instruction: str, context: str = "", response: str | None = None) -> str:
    """The text of one example; without `response` it ends where the model should start answering.

    The context block is left out when the context is empty.
    """
    parts = [f"{INSTRUCTION_HEADER}\n{instruction.strip()}"]
    if context.strip():
        parts.append(f"{CONTEXT_HEADER}\n{context.strip()}")
    parts.append(f"{ANSWER_HEADER}\n")
    text = "\n\n".join(parts)
    if response is not None:
        text += response.strip()
    return text


def encode_prompts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text with the model's BOS in front (if it has one) and no other special tokens.

    Tokenizers disagree on whether they add BOS themselves (Llama 3 does, the tiny
    test tokenizer does not); adding it here makes both behave the same.
    """
    batch: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return [[*bos, *ids] for ids in batch]


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    return encode_prompts(tokenizer, [text])[0]
