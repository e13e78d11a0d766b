"""The one typed configuration of the app, read from cdk.json's context (and `-c key=value`).

Every value is checked here, at synth, with an error naming its context key: a bad
instance type or FSx size would otherwise surface an hour into `cdk deploy`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from infra.instance_types import HYPERPOD_INSTANCE_TYPES, SOURCE_DATE, regions_offering
from infra.zones import AVAILABILITY_ZONES
from infra.zones import SOURCE as ZONES_SOURCE

# PERSISTENT_2 Lustre: 1.2 TiB, or any multiple of 2.4 TiB.
FSX_SMALLEST_GIB = 1200
FSX_STEP_GIB = 2400
FSX_THROUGHPUTS_MBPS_PER_TIB = (125, 250, 500, 1000)
EBS_MAX_GIB = 16384
BUCKET_NAME_MAX = 63
# The created bucket is <bucket_prefix>-<region>-<the last 12 hex digits of the stack id>.
STACK_ID_SUFFIX_LENGTH = 12


class ConfigError(ValueError):
    """A context value the stack cannot be built from; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"context key {key!r}: {message}")
        self.key = key


def read_cdk_context(path: Path) -> dict[str, Any]:
    """cdk.json's "context": what `cdk synth` builds from, and what `hpctl validate` checks before it."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    context = data.get("context", {}) if isinstance(data, dict) else None
    if not isinstance(context, dict):
        raise ValueError(f"{path}: 'context' must be an object")
    return context


@cache
def _api_instance_types() -> frozenset[str]:
    """Every name CreateCluster accepts, from the API model botocore ships."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("ClusterInstanceType").enum)


CONTROLLER_GROUP = "controller-machine"
LOGIN_GROUP = "login-group"
DEFAULT_WORKER_GROUP = "worker-group-1"
GROUP_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"  # CreateCluster's InstanceGroupName
# CreateCluster's TrainingPlanArn (the CloudFormation schema's pattern).
TRAINING_PLAN_ARN_PATTERN = r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:training-plan/.*"
NODE_PROVISIONING_MODES = ("Continuous",)
DEEP_HEALTH_CHECKS = ("InstanceStress", "InstanceConnectivity")
# Settings whose change after the first deploy replaces the cluster, FSx, the network or the
# bucket (README "Updates"; tests/infra/test_infra_updates.py derives the list from the
# CloudFormation schemas' createOnlyProperties and keeps this one honest).
CREATE_ONLY_SETTINGS = (
    "cluster_name",
    "vpc_cidr",
    "availability_zone",
    "availability_zone_id",
    "bucket_prefix",
    "existing_bucket_name",
)
NETWORK_KEYS = ("existing_vpc_id", "existing_subnet_id", "existing_security_group_id")
FSX_KEYS = ("existing_fsx_id", "existing_fsx_mount_name")


