from neuronx_distributed.parallel_layers import grads, layers, mappings, parallel_state, utils

__all__ = ["grads", "layers", "mappings", "parallel_state", "utils"]
