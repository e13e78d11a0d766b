"""Fixtures: a tiny GQA Llama (32 query heads, 8 kv heads), a peft adapter with random A and non-zero B, and a
slow disk under the writer threads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from peft_adapters import make_adapter

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import TinyLlamaSpec, make_tiny_llama

    spec = TinyLlamaSpec(hidden_size=128, intermediate_size=256, num_attention_heads=32, num_key_value_heads=8)
    return make_tiny_llama(tmp_path_factory.mktemp("base"), spec, dtype="float32")


@pytest.fixture(scope="session")
def adapter(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(base_model, tmp_path_factory.mktemp("adapter"))


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write from memory takes 2 ms longer, so the producer runs ahead of the writers as far as the
    buffer pool lets it: a buffer given back before its bytes were written would show as changed bytes."""
    import training.weights.shards_io as shards_io

    write = shards_io._write_all

    def slow_write(dst: object, data: memoryview) -> None:
        time.sleep(0.002)
        write(dst, data)  # type: ignore[arg-type]

    monkeypatch.setattr(shards_io, "_write_all", slow_write)