@dataclass(frozen=True, kw_only=True)
class WorkerGroup:
    """One worker instance group and the Slurm partition its nodes form."""

    name: str
    instance_type: str
    count: int
    partition: str
    training_plan_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """What to build. Field names are the cdk.json context keys."""

    stack_name: str = "HyperPodTrnLora"
    account: str | None = None  # None: the account of the deploying credentials
    region: str = "us-west-2"
    availability_zone: str = "us-west-2d"
    # A zone ID (usw2-az4) names the same physical zone in every account; set, it places
    # the subnets (and so the nodes and FSx) and availability_zone is only a label.
    availability_zone_id: str | None = None
    cluster_name: str = "trn1-lora"
    controller_instance_type: str = "ml.c5.xlarge"
    worker_instance_type: str = "ml.trn1.32xlarge"
    worker_count: int = 2
    login_instance_type: str | None = None  # None: no login group
    login_count: int = 1
    controller_volume_gib: int = 100
    worker_volume_gib: int = 500
    fsx_storage_capacity_gib: int = 1200
    fsx_throughput_per_unit: int = 250
    vpc_cidr: str = "10.0.0.0/16"
    bucket_prefix: str = "sagemaker-hyperpod-trn"
    existing_bucket_name: str | None = None  # adopt this bucket instead of creating one
    # Added to every resource, after (and over) the project's own tags; `-c tags='{"team":"ml"}'`.
    tags: Mapping[str, str] = field(default_factory=dict)
    # Several worker groups, [{"name", "instance_type", "count", "training_plan_arn"?}]; set, it
    # replaces worker_instance_type/worker_count, and each group is the Slurm partition of its name.
    worker_groups: tuple[WorkerGroup, ...] = ()
    training_plan_arn: str | None = None  # reserved capacity for the default worker group
    node_provisioning_mode: str | None = None  # "Continuous": nodes join as capacity arrives
    deep_health_checks: tuple[str, ...] = ()  # run on every worker before it joins Slurm
    # Bring your own network (all three together): the stack then creates no VPC, subnet or group.
    existing_vpc_id: str | None = None
    existing_subnet_id: str | None = None  # private, in the cluster's zone (hpctl validate checks)
    existing_security_group_id: str | None = None  # all traffic to and from itself (EFA, Lustre)
    # Bring your own FSx for Lustre (both together, with your own network): it gets the /s3 link.
    existing_fsx_id: str | None = None
    existing_fsx_mount_name: str | None = None
    # Deploy a change to a CREATE_ONLY_SETTINGS value anyway (the guard refuses it otherwise).
    allow_replacement: bool = False

    def __post_init__(self) -> None:
        self._check_names()
        self._check_placement()
        for key in ("controller_instance_type", "worker_instance_type", "login_instance_type"):
            self._check_instance_type(key)
        for key in ("worker_count", "login_count"):
            _at_least(key, getattr(self, key), 1)
        for key in ("controller_volume_gib", "worker_volume_gib"):
            value = getattr(self, key)
            if not 1 <= value <= EBS_MAX_GIB:
                raise ConfigError(key, f"must be 1..{EBS_MAX_GIB} GiB, got {value}")
        self._check_fsx()
        self._check_tags()
        self._check_workers()
        self._check_existing()

    def _check_existing(self) -> None:
        patterns = {
            "existing_vpc_id": r"vpc-[0-9a-f]{8}([0-9a-f]{9})?",
            "existing_subnet_id": r"subnet-[0-9a-f]{8}([0-9a-f]{9})?",
            "existing_security_group_id": r"sg-[0-9a-f]{8}([0-9a-f]{9})?",
            "existing_fsx_id": r"fs-[0-9a-f]{8}([0-9a-f]{9})?",
            "existing_fsx_mount_name": r"[a-z0-9]{3,8}",
        }
        for key, pattern in patterns.items():
            value = getattr(self, key)
            if value is not None and not re.fullmatch(pattern, value):
                example = pattern.split("-", 1)[0] + "-0123456789abcdef0" if "-" in pattern else "abcdwxyz"
                raise ConfigError(key, f"must look like {example}, got {value!r}")
        for together in (NETWORK_KEYS, FSX_KEYS):
            given = [key for key in together if getattr(self, key) is not None]
            if given and len(given) < len(together):
                missing = [key for key in together if key not in given]
                raise ConfigError(missing[0], f"is needed with {', '.join(given)}: set {', '.join(together)} together")
        if self.existing_fsx_id and not self.existing_subnet_id:
            raise ConfigError(
                "existing_fsx_id",
                "needs the network it lives in: set existing_vpc_id, existing_subnet_id and "
                "existing_security_group_id too (a new VPC could not reach it)",
            )

    def _check_workers(self) -> None:
        names = [group.name for group in self.workers]
        for index, group in enumerate(self.worker_groups):
            key = f"worker_groups[{index}]"
            if not re.fullmatch(GROUP_NAME_PATTERN, group.name):
                raise ConfigError("worker_groups", f"{key}.name must be 1-63 letters, digits and hyphens, got {group.name!r}")
            if names.count(group.name) > 1 or group.name in (CONTROLLER_GROUP, LOGIN_GROUP):
                raise ConfigError(
                    "worker_groups",
                    f"{key}.name {group.name!r} is taken (names must differ from each other, "
                    f"{CONTROLLER_GROUP!r} and {LOGIN_GROUP!r})",
                )
            self._check_type_value("worker_groups", group.instance_type, f"{key}.instance_type ")
            if group.count < 1:
                raise ConfigError("worker_groups", f"{key}.count must be at least 1, got {group.count}")
        for index, group in enumerate(self.workers):
            arn = group.training_plan_arn
            if arn is not None and not re.fullmatch(TRAINING_PLAN_ARN_PATTERN, arn):
                key = "training_plan_arn" if not self.worker_groups else "worker_groups"
                raise ConfigError(
                    key,
                    f"{'' if key == 'training_plan_arn' else f'worker_groups[{index}].training_plan_arn '}"
                    f"must be a SageMaker training plan ARN (arn:aws:sagemaker:<region>:<account>:training-plan/<name>), "
                    f"got {arn!r}",
                )
        if self.worker_groups and self.training_plan_arn is not None:
            raise ConfigError(
                "training_plan_arn", "applies to the default worker group: with worker_groups, set it per group"
            )
        if self.node_provisioning_mode is not None and self.node_provisioning_mode not in NODE_PROVISIONING_MODES:
            raise ConfigError(
                "node_provisioning_mode",
                f"must be one of {', '.join(NODE_PROVISIONING_MODES)} (or null), got {self.node_provisioning_mode!r}",
            )
        unknown = [check for check in self.deep_health_checks if check not in DEEP_HEALTH_CHECKS]
        if unknown or len(set(self.deep_health_checks)) != len(self.deep_health_checks):
            raise ConfigError(
                "deep_health_checks",
                f"must list distinct checks among {', '.join(DEEP_HEALTH_CHECKS)}, got {list(self.deep_health_checks)}",
            )

    @property
    def workers(self) -> tuple[WorkerGroup, ...]:
        """The worker groups the cluster gets: `worker_groups`, or one group of
        worker_count x worker_instance_type whose partition is the instance family (trn1)."""
        if self.worker_groups:
            return self.worker_groups
        return (
            WorkerGroup(
                name=DEFAULT_WORKER_GROUP,
                instance_type=self.worker_instance_type,
                count=self.worker_count,
                partition=self.worker_partition,
                training_plan_arn=self.training_plan_arn,
            ),
        )

    def _check_tags(self) -> None:
        for key, value in self.tags.items():
            # AWS tag rules: key 1-128, value 0-256 characters, "aws:" reserved.
            if not (isinstance(key, str) and 1 <= len(key) <= 128 and not key.lower().startswith("aws:")):
                raise ConfigError("tags", f"tag key {key!r} must be 1-128 characters, not starting with 'aws:'")
            if not (isinstance(value, str) and len(value) <= 256):
                raise ConfigError("tags", f"tag {key!r} must have a string value of at most 256 characters")
            if not re.fullmatch(r"[\w\s.:/=+\-@]*", key + value):
                raise ConfigError(
                    "tags", f"tag {key}={value} may hold only letters, digits, spaces and _ . : / = + - @"
                )

    def _check_names(self) -> None:
        # HyperPod cluster names: 1-63 alphanumerics and hyphens, starting with a letter or digit.
        if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", self.cluster_name):
            raise ConfigError(
                "cluster_name", f"must be 1-63 letters, digits and hyphens, got {self.cluster_name!r}"
            )
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", self.stack_name):
            raise ConfigError("stack_name", f"is not a CloudFormation stack name: {self.stack_name!r}")
        if self.account is not None and not re.fullmatch(r"\d{12}", self.account):
            raise ConfigError("account", f"must be a 12-digit account id, got {self.account!r}")
        # HyperPod's managed instance policy only reaches buckets named sagemaker-*.
        if not re.fullmatch(r"sagemaker-[a-z0-9-]*[a-z0-9]", self.bucket_prefix):
            raise ConfigError(
                "bucket_prefix",
                f"must start with 'sagemaker-' and hold only lowercase letters, digits and hyphens, "
                f"got {self.bucket_prefix!r}",
            )
        longest = len(self.bucket_prefix) + len(f"-{self.region}-") + STACK_ID_SUFFIX_LENGTH
        if longest > BUCKET_NAME_MAX:
            raise ConfigError(
                "bucket_prefix",
                f"is too long: the bucket name adds the region and 12 characters of the stack id and "
                f"must stay within {BUCKET_NAME_MAX} characters ({longest})",
            )
        existing = self.existing_bucket_name
        if existing is not None and not (
            re.fullmatch(r"sagemaker-[a-z0-9.-]*[a-z0-9]", existing) and len(existing) <= BUCKET_NAME_MAX
        ):
            raise ConfigError(
                "existing_bucket_name",
                f"must be an S3 bucket name starting with 'sagemaker-' (HyperPod nodes read only those), "
                f"got {existing!r}",
            )

    def _check_placement(self) -> None:
        if self.region not in HYPERPOD_INSTANCE_TYPES:
            raise ConfigError(
                "region",
                f"HyperPod is not offered in {self.region!r} (known regions as of {SOURCE_DATE}: "
                f"{', '.join(sorted(HYPERPOD_INSTANCE_TYPES))})",
            )
        zones = AVAILABILITY_ZONES[self.region]
        if self.availability_zone not in zones.names(self.region):
            raise ConfigError(
                "availability_zone",
                f"{self.availability_zone!r} is not a zone of region {self.region} "
                f"(its zones: {', '.join(zones.names(self.region))}; from {ZONES_SOURCE})",
            )
        if self.availability_zone_id is not None and self.availability_zone_id not in zones.ids():
            raise ConfigError(
                "availability_zone_id",
                f"must be a zone ID of region {self.region}, one of {', '.join(zones.ids())} "
                f"(from {ZONES_SOURCE}), got {self.availability_zone_id!r}",
            )
        self._check_vpc_cidr()

    def _check_vpc_cidr(self) -> None:
        wanted = "a 10.x.0.0/16 block (x from 0 to 255)"
        try:
            network = ipaddress.IPv4Network(self.vpc_cidr)
        except ValueError:
            raise ConfigError("vpc_cidr", f"must be {wanted}, got {self.vpc_cidr!r}") from None
        if network.prefixlen != 16 or not network.subnet_of(ipaddress.IPv4Network("10.0.0.0/8")):
            raise ConfigError("vpc_cidr", f"must be {wanted}, got {self.vpc_cidr!r}")

    def _check_instance_type(self, key: str) -> None:
        value = getattr(self, key)
        if value is not None:
            self._check_type_value(key, value)

    def _check_type_value(self, key: str, value: str, where_in_key: str = "") -> None:
        if value not in _api_instance_types():
            raise ConfigError(
                key, f"{where_in_key}{value!r} is not a HyperPod instance type (e.g. ml.trn1.32xlarge)"
            )
        if value not in HYPERPOD_INSTANCE_TYPES[self.region]:
            where = ", ".join(regions_offering(value)) or "no region in infra/instance_types.py"
            raise ConfigError(
                key,
                f"{where_in_key}{value} is not offered by HyperPod in {self.region} "
                f"(as of {SOURCE_DATE}; offered in: {where})",
            )

    def _check_fsx(self) -> None:
        capacity = self.fsx_storage_capacity_gib
        if capacity != FSX_SMALLEST_GIB and (capacity <= 0 or capacity % FSX_STEP_GIB):
            raise ConfigError(
                "fsx_storage_capacity_gib",
                f"PERSISTENT_2 takes {FSX_SMALLEST_GIB} GiB or a multiple of {FSX_STEP_GIB} GiB, got {capacity}",
            )
        if self.fsx_throughput_per_unit not in FSX_THROUGHPUTS_MBPS_PER_TIB:
            raise ConfigError(
                "fsx_throughput_per_unit",
                f"must be one of {', '.join(map(str, FSX_THROUGHPUTS_MBPS_PER_TIB))} MB/s/TiB, "
                f"got {self.fsx_throughput_per_unit}",
            )

    @property
    def worker_partition(self) -> str:
        """The Slurm partition for the workers: the instance family, e.g. trn1."""
        return self.worker_instance_type.split(".")[1]

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> ClusterConfig:
        """Read every field from `get` (e.g. node.try_get_context); absent keys keep defaults.

        Values from cdk.json arrive typed, values from `-c key=value` as strings; both work.
        """
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = get(item.name)
            if raw is None:
                continue
            parse = _PARSERS.get(item.name)
            value = parse(item.name, raw) if parse else _coerce(item.name, raw, int if item.type == "int" else str)
            if value is None and "None" not in str(item.type):
                raise ConfigError(item.name, "must not be empty")
            values[item.name] = value
        return cls(**values)

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> ClusterConfig:
        """From a whole context, refusing keys that look like ours but are not: a typo in
        `-c worker_cont=4`, or `worker-count`, `workerCount`, `Worker_count`, must not
        silently deploy the default."""
        known = sorted(item.name for item in fields(cls))
        for key in context:
            problem = _unknown_key_problem(key, known)
            if problem:
                raise ConfigError(key, problem)
        return cls.from_context(context.get)


