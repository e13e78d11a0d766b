"""training.consolidate: 8 tensor-parallel ranks in, the exact peft adapter (or model) out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from shards_writer import neuron_equivalent, write_sharded

from training.weights.consolidate import ConsolidateArguments, cli, main


def _sharded_adapter(adapter: Path, root: Path, xser: bool = False, adapter_name: str = "default") -> Path:
    """The adapter as the Neuron trainer saves it: rank files keyed like the peft file, config unfused."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    return write_sharded(root / "checkpoint-20", load_file(adapter / "adapter_model.safetensors"), xser=xser,
                         adapter_config=config, adapter=adapter_name)


def _neuron_trained(adapter: Path) -> dict[str, torch.Tensor]:
    return neuron_equivalent(load_file(adapter / "adapter_model.safetensors"))


def _assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name


@pytest.mark.parametrize("xser", [False, True], ids=["torch-save", "xser"])
def test_adapter_from_8_ranks_equals_the_peft_state_dict(adapter: Path, tmp_path: Path, xser: bool) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run", xser)
    out = main(ConsolidateArguments(checkpoint_dir=str(ckpt), output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "adapter_model.safetensors"), _neuron_trained(adapter))
    config = json.loads((out / "adapter_config.json").read_text())
    assert "gate_proj" in config["target_modules"] and "gate_up_proj" not in config["target_modules"]


def test_fused_gate_up_lora_a_is_shared_by_gate_and_up(adapter: Path, tmp_path: Path) -> None:
    out = main(ConsolidateArguments(checkpoint_dir=str(_sharded_adapter(adapter, tmp_path / "run")),
                                    output_dir=str(tmp_path / "out")))
    got = load_file(out / "adapter_model.safetensors")
    gate = [n for n in got if ".gate_proj.lora_A." in n]
    assert gate and all(torch.equal(got[n], got[n.replace(".gate_proj.", ".up_proj.")]) for n in gate)


def test_named_adapter_keeps_peft_key_names(adapter: Path, tmp_path: Path) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run", adapter_name="model")  # a name that is also a key segment
    out = main(ConsolidateArguments(checkpoint_dir=str(ckpt), output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "adapter_model.safetensors"), _neuron_trained(adapter))


def test_consolidated_adapter_loads_into_peft_with_every_weight(base_model: Path, adapter: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    out = main(ConsolidateArguments(checkpoint_dir=str(_sharded_adapter(adapter, tmp_path / "run")),
                                    output_dir=str(tmp_path / "out")))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model, torch_dtype=torch.float32), out)
    _assert_same(get_peft_model_state_dict(model), _neuron_trained(adapter))


def test_training_output_dir_uses_the_latest_complete_checkpoint(adapter: Path, tmp_path: Path) -> None:
    _sharded_adapter(adapter, tmp_path / "run")
    (tmp_path / "run" / "checkpoint-40" / "adapter_default" / "adapter_shards").mkdir(parents=True)  # no done: unfinished
    out = main(ConsolidateArguments(checkpoint_dir=str(tmp_path / "run"), output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "adapter_model.safetensors"), _neuron_trained(adapter))


def test_checkpoint_without_trainer_state_is_skipped_as_unfinished(adapter: Path, tmp_path: Path) -> None:
    _sharded_adapter(adapter, tmp_path / "run")
    later = _sharded_adapter(adapter, tmp_path / "later")
    (later / "trainer_state.json").unlink()
    later.rename(tmp_path / "run" / "checkpoint-40")
    out = main(ConsolidateArguments(checkpoint_dir=str(tmp_path / "run"), output_dir=str(tmp_path / "out")))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 20


def test_full_model_unfuses_gate_up_proj(base_model: Path, tmp_path: Path) -> None:
    state = load_file(base_model / "model.safetensors")
    ckpt = write_sharded(tmp_path / "checkpoint-5", state)
    for name in ("config.json", "tokenizer.json"):
        (ckpt / name).write_bytes((base_model / name).read_bytes())
    out = main(ConsolidateArguments(checkpoint_dir=str(ckpt), output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "model.safetensors"), state)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()


