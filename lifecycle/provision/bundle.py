"""Keep a copy of the lifecycle scripts on the node, for re-runs and the post-create check.

HyperPod downloads the scripts to a temporary directory; the check (cluster_check.sh,
run with srun on every node) needs them at a fixed path.
"""

from __future__ import annotations

from provision.context import INSTALL_DIR, Context
from provision.files import SKIP_PARTS, sync_tree


def install_bundle(ctx: Context) -> None:
    # project/ is the training package; it goes to FSx (neuron_venv), not to every node's disk.
    sync_tree(ctx.host, ctx.settings.bundle_dir, INSTALL_DIR, skip=(*SKIP_PARTS, "project"))
