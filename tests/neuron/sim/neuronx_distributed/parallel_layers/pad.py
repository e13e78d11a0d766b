def get_number_of_extra_heads(num_heads: int, tp_degree: int) -> int:
    return (tp_degree - num_heads % tp_degree) % tp_degree
