"""Simulated libneuronxla: only its compile cache, which optimum-neuron opens around train()."""
