#!/usr/bin/env python3
"""CDK entry point (cdk.json runs it): the app is built in infra.build."""

import sys

from infra.build import build_app
from infra.config import ConfigError

try:
    build_app().synth()
except ConfigError as error:
    # docs/contracts.md: one error line naming the key, exit 2, no traceback.
    print(f"error: cdk.json / -c: {error}", file=sys.stderr)
    sys.exit(2)
