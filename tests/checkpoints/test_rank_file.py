"""RankFile: a torch.save rank file is read through its one-time index, bit for bit as torch.load reads it."""

from __future__ import annotations

from pathlib import Path

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
        assert torch.equal(rank[name], want), name


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