def _unknown_key_problem(key: str, known: list[str]) -> str | None:
    """Why `key` is refused, or None for a setting or a key that is CDK's own."""
    if key in known:
        return None
    # CDK's own keys are namespaced ("@aws-cdk/...", "aws:cdk:...", "availability-zones:...").
    if key.startswith("@") or ":" in key or "/" in key:
        return None
    normal = re.sub(r"[\s_-]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip())).lower()
    if normal in known:
        return f"is not a setting: the setting is spelt {normal!r}"
    close = difflib.get_close_matches(normal, known, n=1, cutoff=0.8)
    if close:
        return f"is not a setting: did you mean {close[0]!r}?"
    if re.fullmatch(r"[a-z][a-z0-9_]*", key):
        return f"is not a setting; the settings are: {', '.join(known)}"
    return None  # e.g. the CDK CLI's own "acknowledged-issue-numbers"


def _json(key: str, raw: Any, empty: Any) -> Any:
    """cdk.json gives objects and lists as such; `-c key='...'` gives their JSON text."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw) if raw.strip() else empty
    except json.JSONDecodeError:
        raise ConfigError(key, f"must be JSON ({type(empty).__name__}), got {raw!r}") from None


def _parse_tags(key: str, raw: Any) -> dict[str, Any]:
    value = _json(key, raw, {})
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be an object of names to values, got {value!r}")
    return dict(value)


def _parse_checks(key: str, raw: Any) -> tuple[str, ...]:
    value = _json(key, raw, [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(key, f"must be a list of names, got {value!r}")
    return tuple(value)


_GROUP_KEYS = {"name": str, "instance_type": str, "count": int, "training_plan_arn": str}


def _parse_worker_groups(key: str, raw: Any) -> tuple[WorkerGroup, ...]:
    value = _json(key, raw, [])
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list of {{name, instance_type, count}} objects, got {value!r}")
    groups = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(key, f"{where} must be an object with name, instance_type, count, got {item!r}")
        for name in item:
            if name not in _GROUP_KEYS:
                close = difflib.get_close_matches(str(name), list(_GROUP_KEYS), n=1)
                hint = f": did you mean {close[0]!r}?" if close else f"; the keys are {', '.join(_GROUP_KEYS)}"
                raise ConfigError(key, f"{where} has no key {name!r}{hint}")
        missing = [name for name in ("name", "instance_type", "count") if name not in item]
        if missing:
            raise ConfigError(key, f"{where} needs {', '.join(missing)}")
        count = item["count"]
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(key, f"{where}.count must be a whole number, got {count!r}")
        for name in ("name", "instance_type", "training_plan_arn"):
            if name in item and not isinstance(item[name], str):
                raise ConfigError(key, f"{where}.{name} must be a string, got {item[name]!r}")
        groups.append(
            WorkerGroup(
                name=item["name"],
                instance_type=item["instance_type"],
                count=count,
                partition=item["name"],
                training_plan_arn=item.get("training_plan_arn"),
            )
        )
    return tuple(groups)


def _parse_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ConfigError(key, f"must be true or false, got {raw!r}")


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "allow_replacement": _parse_bool,
    "tags": _parse_tags,
    "worker_groups": _parse_worker_groups,
    "deep_health_checks": _parse_checks,
}


def _coerce(key: str, raw: Any, kind: type) -> Any:
    if kind is int:
        if isinstance(raw, bool):
            raise ConfigError(key, f"must be a whole number, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a whole number, got {raw!r}") from None
    if not isinstance(raw, str):
        raise ConfigError(key, f"must be a string, got {raw!r}")
    # `-c login_instance_type=` (empty) switches an optional value off.
    return raw.strip() or None


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(key, f"must be at least {minimum}, got {value}")
