"""hpctl: drive the HyperPod Trainium cluster from a laptop (ssh, status, validate, upload, cost)."""

# Start-up stays cheap: nothing here imports boto3/botocore (hpctl.aws connects on first use) or rich
# (hpctl.render, imported by the commands that draw), so --help and a mistake in the input, found
# before any AWS call, cost a bare interpreter and typer.
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_errors  # typer >= 0.26 vendors click: its UsageError is this one

from hpctl import cluster as hp
from hpctl import cost as pricing
from hpctl import ssh, upload, validate
from hpctl.aws import REGION_ENV, HpctlError, UsageError, explain, is_aws_error
from hpctl.report import report_command
from hpctl.runtime import Runtime
from training.errors import os_error_advice


class _OneLine(click_errors.ClickException):
    """A usage error shown as hpctl shows every other one: a single `error:` line (click prints usage,
    a hint and the message on four)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        typer.echo(f"error: {self.message}", err=True)


class _Group(typer.core.TyperGroup):
    """The error policy of every hpctl command, in one place: a mistake in the input (bad option, local
    file) is one `error:` line and exit 2; an AWS failure (HpctlError, or a botocore error that escaped)
    one line and exit 1; anything else is a bug and keeps its traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click_errors.UsageError as exc:
            raise _usage(exc) from None

    def invoke(self, ctx: Any) -> Any:  # Any: typer vendors its own click.Context
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as exc:
            raise _usage(exc) from None
        except UsageError as exc:
            _fail(str(exc), 2)
        except HpctlError as exc:
            _fail(str(exc), 1)
        except Exception as exc:
            if is_aws_error(exc):
                _fail(explain(exc), 1)
            advice = os_error_advice(exc) if isinstance(exc, OSError) else None
            if advice is None:
                raise
            _fail(advice, 2)


def _usage(exc: Any) -> Any:
    """click's UsageError as one line naming the command's --help (the no-arguments help page stays)."""
    if isinstance(exc, click_errors.NoArgsIsHelpError):
        return exc
    command = exc.ctx.command_path if exc.ctx is not None else "hpctl"
    return _OneLine(f"{exc.format_message()} (see `{command} --help`)")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo("error: " + " ".join(message.split()), err=True)
    raise typer.Exit(code) from None


