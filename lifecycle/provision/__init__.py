"""Node bootstrap for the HyperPod Slurm cluster: what on_create.sh runs on every node.

Stdlib only, Python 3.8+: it runs on the HyperPod AMI's system python3.
"""
