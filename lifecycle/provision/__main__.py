"""Entry point: `python3 -m provision run ...` (what on_create.sh calls), `check-node`, and
`shared-tree` (the jobs' directories on the shared file system, as the controller prepares
them; localslurm/up.sh prepares its shared root with it).

Exit status: 0 done, 1 a step failed (its name is printed), 2 bad input files.
With --record, commands are recorded (and answered from --script) instead of run:
the dry run tests use against a fake --root.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from provision.check import inspect, report_line
from provision.config import ConfigError, load_params, load_resource_config
from provision.context import Context, Settings
from provision.host import Host
from provision.node import primary_ip, resolve_node
from provision.orchestrator import StepFailed, provision
from provision.runner import CommandError, RecordingRunner, Runner, SubprocessRunner
from provision.shared_tree import prepare_shared_tree

BUNDLE_DIR = Path(__file__).resolve().parent.parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m provision", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("run", "provision this node"), ("check-node", "report this node's health as JSON")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--params", type=Path, required=True, help="provisioning_parameters.json")
        s.add_argument("--resource-config", type=Path, required=True, help="HyperPod's resource_config.json")
        s.add_argument("--root", type=Path, default=Path("/"), help="the node's filesystem root (a fake one in tests)")
        s.add_argument("--ip", default=None, help="this node's IP (default: the primary interface's)")
        s.add_argument("--record", type=Path, default=None, help="dry run: append commands here, run none")
        s.add_argument("--script", type=Path, default=None, help="dry run: JSON rules answering recorded commands")
    tree = sub.add_parser("shared-tree", help="prepare the jobs' directories on the shared file system")
    tree.add_argument("--mount-point", required=True, help="where the shared file system is mounted")
    tree.add_argument("--user", required=True, help="the user the jobs run as")
    tree.add_argument("--root", type=Path, default=Path("/"), help="the node's filesystem root")
    run = sub.choices["run"]
    run.add_argument("--retry-delay", type=float, default=10.0, help="seconds between retries")
    run.add_argument("--slurm-conf-timeout", type=float, default=600.0, help="seconds to wait for slurm.conf")
    run.add_argument("--bundle-dir", type=Path, default=BUNDLE_DIR, help="the lifecycle scripts' directory")
    return p


def make_host(args: argparse.Namespace, retry_delay: float = 10.0) -> Host:
    runner: Runner
    if args.record is not None or args.script is not None:
        runner = RecordingRunner.from_script(args.script, args.record)
    else:
        runner = SubprocessRunner()
    return Host(args.root, runner, retry_delay=retry_delay)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "shared-tree":
        try:
            prepare_shared_tree(Host(args.root, SubprocessRunner()), args.mount_point, args.user)
        except (CommandError, OSError) as exc:
            print(f"ERROR: shared tree under {args.mount_point}: {exc}", file=sys.stderr, flush=True)
            return 1
        return 0
    try:
        params = load_params(args.params)
        resources = load_resource_config(args.resource_config)
        node = resolve_node(params, resources, args.ip or primary_ip())
    except ConfigError as exc:
        print(f"ERROR: bad input: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.command == "check-node":
        host = make_host(args)
        report = inspect(host, params)
        print(report_line(socket.gethostname(), report, expect_neuron=node.is_trainium), flush=True)
        return 1 if report.failures(node.is_trainium) else 0
    host = make_host(args, args.retry_delay)
    settings = Settings(bundle_dir=args.bundle_dir, slurm_conf_timeout=args.slurm_conf_timeout)
    try:
        provision(Context(params, node, host, settings))
    except StepFailed as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"provisioning of {node.role.value} node {node.name} finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
