"""RankFile: a torch.save rank file is read through its one-time index, bit for bit as torch.load reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.shards_layout import RankFile


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"a.weight": torch.randn(64, 32).to(torch.bfloat16), "b.bias": torch.randn(7),
            "c.scalar": torch.tensor(3, dtype=torch.int64), "d.mask": torch.rand(5) > 0.5}


def test_indexed_read_equals_torch_load(tmp_path: Path) -> None:
    torch.save(_state(), tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    assert rank._index is not None
    for name, want in torch.load(tmp_path / "r.pt", weights_only=True).items():
        assert rank.shape(name) == (tuple(want.shape), want.dtype)
        assert torch.equal(rank[name], want), name  # read after read: the scratch buffer is reused


def test_slices_of_one_storage_are_read_at_their_offset(tmp_path: Path) -> None:
    whole = torch.arange(100, dtype=torch.float32)
    torch.save({"first": whole[:40], "second": whole[40:]}, tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    assert rank._index is not None
    assert torch.equal(rank["second"], whole[40:])


def test_strided_view_falls_back_to_torch_load(tmp_path: Path) -> None:
    t = torch.randn(8, 4)
    torch.save({"t": t.T}, tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    assert rank._index is None
    assert torch.equal(rank["t"], t.T)


def test_a_read_above_the_scratch_size_gets_its_own_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("training.shards_layout.SCRATCH_BYTES", 64)
    torch.save(_state(), tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    big, small = rank["a.weight"], rank["b.bias"]  # 4 KB then 28 bytes: the big one is not overwritten
    assert torch.equal(big, _state()["a.weight"]) and torch.equal(small, _state()["b.bias"])


def test_file_ranges_copy_without_copy_file_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel or filesystem refuses copy_file_range, the bytes go through user space instead."""
    from safetensors.torch import load_file

    from training.shards_io import SafetensorsStream

    def refuse(*_: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("os.copy_file_range", refuse)
    torch.save(_state(), tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    want = _state()["a.weight"]
    stream = SafetensorsStream(tmp_path / "out.safetensors", [("a", (64, 32), torch.bfloat16)])
    stream.append_parts("a", iter([rank.range("a.weight", (0, 10)), rank.range("a.weight", (10, 64))]))
    stream.close()
    assert torch.equal(load_file(tmp_path / "out.safetensors")["a"], want)
