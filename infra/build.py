"""Builds the CDK app from cdk.json's context plus overrides: what app.py runs, and
what tests and hpctl synthesize in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import ClusterConfig, read_cdk_context
from infra.project_bundle import stage_project
from infra.stack import HyperPodStack

ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = ROOT / "cdk.json"
LIFECYCLE_DIR = ROOT / "lifecycle"
STACK_NAME_DEFAULT = ClusterConfig().stack_name


def cdk_json_context() -> dict[str, Any]:
    return read_cdk_context(CDK_JSON)


def build_app(context: Mapping[str, str] | None = None, outdir: str | None = None) -> App:
    """The app with its one stack and cdk-nag's AwsSolutions checks, which fail synth on
    any finding not acknowledged in the code.

    Under the CDK CLI, cdk.json's context and `-c` reach the App through the
    environment and win over the copy read here; in-process, `context` wins.
    """
    app = App(
        context=cdk_json_context(),
        post_cli_context=dict(context or {}),
        outdir=outdir,
        # CDK's own template validation adds some 15 s to every synth; the tests run cfn-lint instead.
        builtin_cloud_formation_validation=False,
    )
    config = ClusterConfig.from_mapping(app.node.get_all_context())
    HyperPodStack(
        app,
        config.stack_name,
        config=config,
        lifecycle_dir=LIFECYCLE_DIR,
        project_bundle_dir=stage_project(ROOT),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
