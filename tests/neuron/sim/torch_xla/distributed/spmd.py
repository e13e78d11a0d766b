"""SPMD sharding is not used by optimum-neuron's training path; transformers imports the module only."""
