"""Model weights on disk: optimum-neuron's sharded checkpoint layout (shards_layout), streaming
safetensors (shards_io), and the two commands built on them, consolidate and merge. Nothing here
imports torch at package level; consolidate never imports it at all."""
