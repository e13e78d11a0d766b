"""Instruction data: load, validate, format, tokenize, pack, split.

Accepts a JSON file (a list of objects), a JSONL file, or a directory written by
`datasets.Dataset.save_to_disk`, in one of three shapes told apart by their
columns:

    dolly            instruction / context / response
    alpaca           instruction / input / output
    prompt_response  prompt / response

Every example becomes `format_prompt(...)` + EOS; the token streams are
concatenated and cut into blocks of exactly `max_seq_length` tokens, so every
step has the same shape (which Neuron needs to avoid recompiling) and no
padding is wasted. Only the last block is padded, and its padding is masked out
of the loss.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.prompts import encode_prompts, format_prompt

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

# format name -> (instruction column, context column, response column)
FORMATS: dict[str, tuple[str, str, str]] = {
    "dolly": ("instruction", "context", "response"),
    "alpaca": ("instruction", "input", "output"),
    "prompt_response": ("prompt", "", "response"),
}


class DataError(UserError, ValueError):
    """A data file that cannot be used, with the file (and row) to look at."""


@dataclass(frozen=True)
class Example:
    instruction: str
    context: str
    response: str

    def text(self) -> str:
        return format_prompt(self.instruction, self.context, self.response)


@dataclass(frozen=True)
class LoadedData:
    examples: list[Example]
    data_format: str
    rows: int
    skipped: int


@dataclass(frozen=True)
class PackedData:
    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    labels: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    def as_columns(self) -> dict[str, list[list[int]]]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "labels": self.labels}


def detect_format(columns: Iterable[str], source: str) -> str:
    """The format whose columns are all present (the context column is optional)."""
    cols = set(columns)
    for name, (instruction, _context, response) in FORMATS.items():
        if instruction in cols and response in cols:
            return name
    expected = "; ".join(f"{n}: {', '.join(c for c in cols_ if c)}" for n, cols_ in FORMATS.items())
    raise DataError(f"{source}: cannot tell the data format from columns {sorted(cols)}; expected one of {expected}")


class _BadRow(ValueError):
    """A row that could not even be parsed."""


def _iter_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based row number, row) for every row; a row that is not valid JSON is yielded as a _BadRow."""
    if path.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise DataError(f"{path}: a DatasetDict without a 'train' split (splits: {sorted(ds)})")
            ds = ds["train"]
        for i, row in enumerate(ds, start=1):
            yield i, row
    elif path.suffix == ".jsonl":
        with path.open() as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as e:
                    yield i, _BadRow(f"not valid JSON ({e.msg})")
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(rows, list):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        yield from enumerate(rows, start=1)
    else:
        raise _not_a_data_file(path)


def _field(row: dict[str, Any], name: str, required: bool) -> str:
    if name not in row or row[name] is None:
        if required:
            raise ValueError(f"missing field '{name}'")
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise ValueError(f"field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"empty field '{name}'")
    return value


def _example(row: Any, data_format: str) -> Example:
    if not isinstance(row, dict):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    instruction, context, response = FORMATS[data_format]
    return Example(
        instruction=_field(row, instruction, required=True),
        context=_field(row, context, required=False) if context else "",
        response=_field(row, response, required=True),
    )


def load_examples(paths: list[Path], skip_bad_rows: bool = False) -> LoadedData:
    """Read and validate every row; a bad row raises naming file and row unless `skip_bad_rows`."""
    examples: list[Example] = []
    rows = skipped = 0
    formats: set[str] = set()
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        data_format: str | None = None
        for i, row in _iter_rows(path):
            rows += 1
            try:
                if isinstance(row, _BadRow):
                    raise row
                if data_format is None and isinstance(row, dict):
                    data_format = detect_format(row.keys(), str(path))
                    formats.add(data_format)
                examples.append(_example(row, data_format or "dolly"))
            except DataError:
                raise
            except ValueError as e:
                if not skip_bad_rows:
                    raise DataError(f"{path}: row {i}: {e}") from None
                skipped += 1
    if skipped:
        logger.warning("skipped %d bad row(s) of %d", skipped, rows)
    if not examples:
        raise DataError(f"{', '.join(map(str, paths))}: no usable rows")
    return LoadedData(examples, "+".join(sorted(formats)), rows, skipped)


DATA_FILE_SUFFIXES = (".json", ".jsonl")


def _not_a_data_file(path: Path) -> DataError:
    return DataError(f"{path}: expected a .json or .jsonl file or a save_to_disk directory")


def data_sources(dataset_path: str) -> list[Path]:
    """The files (or save_to_disk directory) `dataset_path` names, judged by name and kind alone, nothing read:
    what finetune checks as it parses its flags, so a wrong file fails before the model and tokenizer load."""
    paths = resolve_paths(dataset_path)
    for path in paths:
        if not path.is_dir() and path.suffix not in DATA_FILE_SUFFIXES:
            raise _not_a_data_file(path)
    return paths


def resolve_paths(dataset_path: str) -> list[Path]:
    """A file, a save_to_disk directory, or a directory of .json/.jsonl files."""
    path = Path(dataset_path)
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_FILE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: a directory with neither save_to_disk data nor .json/.jsonl files")
        return files
    return [path]


def tokenize(examples: list[Example], tokenizer: Any, chunk: int = 1000) -> list[list[int]]:
    """BOS + formatted example + EOS, per example (batched; a progress bar on the first rank)."""
    from tqdm.auto import tqdm

    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token; the model could never learn to stop")
    out: list[list[int]] = []
    quiet = os.environ.get("RANK", "0") != "0" or len(examples) <= chunk
    for start in tqdm(range(0, len(examples), chunk), desc="tokenizing", unit="chunk", disable=quiet):
        texts = [ex.text() for ex in examples[start : start + chunk]]
        out += [[*ids, tokenizer.eos_token_id] for ids in encode_prompts(tokenizer, texts)]
    return out


def pack(sequences: list[list[int]], max_seq_length: int, pad_token_id: int) -> PackedData:
    """Concatenate all sequences and cut the stream into blocks of `max_seq_length` tokens.

    Every token lands in exactly one block; the last block is padded, and its padding
    has attention 0 and label IGNORE_INDEX.
    """
    stream = [tok for seq in sequences for tok in seq]
    input_ids, attention_mask, labels = [], [], []
    for start in range(0, len(stream), max_seq_length):
        block = stream[start : start + max_seq_length]
        pad = max_seq_length - len(block)
        input_ids.append(block + [pad_token_id] * pad)
        attention_mask.append([1] * len(block) + [0] * pad)
        labels.append(block + [IGNORE_INDEX] * pad)
    return PackedData(input_ids, attention_mask, labels)


def split_indices(count: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) positions of `count` examples, both ascending; the same for the same arguments."""
    if eval_fraction <= 0:
        return list(range(count)), []
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(count * eval_fraction))
    if n_eval >= count:
        raise DataError(f"eval_fraction={eval_fraction} leaves no training examples out of {count}")
    held = set(order[:n_eval])
    return [i for i in range(count) if i not in held], sorted(held)


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out whole examples (not blocks), so no eval text leaks into training."""
    train, held = split_indices(len(examples), eval_fraction, seed)
    return [examples[i] for i in train], [examples[i] for i in held]


HELDOUT_FILE = "heldout.json"


@dataclass(frozen=True)
class HeldOut:
    """The held-out split as training set it aside, written into the run so evaluation uses exactly it.

    `indices` are positions among the usable examples in file order (bad rows skipped).
    On trn1 nothing evaluates during training (optimum-neuron 0.4.5), so this file is
    what keeps the split out of training and known afterwards.
    """

    examples: list[Example]
    indices: list[int]
    dataset_path: str
    eval_fraction: float
    seed: int
    max_seq_length: int

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_path": self.dataset_path, "eval_fraction": self.eval_fraction, "seed": self.seed,
            "max_seq_length": self.max_seq_length,
            "examples": [{"index": i, "instruction": ex.instruction, "context": ex.context, "response": ex.response}
                         for i, ex in zip(self.indices, self.examples, strict=True)],
        }


