from torch.nn import LayerNorm

__all__ = ["LayerNorm"]