def test_row_parallel_tensors_gathered_in_ragged_row_blocks_are_exact(base_model: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """o_proj/down_proj are split on dim 1: they are rebuilt a block of rows at a time, here 3 of 128 rows."""
    monkeypatch.setattr("training.weights.consolidate.BLOCK_BYTES", 3 * 128 * 4 + 7)
    state = load_file(base_model / "model.safetensors")
    out = main(ConsolidateArguments(checkpoint_dir=str(write_sharded(tmp_path / "checkpoint-5", state)),
                                    output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "model.safetensors"), state)


def test_row_blocks_laid_out_ahead_of_a_slow_disk_are_not_overwritten_before_they_are_written(
        base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_disk: None) -> None:
    """The next blocks of rows are laid out while the ones before are written: a block's buffer is
    reused only after the writer is done with it, however far behind the disk is."""
    monkeypatch.setattr("training.weights.consolidate.BLOCK_BYTES", 3 * 128 * 4 + 7)
    state = load_file(base_model / "model.safetensors")
    out = main(ConsolidateArguments(checkpoint_dir=str(write_sharded(tmp_path / "checkpoint-5", state)),
                                    output_dir=str(tmp_path / "out")))
    _assert_same(load_file(out / "model.safetensors"), state)


def test_a_model_in_shards_written_two_at_a_time_is_exact(base_model: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, slow_disk: None) -> None:
    """Shards go to the writer lanes in turn, so two are written at once (each in order), while row
    blocks from one buffer pool are laid out ahead of both."""
    import training.weights.shards_io as shards_io

    monkeypatch.setattr("training.weights.consolidate.BLOCK_BYTES", 3 * 128 * 4 + 7)
    state = load_file(base_model / "model.safetensors")
    out = main(ConsolidateArguments(checkpoint_dir=str(write_sharded(tmp_path / "checkpoint-5", state)),
                                    output_dir=str(tmp_path / "out"), max_shard_size_gb=300_000 / 1024**3))
    shards = sorted(out.glob("model-*-of-*.safetensors"))
    assert len(shards) > shards_io.WRITER_LANES
    got = {name: tensor for shard in shards for name, tensor in load_file(shard).items()}
    _assert_same(got, state)


def test_plain_peft_adapter_is_validated_and_copied(adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = main(ConsolidateArguments(checkpoint_dir=str(adapter), output_dir=str(tmp_path / "out")))
    assert (out / "adapter_model.safetensors").read_bytes() == (adapter / "adapter_model.safetensors").read_bytes()
    assert "already a plain peft adapter" in capsys.readouterr().out


def _fails(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(["--checkpoint_dir", str(ckpt), "--output_dir", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))
    return capsys.readouterr().err


def test_missing_rank_is_an_error_naming_the_file(adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    next(ckpt.rglob("dp_rank_00_tp_rank_05_pp_rank_00.pt")).unlink()
    assert "dp_rank_00_tp_rank_05_pp_rank_00.pt: missing rank" in _fails(ckpt, tmp_path, capsys)


def test_missing_done_marker_is_an_error(adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    (ckpt / "adapter_default" / "adapter_shards" / "done").unlink()
    assert "adapter_shards/done: missing" in _fails(ckpt, tmp_path, capsys)


def test_gqa_qkv_spec_is_refused_naming_it(adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TP above the kv head count makes optimum-neuron fuse q/k/v into a GQAQKVColumnParallelLinear."""
    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    meta_path = ckpt / "adapter_default" / "adapter_shards" / "mp_metadata_pp_rank_0.json"
    meta = json.loads(meta_path.read_text())
    meta["model_weight_transformation_specs"][-1]["specs"].append(
        ["GQAQKVColumnParallelLinearSpec", {"gqa_qkv_projection_name": "qkv_proj", "kv_size_multiplier": 4}])
    meta_path.write_text(json.dumps(meta))
    err = _fails(ckpt, tmp_path, capsys)
    assert "mp_metadata_pp_rank_0.json" in err and "GQAQKVColumnParallelLinearSpec" in err


@pytest.mark.parametrize("xser", [False, True], ids=["torch-save", "xser"])
def test_truncated_rank_file_is_an_error_naming_it(adapter: Path, tmp_path: Path, xser: bool,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run", xser)
    victim = next(ckpt.rglob("tensor_3.pt" if xser else "dp_rank_00_tp_rank_03_pp_rank_00.pt"))
    victim.write_bytes(victim.read_bytes()[:100])
    assert f"{victim.name}: unreadable" in _fails(ckpt, tmp_path, capsys)


def test_command_line_consolidates_and_says_so(adapter: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    done = subprocess.run([sys.executable, "-m", "training.consolidate", "--checkpoint_dir", str(ckpt.parent),
                           "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "consolidated 31 tensors from 8 TP x 1 PP ranks" in done.stdout


def test_consolidation_never_imports_torch(adapter: Path, tmp_path: Path) -> None:
    """Importing torch takes longer than copying a 2 GB model: consolidation only moves bytes."""
    import subprocess
    import sys

    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    code = ("import sys; from training.weights.consolidate import cli; status = cli(sys.argv[1:]); "
            "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'safetensors'}))")
    done = subprocess.run([sys.executable, "-c", code, "--checkpoint_dir", str(ckpt), "--output_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 []"


def test_ranks_that_do_not_split_evenly_are_refused_naming_the_rank_file(
        adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # neuronx_distributed gives every tensor-parallel rank the same share of a split dim
    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    victim = next(ckpt.rglob("dp_rank_00_tp_rank_03_pp_rank_00.pt"))
    state = torch.load(victim)
    name = next(k for k in state if "q_proj.lora_B" in k)
    state[name] = state[name][:-1].clone()  # one row short: 7 of the 8 ranks still hold the full share
    torch.save(state, victim)
    err = _fails(ckpt, tmp_path, capsys)
    assert f"error: {victim}: " in err and "split evenly" in err


def test_more_rank_files_than_the_metadatas_partitions_are_refused_naming_the_extra_one(
        adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _sharded_adapter(adapter, tmp_path / "run")
    last = next(ckpt.rglob("dp_rank_00_tp_rank_07_pp_rank_00.pt"))
    extra = last.with_name("dp_rank_00_tp_rank_08_pp_rank_00.pt")
    extra.write_bytes(last.read_bytes())
    err = _fails(ckpt, tmp_path, capsys)
    assert f"error: {extra}: tensor-parallel rank 8" in err and "8 partitions" in err
