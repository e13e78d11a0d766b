"""`python -m training.consolidate`, as the jobs (jobs/consolidate.sbatch) and docs/contracts.md call it; the code is
training.weights.consolidate."""

import runpy

if __name__ == "__main__":
    runpy.run_module("training.weights.consolidate", run_name="__main__", alter_sys=True)
