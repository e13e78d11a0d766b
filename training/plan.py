"""What a training run is about to do, said before it starts: data, optimizer steps, expected time.

A recipe that gives a dozen optimizer steps looks the same in the job script as one that gives a
hundred; the job log shows which one it is before an hour of Trainium time is spent. No heavy imports.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

# The seed run: Llama-3-8B LoRA (r=16, q_proj+v_proj) on dolly-15k, 3 epochs on one trn1.32xlarge.
SEED_SAMPLES_PER_SECOND = 3.55
NEURON_CORES_PER_TRN1 = 32


def job_nodes() -> int:
    """Nodes in this torchrun job: WORLD_SIZE over LOCAL_WORLD_SIZE (the processes torchrun started per
    node; 32 on trn1.32xlarge, 64 on trn2.48xlarge)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(min(world, NEURON_CORES_PER_TRN1))))
    return max(world // max(per_node, 1), 1)


@dataclass(frozen=True)
class Plan:
    examples: int
    blocks: int
    data_parallel_size: int
    samples_per_step: int
    steps_per_epoch: int
    optimizer_steps: int
    epochs: float

    @property
    def samples(self) -> int:
        return self.optimizer_steps * self.samples_per_step

    def expected_seconds(self, nodes: int, samples_per_second_per_node: float = SEED_SAMPLES_PER_SECOND) -> float:
        return self.samples / (samples_per_second_per_node * max(nodes, 1))

    def describe(self, nodes: int | None = None) -> str:
        """One log line; with `nodes` (the Neuron backend) also the time at the seed run's speed."""
        line = (f"plan: {self.examples} examples -> {self.blocks} blocks; {self.data_parallel_size} data-parallel "
                f"replica(s) x {self.samples_per_step // self.data_parallel_size} block(s) per optimizer step = "
                f"{self.samples_per_step} blocks/step; {self.steps_per_epoch} optimizer steps/epoch, "
                f"{self.optimizer_steps} optimizer steps in all ({self.epochs:g} epoch(s))")
        if nodes is not None:
            minutes = self.expected_seconds(nodes) / 60
            line += (f"; expected {minutes:.0f} min at the seed run's {SEED_SAMPLES_PER_SECOND} samples/s per "
                     f"trn1.32xlarge x {nodes} node(s), compilation not included")
        return line


def make_plan(*, examples: int, blocks: int, data_parallel_size: int, batch_size: int, accumulation: int,
              epochs: float, max_steps: int) -> Plan:
    """The optimizer steps transformers' Trainer will take.

    Each replica's sampler gets ceil(blocks / replicas) blocks (the distributed sampler pads), the
    dataloader ceil(that / batch) batches, and an epoch ceil(batches / accumulation) optimizer steps
    (transformers 4.57 Trainer.set_initial_training_values counts a last partial accumulation as a step).
    """
    per_replica = math.ceil(blocks / data_parallel_size)
    batches = math.ceil(per_replica / batch_size)
    steps_per_epoch = max(math.ceil(batches / accumulation), 1)
    total = max_steps if max_steps > 0 else math.ceil(epochs * steps_per_epoch)
    return Plan(examples=examples, blocks=blocks, data_parallel_size=data_parallel_size,
                samples_per_step=batch_size * accumulation * data_parallel_size,
                steps_per_epoch=steps_per_epoch, optimizer_steps=total, epochs=epochs)