def write_heldout(path: Path, heldout: HeldOut) -> Path:
    from training.fsio import write_json_atomic

    return write_json_atomic(path, heldout.to_json())


def read_heldout(path: Path) -> HeldOut:
    """The split written by training; a missing or damaged file is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: no held-out split; train with --eval_fraction > 0 (EVAL_FRACTION) to set one aside")
    try:
        data = json.loads(path.read_text())
        rows = data["examples"]
        return HeldOut(
            examples=[Example(str(r["instruction"]), str(r.get("context", "")), str(r["response"])) for r in rows],
            indices=[int(r["index"]) for r in rows],
            dataset_path=str(data["dataset_path"]), eval_fraction=float(data["eval_fraction"]),
            seed=int(data["seed"]), max_seq_length=int(data["max_seq_length"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a held-out split written by training.finetune ({type(e).__name__}: {e})") from None


@dataclass(frozen=True)
class PreparedData:
    train: Any  # datasets.Dataset
    eval: Any | None  # datasets.Dataset
    loaded: LoadedData
    train_tokens: int
    heldout: HeldOut


def prepare(
    dataset_path: str,
    tokenizer: Any,
    max_seq_length: int,
    eval_fraction: float = 0.05,
    seed: int = 42,
    skip_bad_rows: bool = False,
) -> PreparedData:
    """From files to packed train/eval `datasets.Dataset`s with input_ids, attention_mask and labels."""
    import datasets

    loaded = load_examples(resolve_paths(dataset_path), skip_bad_rows=skip_bad_rows)
    train_idx, eval_idx = split_indices(len(loaded.examples), eval_fraction, seed)
    train_ex, eval_ex = [loaded.examples[i] for i in train_idx], [loaded.examples[i] for i in eval_idx]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_seqs = tokenize(train_ex, tokenizer)
    train_packed = pack(train_seqs, max_seq_length, pad_id)
    eval_ds = None
    if eval_ex:
        eval_ds = datasets.Dataset.from_dict(pack(tokenize(eval_ex, tokenizer), max_seq_length, pad_id).as_columns())
    logger.info(
        "data: %d rows (%s), %d skipped, %d train examples -> %d blocks of %d tokens, %d eval examples",
        loaded.rows, loaded.data_format, loaded.skipped, len(train_ex), len(train_packed), max_seq_length,
        len(eval_ex),
    )
    return PreparedData(
        train=datasets.Dataset.from_dict(train_packed.as_columns()),
        eval=eval_ds,
        loaded=loaded,
        train_tokens=sum(len(s) for s in train_seqs),
        heldout=HeldOut(eval_ex, eval_idx, dataset_path, eval_fraction, seed, max_seq_length),
    )
