"""`python -m training.merge`, as the jobs (jobs/merge.sbatch) and docs/contracts.md call it; the code is
training.weights.merge."""

import runpy

if __name__ == "__main__":
    runpy.run_module("training.weights.merge", run_name="__main__", alter_sys=True)
