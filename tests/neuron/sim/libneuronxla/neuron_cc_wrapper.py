"""The compiler entry point. Nothing is compiled in the simulation: reaching it is an error."""


def main() -> int:
    raise NotImplementedError("the Neuron compiler is not simulated")
