from neuronx_distributed.trainer import checkpoint
from neuronx_distributed.trainer.checkpoint import save_checkpoint

__all__ = ["checkpoint", "save_checkpoint"]
