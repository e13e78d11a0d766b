def nki_flash_attn_func(*args, **kwargs):
    raise NotImplementedError("the NKI flash attention kernel runs on NeuronCores only; use eager attention")
