"""What the node image brings is built on, not replaced: its slurmdbd.conf template, its Lustre client."""

from __future__ import annotations

from pathlib import Path

from lifecycle_fakes import (
    CONTROLLER_IP,
    WORKER_IP,
    fresh_rules,
    mark_mounted,
    mutating,
    provisioned_rules,
    recorder,
    rule,
    run_node,
)

TEMPLATE = """\
ArchiveEvents=yes
ArchiveJobs=yes
PurgeJobAfter=12month
LogFile=/var/log/slurmdbd-from-the-image.log
StorageUser=${SLURM_DB_USER}
StoragePass=${SLURM_DB_PASSWORD}
StorageLoc=wrong_db
"""


def dbd_settings(root: Path) -> dict[str, str]:
    text = (root / "opt/slurm/etc/slurmdbd.conf").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_slurmdbd_conf_starts_from_the_images_template(root: Path):
    (root / "opt/slurm/etc/slurmdbd.conf.template").write_text(TEMPLATE)
    run_node(root, CONTROLLER_IP, recorder(fresh_rules()))
    got = dbd_settings(root)
    assert (got["ArchiveJobs"], got["PurgeJobAfter"]) == ("yes", "12month")  # the image's choices stay
    assert got["LogFile"] == "/var/log/slurmdbd-from-the-image.log"
    assert (got["StorageUser"], got["StorageLoc"], len(got["StoragePass"])) == ("slurm", "slurm_acct_db", 32)
    assert "$" not in (root / "opt/slurm/etc/slurmdbd.conf").read_text()


def test_a_template_based_slurmdbd_conf_is_left_alone_the_second_time(root: Path):
    (root / "opt/slurm/etc/slurmdbd.conf.template").write_text(TEMPLATE)
    run_node(root, CONTROLLER_IP, recorder(fresh_rules()))
    first = (root / "opt/slurm/etc/slurmdbd.conf").read_text()
    mark_mounted(root)
    second = recorder(provisioned_rules())
    run_node(root, CONTROLLER_IP, second)
    assert (root / "opt/slurm/etc/slurmdbd.conf").read_text() == first
    assert not [c for c in second.commands if c[0] == "mysql"]


def lustre_installed() -> dict:
    return rule(["dpkg-query", "-W", "-f=${Status}", "lustre-client-modules-aws"], {"stdout": "install ok installed"})


def test_the_lustre_client_modules_are_held_against_upgrades(root: Path):
    runner = recorder([lustre_installed(), rule(["apt-mark", "showhold"], {"stdout": ""}), *fresh_rules()])
    run_node(root, WORKER_IP, runner)
    assert ["apt-mark", "hold", "lustre-client-modules-aws"] in runner.commands


def test_a_held_lustre_client_is_not_held_again(root: Path):
    run_node(root, WORKER_IP, recorder(fresh_rules()))
    mark_mounted(root)
    second = recorder(provisioned_rules())
    run_node(root, WORKER_IP, second)
    assert not [c for c in mutating(second.commands) if c[0] == "apt-mark"]


def test_an_image_without_the_lustre_client_package_holds_nothing(root: Path):
    runner = recorder(fresh_rules())
    run_node(root, WORKER_IP, runner)
    assert not [c for c in runner.commands if c[:2] == ["apt-mark", "hold"]]
