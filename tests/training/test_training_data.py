"""Data: three input formats, the prompt format, packing, bad rows, the eval split."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from training.data import (
    IGNORE_INDEX,
    DataError,
    Example,
    load_examples,
    pack,
    prepare,
    resolve_paths,
    split_examples,
    tokenize,
)
from training.prompts import format_prompt

DOLLY = [
    {"instruction": "What is the capital of Peru?", "context": "", "response": "Lima.", "category": "qa"},
    {"instruction": "What colour is the owl?", "context": "A white owl sat there.", "response": "White."},
]
ALPACA = [
    {"instruction": "Add 2 and 3.", "input": "", "output": "5."},
    {"instruction": "Summarise.", "input": "The fox jumps.", "output": "A fox jumped."},
]
PROMPT_RESPONSE = [{"prompt": "Say hi.", "response": "Hi!"}, {"prompt": "Count to 2.", "response": "1, 2."}]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("rows", "fmt", "expected"), [
    (DOLLY, "dolly", [Example("What is the capital of Peru?", "", "Lima."),
                      Example("What colour is the owl?", "A white owl sat there.", "White.")]),
    (ALPACA, "alpaca", [Example("Add 2 and 3.", "", "5."), Example("Summarise.", "The fox jumps.", "A fox jumped.")]),
    (PROMPT_RESPONSE, "prompt_response", [Example("Say hi.", "", "Hi!"), Example("Count to 2.", "", "1, 2.")]),
])
def test_each_format_is_detected_from_its_columns(tmp_path: Path, rows: list[dict[str, str]], fmt: str,
                                                   expected: list[Example]) -> None:
    loaded = load_examples([write_jsonl(tmp_path / "d.jsonl", rows)])
    assert loaded.data_format == fmt
    assert loaded.examples == expected


def test_a_json_array_file_loads_like_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ALPACA))
    assert load_examples([path]).examples == load_examples([write_jsonl(tmp_path / "d.jsonl", ALPACA)]).examples


def test_a_save_to_disk_directory_loads(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(DOLLY).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA)}).save_to_disk(str(tmp_path / "dd"))
    assert load_examples(resolve_paths(str(tmp_path / "ds"))).data_format == "dolly"
    assert len(load_examples(resolve_paths(str(tmp_path / "dd"))).examples) == 2


def test_unknown_columns_are_an_error_listing_the_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"d\.jsonl: cannot tell the data format.*dolly.*alpaca.*prompt_response"):
        load_examples([path])


def test_prompt_has_context_block_only_when_context_is_present() -> None:
    with_context = format_prompt("Which animal?", "A fox ran.", "A fox.")
    without = format_prompt("Which animal?", "", "A fox.")
    assert with_context == "### Instruction\nWhich animal?\n\n### Context\nA fox ran.\n\n### Answer\nA fox."
    assert without == "### Instruction\nWhich animal?\n\n### Answer\nA fox."


def test_every_tokenized_example_starts_with_bos_and_ends_with_eos(tokenizer: Any) -> None:
    seqs = tokenize([Example("Say hi.", "", "Hi!"), Example("Q", "C", "A")], tokenizer)
    assert all(s[0] == tokenizer.bos_token_id and s[-1] == tokenizer.eos_token_id for s in seqs)
    assert tokenizer.decode(seqs[1], skip_special_tokens=True) == format_prompt("Q", "C", "A")


def test_packing_keeps_every_token_once_in_order() -> None:
    rng = random.Random(0)
    seqs = [[rng.randrange(3, 500) for _ in range(rng.randrange(1, 40))] for _ in range(57)]
    packed = pack(seqs, max_seq_length=32, pad_token_id=0)
    stream = [t for s in seqs for t in s]
    assert all(len(b) == 32 for b in packed.input_ids + packed.attention_mask + packed.labels)
    kept = [t for ids, mask in zip(packed.input_ids, packed.attention_mask, strict=True)
            for t, m in zip(ids, mask, strict=True) if m]
    assert kept == stream
    assert len(packed) == -(-len(stream) // 32)


def test_only_the_last_block_is_padded_and_its_padding_is_not_learned() -> None:
    packed = pack([[5] * 50], max_seq_length=32, pad_token_id=0)
    assert packed.attention_mask[0] == [1] * 32
    assert packed.input_ids[1] == [5] * 18 + [0] * 14
    assert packed.labels[1] == [5] * 18 + [IGNORE_INDEX] * 14


@pytest.mark.parametrize(("bad_row", "problem"), [
    ({"instruction": "Q", "context": ""}, "missing field 'response'"),
    ({"instruction": "Q", "context": "", "response": 42}, "field 'response' must be a string, got int"),
    ({"instruction": "Q", "context": "", "response": "   "}, "empty field 'response'"),
    ({"instruction": ["Q"], "context": "", "response": "A"}, "field 'instruction' must be a string, got list"),
    ('{"instruction": "Q", "response": ', "not valid JSON"),
])
def test_a_bad_row_is_an_error_naming_file_and_row(tmp_path: Path, bad_row: Any, problem: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [*DOLLY, bad_row, *DOLLY])
    with pytest.raises(DataError) as err:
        load_examples([path])
    assert str(err.value).startswith(f"{path}: row 3: {problem}")


def test_skip_bad_rows_keeps_the_good_ones_and_reports_the_count(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    rows = [*DOLLY, {"instruction": "Q"}, "{oops", *DOLLY, {"instruction": "Q", "response": ""}]
    with caplog.at_level(logging.WARNING):
        loaded = load_examples([write_jsonl(tmp_path / "bad.jsonl", rows)], skip_bad_rows=True)
    assert (loaded.rows, loaded.skipped, len(loaded.examples)) == (7, 3, 4)
    assert "skipped 3 bad row(s) of 7" in caplog.text


def test_a_file_of_only_bad_rows_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no usable rows"):
        load_examples([write_jsonl(tmp_path / "bad.jsonl", [{"instruction": "Q", "response": ""}])],
                      skip_bad_rows=True)


def test_eval_split_holds_out_whole_examples_reproducibly() -> None:
    examples = [Example(f"q{i}", "", f"a{i}") for i in range(100)]
    train, held = split_examples(examples, 0.1, seed=7)
    assert len(held) == 10 and len(train) == 90
    assert not set(train) & set(held)
    assert split_examples(examples, 0.1, seed=7) == (train, held)


def test_prepare_gives_fixed_length_train_and_eval_datasets(dolly_path: Path, tokenizer: Any) -> None:
    data = prepare(str(dolly_path), tokenizer, max_seq_length=64, eval_fraction=0.1, seed=0)
    assert set(data.train.column_names) == {"input_ids", "attention_mask", "labels"}
    assert {len(ids) for ids in [*data.train["input_ids"], *data.eval["input_ids"]]} == {64}
    assert sum(map(sum, data.train["attention_mask"])) == data.train_tokens
    assert (data.loaded.rows, data.loaded.data_format) == (300, "dolly")