app = typer.Typer(
    cls=_Group,
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Stack = Annotated[
    str,
    typer.Option(
        "--stack", "-s", envvar="HPCTL_STACK", help="CloudFormation stack whose outputs name the cluster."
    ),
]
ClusterOpt = Annotated[
    str | None, typer.Option("--cluster", "-c", help="Cluster name or ARN (instead of --stack).")
]


@app.callback()
def main(
    ctx: typer.Context,
    region: Annotated[
        str | None, typer.Option(help=f"AWS region (default: {REGION_ENV} / your profile's).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile from ~/.aws/config.")] = None,
) -> None:
    runtime = ctx.ensure_object(Runtime)
    runtime.region = region or runtime.region
    runtime.profile = profile or runtime.profile


def _finite(**values: float | None) -> None:
    """click's FLOAT takes "nan" and "inf", and range checks let nan through: no option means either."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


def _runtime(ctx: typer.Context) -> Runtime:
    return ctx.ensure_object(Runtime)


@app.command()
def status(
    ctx: typer.Context,
    stack: Stack = hp.DEFAULT_STACK,
    cluster: ClusterOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Poll until InService; fail with the platform's message.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Minutes --wait waits.", min=0)] = 90,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=1)] = 30,
) -> None:
    """Cluster status and each node's group, type and status.

    \b
    hpctl status                      # the stack's cluster (HPCTL_STACK or HyperPodTrnLora)
    hpctl status --wait               # until InService; fails with HyperPod's own message
    hpctl status --cluster trn1-lora  # any cluster, by name or ARN
    """
    _finite(timeout=timeout, interval=interval)
    rt = _runtime(ctx)
    ref = hp.resolve(rt.aws, stack=stack, cluster=cluster)
    aws = rt.aws()
    from hpctl import render

    out = render.console()
    if wait:
        with render.wait_progress(out) as show:
            found = hp.wait_in_service(
                aws,
                ref,
                timeout_s=timeout * 60,
                interval_s=interval,
                sleep=rt.sleep,
                clock=rt.clock,
                on_poll=show,
            )
    else:
        found = hp.describe(aws, ref)
    render.cluster_status(out, found, hp.list_nodes(aws, ref))


@app.command("ssh")
def ssh_command(
    ctx: typer.Context,
    stack: Stack = hp.DEFAULT_STACK,
    cluster: ClusterOpt = None,
    group: Annotated[str | None, typer.Option(help="Instance group (default: the controller group).")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Instance id of the node (default: the group's first Running node).")
    ] = None,
    document: Annotated[
        str | None, typer.Option(help="SSM session document (default: the stack's SsmRunAsDocumentName).")
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config", help="Write a Host entry with an SSM ProxyCommand to --ssh-config and print it."
        ),
    ] = False,
    alias: Annotated[
        str | None, typer.Option(help="Host name in the ssh config (default: the cluster name).")
    ] = None,
    user: Annotated[str, typer.Option(help="Login user for the ssh config entry.")] = "ubuntu",
    ssh_config: Annotated[Path, typer.Option(help="ssh config file to update; '-' prints only.")] = Path(
        "~/.ssh/config"
    ),
    check: Annotated[bool, typer.Option(help="Probe SSM reachability before starting the shell.")] = True,
) -> None:
    """Shell on a node via SSM (default: the controller).

    Needs the AWS CLI v2 and the Session Manager plugin. With --print-config, plain
    `ssh <alias>`, scp and VS Code Remote-SSH work too (your public key must be in the
    node user's ~/.ssh/authorized_keys); re-run it after the node is replaced.

    \b
    hpctl ssh                                   # controller, as the cluster's default user
    hpctl ssh --group worker-group-1            # first Running worker
    hpctl ssh --print-config && ssh trn1-lora   # ~/.ssh/config entry, then plain ssh
    """
    if alias is not None:  # the command's own input first: a typo must not wait on AWS
        ssh.check_alias(alias)
    if print_config and str(ssh_config) != "-":
        ssh.config_file(ssh_config)
    rt = _runtime(ctx)
    if not print_config:
        ssh.require_tools(rt.which)  # this laptop's tools too: a missing plugin must not wait on AWS
    ref = hp.resolve(rt.aws, stack=stack, cluster=cluster)
    aws = rt.aws()
    found = hp.describe(aws, ref)
    wanted_group = group or (None if instance else ref.controller_group)
    node = hp.pick_node(hp.list_nodes(aws, ref, wanted_group), group=wanted_group, instance_id=instance)
    target = ssh.SsmTarget(found.cluster_id, node.group, node.instance_id)
    scope = ssh.AwsCliScope(aws.region, aws.profile)
    from hpctl import render

    out = render.console()
    if print_config:
        host = alias or found.name
        block = ssh.config_block(host, target, scope, user)
        if str(ssh_config) != "-":
            path = ssh_config.expanduser()
            ssh.write_config(path, host, block)
            out.print(f"wrote Host {host} to {path}; connect with: ssh {host}", markup=False)
        out.print(block, markup=False, end="")
        return
    chosen_document = document or ref.run_as_document
    if check:
        ssh.check_reachable(aws, target, chosen_document)
    argv = ssh.start_session_argv(target, scope, chosen_document)
    typer.echo(f"connecting to {target}", err=True)
    rt.exec_argv(argv)


@app.command("validate")
def validate_command(
    ctx: typer.Context,
    context_file: Annotated[
        Path, typer.Option(help="cdk.json whose context holds the cluster settings.")
    ] = Path("cdk.json"),
    use_context: Annotated[
        bool,
        typer.Option(
            "--context/--no-context", help="Read --context-file (off: check only what the options name)."
        ),
    ] = True,
    worker_type: Annotated[
        str | None, typer.Option(help="Worker instance type (overrides the context).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker count (overrides the context).")] = None,
    controller_type: Annotated[str | None, typer.Option(help="Controller instance type.")] = None,
    az: Annotated[str | None, typer.Option("--az", help="Availability zone the cluster will use.")] = None,
    subnet_id: Annotated[str | None, typer.Option(help="Existing private subnet for the cluster.")] = None,
    security_group_id: Annotated[
        str | None, typer.Option(help="Existing security group for the cluster.")
    ] = None,
    fsx_id: Annotated[str | None, typer.Option(help="Existing FSx for Lustre file system.")] = None,
) -> None:
    """Pre-flight checks before `cdk deploy`; exit 1 on any failure.

    Reads the plan from cdk.json (region, zone, instance types and counts; options
    override it) and checks: each worker group's type is offered in the zone, SageMaker's
    "<type> for cluster usage" quotas cover every node, and, for existing resources
    given by id, the subnet is private, the security group allows all traffic to and
    from itself, and FSx is in the cluster's zone. Each failure says what to change.

    \b
    hpctl validate
    hpctl validate --workers 4 --az us-west-2d
    hpctl validate --no-context --subnet-id subnet-0abc --security-group-id sg-0abc --fsx-id fs-0abc
    """
    rt = _runtime(ctx)
    context = validate.read_context(context_file) if use_context else {}
    overrides = {
        "region": rt.region,
        "worker_instance_type": worker_type,
        "worker_count": workers,
        "controller_instance_type": controller_type,
        "availability_zone": az,
    }
    plan = validate.plan_from_context(
        context, overrides, subnet_id=subnet_id, security_group_id=security_group_id, fsx_id=fsx_id
    )
    rt.region = plan.region  # check where the stack will deploy, not the shell's default region
    results = validate.Validator(rt.aws(), plan).run()
    from hpctl import render

    out = render.console()
    render.findings(out, results)
    counts = validate.summary(results)
    out.print(counts)
    if any(f.status is validate.Status.FAIL for f in results):
        raise typer.Exit(1)


@app.command("upload")
def upload_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Dataset file or directory.")],
    name: Annotated[
        str | None, typer.Option(help="Name under /fsx/s3/datasets/ (default: the file or directory name).")
    ] = None,
    stack: Stack = hp.DEFAULT_STACK,
    bucket: Annotated[
        str | None, typer.Option(help="Bucket (default: the stack's BucketName output).")
    ] = None,
) -> None:
    """Upload a dataset to /fsx/s3/datasets/<name>.

    It goes to s3://<bucket>/data/datasets/<name>; the stack's FSx data repository
    association links s3://<bucket>/data/ to /fsx/s3 and imports new objects. Point
    jobs at it with DATASET_PATH=/fsx/s3/datasets/<name>.

    \b
    hpctl upload ./dolly                  # -> /fsx/s3/datasets/dolly
    hpctl upload train.jsonl --name dolly.jsonl
    """
    plan = upload.plan_upload(path, name)  # the local files first: a typo must not wait on AWS
    aws = _runtime(ctx).aws()
    if bucket is None:
        bucket = hp.stack_outputs(aws, stack).bucket_name
        if not bucket:
            raise HpctlError(f"stack {stack} has no BucketName output: pass --bucket")
    from hpctl import render

    out = render.console()
    with render.byte_progress(out, f"{len(plan.files)} file(s)", plan.size) as advance:
        upload.upload(aws, bucket, plan, advance)
    out.print(
        f"uploaded {len(plan.files)} file(s), {plan.size:,} bytes, to s3://{bucket}/{plan.key} "
        f"-> {plan.fsx_path} on the cluster",
        markup=False,
    )


@app.command("cost")
def cost_command(
    ctx: typer.Context,
    instance_type: Annotated[str, typer.Option(help="Worker instance type.")] = "ml.trn1.32xlarge",
    count: Annotated[int, typer.Option(help="Number of worker instances.", min=1)] = 1,
    hours: Annotated[float | None, typer.Option(help="Run length in hours.", min=0)] = None,
    samples: Annotated[int | None, typer.Option(help="Training sequences per epoch (after packing).")] = None,
    epochs: Annotated[float, typer.Option(help="Epochs, with --samples.")] = 1,
    samples_per_second: Annotated[
        float,
        typer.Option(
            help="Throughput per instance; reference: LoRA 3.55, full fine-tuning 2.08 (Llama-3-8B, one trn1.32xlarge)."
        ),
    ] = pricing.REFERENCE_SAMPLES_PER_SECOND["lora"],
    price_per_hour: Annotated[
        float | None, typer.Option(help="Your USD per instance-hour (default: the built-in table).")
    ] = None,
    sacct: Annotated[
        Path | None,
        typer.Option(
            help=f"Actual cost of finished jobs from `sacct --parsable2 --noheader --format={pricing.SACCT_FORMAT}` output ('-' for stdin)."
        ),
    ] = None,
) -> None:
    """Estimated cost of a run, or actual cost of Slurm jobs.

    Prices come from a small dated table (EC2 list prices of the same hardware, a
    floor for HyperPod's ml.* rates); --price-per-hour uses yours.

    \b
    hpctl cost --hours 2 --count 2
    hpctl cost --samples 3760 --epochs 3 --samples-per-second 3.55   # ~53 min (LoRA reference)
    ssh trn1-lora sacct --parsable2 --noheader \\
        --format=JobID,JobName,NNodes,ElapsedRaw,State | hpctl cost --sacct -
    """
    _finite(hours=hours, epochs=epochs, samples_per_second=samples_per_second, price_per_hour=price_per_hour)
    if sum(x is not None for x in (hours, samples, sacct)) != 1:
        raise UsageError("give exactly one of --hours, --samples or --sacct")
    jobs = pricing.read_sacct(sacct) if sacct is not None else None  # the input first, then the price
    if price_per_hour is None:
        pricing.check_listed(instance_type)  # no region can price a type the table lacks: ask none
    rt = _runtime(ctx)
    region = None if price_per_hour is not None else rt.region or rt.aws().region_or_none
    rate = pricing.rate(instance_type, region, price_per_hour)
    from hpctl import render

    out = render.console()
    if jobs is not None:
        render.sacct_cost(out, jobs, rate)
    elif samples is not None:
        run_hours = pricing.training_hours(
            samples=samples, epochs=epochs, samples_per_second=samples_per_second, instances=count
        )
        out.print(
            f"{samples} samples x {epochs:g} epochs at {samples_per_second:g} samples/s per instance on {count}: "
            f"{run_hours * 60:.0f} min (assumes linear scaling across instances)",
            markup=False,
        )
        render.estimate(out, rate, count, run_hours)
    elif hours is not None:
        render.estimate(out, rate, count, hours)


app.command("report")(report_command)
