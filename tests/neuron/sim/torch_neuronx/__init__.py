"""Simulated torch_neuronx: the platform query optimum-neuron makes; its inference entry points are
import-only stand-ins (see _import_only)."""

from _import_only import ImportOnly

DataParallel = ImportOnly("torch_neuronx.DataParallel")
move_trace_to_device = ImportOnly("torch_neuronx.move_trace_to_device")
