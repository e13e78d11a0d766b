#!/usr/bin/env python3
"""CDK entry point (cdk.json runs it): the app is built in infra.build."""

from infra.build import build_app

build_app().synth()
