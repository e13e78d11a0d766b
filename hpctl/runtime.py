"""What commands take from the outside world, in one object tests can replace:
the AWS connection, process exec, PATH lookups, the clock and the browser.
"""

from __future__ import annotations

import os
import shutil
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field

from hpctl.aws import Aws


def exec_replacing_process(argv: list[str]) -> None:
    """Hand the terminal to `aws` (its session plugin needs the real tty and signals)."""
    os.execvp(argv[0], argv)


@dataclass
class Runtime:
    region: str | None = None
    profile: str | None = None
    connect: Callable[[str | None, str | None], Aws] = Aws.connect
    exec_argv: Callable[[list[str]], None] = exec_replacing_process
    which: Callable[[str], str | None] = shutil.which
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    open_url: Callable[[str], bool] = webbrowser.open
    _aws: Aws | None = field(default=None, repr=False)

    def aws(self) -> Aws:
        if self._aws is None:
            self._aws = self.connect(self.region, self.profile)
        return self._aws
