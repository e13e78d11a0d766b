#!/usr/bin/env python3
"""CDK entry point (cdk.json runs it): the app is built in infra.build."""

import sys

from infra.build import build_app
from infra.config import ConfigError

try:
    build_app().synth()
except ConfigError as error:
    sys.exit(f"cdk.json / -c: {error}")
