"""Simulated neuronx_distributed for `make check-neuron`: the parallel state of a torchrun job read from
the environment, parallel layers as ordinary layers holding this rank's shard, collectives as in
torch_xla's simulation, and the checkpoint writer's file layout. Only what optimum-neuron 0.4.5's
training path reaches is here."""

from neuronx_distributed import parallel_layers, trainer

__version__ = "0.15.22404"
__all__ = ["parallel_layers", "trainer"]
