"""training.merge: the same tensors as peft's merge_and_unload(), without loading the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft_adapters import make_adapter
from safetensors.torch import load_file

from training.weights.merge import MergeArguments, cli, main


def _peft_merged(base: Path, adapter: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=dtype)
    return {k: v.contiguous() for k, v in PeftModel.from_pretrained(model, adapter).merge_and_unload().state_dict().items()}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_merge_equals_peft_merge_and_unload_bit_for_bit(base_model: Path, adapter: Path, tmp_path: Path, dtype: str) -> None:
    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter),
                              output_dir=str(tmp_path / "merged"), dtype=dtype))
    got, want = load_file(out / "model.safetensors"), _peft_merged(base_model, adapter, getattr(torch, dtype))
    assert sorted(got) == sorted(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name
    assert not torch.equal(got["model.layers.0.self_attn.q_proj.weight"],
                           load_file(base_model / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"].to(got["model.layers.0.self_attn.q_proj.weight"].dtype))
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == dtype


def test_merging_in_row_blocks_changes_no_bit(base_model: Path, adapter: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import training.weights.merge

    monkeypatch.setattr(training.weights.merge, "DELTA_CHUNK_BYTES", 100 * 4 * 128)  # 100 rows of a 128-wide weight, ragged
    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter), output_dir=str(tmp_path / "m"),
                              dtype="bfloat16"))
    got, want = load_file(out / "model.safetensors"), _peft_merged(base_model, adapter, torch.bfloat16)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_blocks_merged_ahead_of_a_slow_disk_are_not_overwritten_before_they_are_written(
        base_model: Path, adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_disk: None) -> None:
    """The next blocks are read and merged while the ones before are written: a block's buffer is reused
    only after the writer is done with it."""
    import training.weights.merge

    monkeypatch.setattr(training.weights.merge, "DELTA_CHUNK_BYTES", 100 * 4 * 128)
    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter), output_dir=str(tmp_path / "m"),
                              dtype="bfloat16"))
    got, want = load_file(out / "model.safetensors"), _peft_merged(base_model, adapter, torch.bfloat16)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_a_merge_that_changes_no_tensor_never_imports_torch(base_model: Path, tmp_path: Path) -> None:
    """torch (over a second to import) is imported for the first merged block, so the file-to-file copies
    before it overlap its import; a merge with nothing to compute never pays for it."""
    import subprocess
    import sys

    from safetensors.torch import save_file

    empty = tmp_path / "empty-adapter"
    empty.mkdir()
    save_file({}, str(empty / "adapter_model.safetensors"))
    (empty / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    code = ("import sys; from training.weights.merge import cli; status = cli(sys.argv[1:]); "
            "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'safetensors'}))")
    done = subprocess.run([sys.executable, "-c", code, "--base_model_path", str(base_model), "--adapter_path",
                           str(empty), "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 []"
    assert load_file(tmp_path / "out" / "model.safetensors").keys() == load_file(base_model / "model.safetensors").keys()


def test_rslora_and_rank_patterns_scale_as_peft_does(base_model: Path, tmp_path: Path) -> None:
    adapter = make_adapter(base_model, tmp_path / "adapter", use_rslora=True,
                           rank_pattern={"q_proj": 4}, alpha_pattern={"down_proj": 64})
    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter), output_dir=str(tmp_path / "m")))
    got, want = load_file(out / "model.safetensors"), _peft_merged(base_model, adapter, torch.float32)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_adapter_for_another_model_is_a_clear_error(base_model: Path, adapter: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    state = load_file(adapter / "adapter_model.safetensors")
    state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"] = torch.zeros(64, 8)
    save_file(state, wrong / "adapter_model.safetensors")
    assert cli(["--base_model_path", str(base_model), "--adapter_path", str(wrong), "--output_dir", str(tmp_path / "o")]) == 2
    assert "q_proj LoRA gives (64, 128)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_model_above_max_shard_size_is_sharded_with_an_index_transformers_loads(base_model: Path, adapter: Path,
                                                                                tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter), output_dir=str(tmp_path / "m"),
                              max_shard_size_gb=300_000 / 1024**3))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in out.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and sorted(set(index["weight_map"].values())) == shards
    assert not (out / "model.safetensors").exists()
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for f in shards
                                                  for t in load_file(out / f).values())
    got = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).state_dict()
    want = _peft_merged(base_model, adapter, torch.float32)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_a_base_tensor_whose_bytes_do_not_match_its_shape_is_a_clear_error(base_model: Path, adapter: Path,
                                                                         tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import struct

    broken = tmp_path / "base"
    shutil.copytree(base_model, broken)
    weights = broken / "model.safetensors"
    raw = weights.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    name = "model.layers.0.self_attn.q_proj.weight"
    header[name]["shape"] = [64, 128]  # half the rows its 64 KB hold
    text = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    assert cli(["--base_model_path", str(broken), "--adapter_path", str(adapter), "--output_dir", str(tmp_path / "o")]) == 2
    assert f"{name} is [64, 128] F32 but spans 65536 bytes" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_bf16_merge_of_an_fp32_base_loads_as_bf16(base_model: Path, adapter: Path, tmp_path: Path) -> None:
    # transformers >= 4.56 reads config.json's `dtype` before `torch_dtype`: both must name the output's
    from transformers import AutoModelForCausalLM

    assert json.loads((base_model / "config.json").read_text()).get("dtype", "float32") == "float32"
    out = main(MergeArguments(base_model_path=str(base_model), adapter_path=str(adapter),
                              output_dir=str(tmp_path / "merged"), dtype="bfloat16"))
    config = json.loads((out / "config.json").read_text())
    assert (config["dtype"], config["torch_dtype"]) == ("bfloat16", "bfloat16")
    assert AutoModelForCausalLM.from_pretrained(out, dtype="auto").dtype == torch.bfloat16
