"""RankFile: a torch.save rank file is indexed once and read without torch, bit for bit as torch.load reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.weights.shards_io import dtype_code, torch_dtype
from training.weights.shards_layout import CheckpointError, RankFile


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"a.weight": torch.randn(64, 32).to(torch.bfloat16), "b.bias": torch.randn(7),
            "c.scalar": torch.tensor(3, dtype=torch.int64), "d.mask": torch.rand(5) > 0.5}


def _read(rank: RankFile, name: str) -> torch.Tensor:
    shape, dtype = rank.shape(name)
    rows = rank.rows(name, 0, shape[0] if shape else 1)
    return torch.frombuffer(bytearray(rows.tobytes()), dtype=torch_dtype(dtype)).reshape(shape)


def test_every_tensor_reads_as_torch_load_reads_it(tmp_path: Path) -> None:
    torch.save(_state(), tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    for name, want in torch.load(tmp_path / "r.pt", weights_only=True).items():
        assert rank.shape(name) == (tuple(want.shape), dtype_code(want.dtype))
        assert torch.equal(_read(rank, name), want), name


def test_slices_of_one_storage_are_read_at_their_offset(tmp_path: Path) -> None:
    whole = torch.arange(100, dtype=torch.float32)
    torch.save({"first": whole[:40], "second": whole[40:]}, tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    assert torch.equal(_read(rank, "second"), whole[40:])


def test_a_strided_view_is_read_through_memory_not_copied_as_a_range(tmp_path: Path) -> None:
    t = torch.randn(8, 4)
    torch.save({"t": t.T}, tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    assert rank.range("t") is None
    assert torch.equal(_read(rank, "t"), t.T)


def test_a_row_block_is_those_rows(tmp_path: Path) -> None:
    torch.save(_state(), tmp_path / "r.pt")
    rows = RankFile(tmp_path / "r.pt").rows("a.weight", 10, 13)
    want = _state()["a.weight"][10:13]
    assert torch.equal(torch.frombuffer(bytearray(rows.tobytes()), dtype=torch.bfloat16).reshape(3, 32), want)


def test_a_file_with_more_than_tensors_is_refused_naming_it(tmp_path: Path) -> None:
    torch.save({"a": torch.zeros(2), "step": torch.nn.Linear(2, 2)}, tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match=r"r\.pt: unreadable .*torch\.nn\.modules\.linear\.Linear"):
        RankFile(tmp_path / "r.pt")


def test_file_ranges_copy_without_copy_file_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel or filesystem refuses copy_file_range, the bytes go through user space instead."""
    from safetensors.torch import load_file

    from training.weights.shards_io import SafetensorsStream

    def refuse(*_: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("os.copy_file_range", refuse)
    torch.save(_state(), tmp_path / "r.pt")
    rank = RankFile(tmp_path / "r.pt")
    stream = SafetensorsStream(tmp_path / "out.safetensors", [("a", (64, 32), "BF16")])
    stream.append_parts("a", iter([rank.range("a.weight", (0, 10)), rank.range("a.weight", (10, 64))]))
    stream.close()
    assert torch.equal(load_file(tmp_path / "out.safetensors")["a"], _state()["a.weight"])


def _crafted_rank_file(path: Path, shape: tuple[object, ...], storage_bytes: int) -> Path:
    """A torch.save-shaped zip whose one float32 tensor has `shape` over a storage of `storage_bytes`."""
    import io
    import pickle
    import zipfile

    class Storage:
        pass

    class Tensor:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, shape, (1,) * len(shape), False, {})

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("storage", torch.FloatStorage, "0", "cpu", storage_bytes // 4) if isinstance(obj, Storage) else None

    data = io.BytesIO()
    Pickler(data, protocol=2).dump({"w": Tensor()})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data.getvalue())
        zf.writestr("archive/data/0", b"\0" * storage_bytes)
        zf.writestr("archive/data/1", b"\0" * 64)  # bytes a bad record could otherwise wander into
    return path


def test_a_malformed_tensor_record_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A damaged (or crafted) pickle whose tensor has a non-numeric shape fails cleanly, not with a traceback."""
    with pytest.raises(CheckpointError, match=r"r\.pt: unreadable .*malformed tensor record"):
        RankFile(_crafted_rank_file(tmp_path / "r.pt", ("rows",), 4))


def test_a_tensor_larger_than_its_storage_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"r\.pt: unreadable .*reads past the end of its 16-byte storage"):
        RankFile(_crafted_rank_file(tmp_path / "r.pt", (8,), 16))
