"""`python -m hpctl` = the `hpctl` console script."""

from hpctl.main import app

app(prog_name="hpctl")
