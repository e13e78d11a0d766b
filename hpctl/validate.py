"""Pre-flight checks before `cdk deploy`: each finds one way cluster creation would fail
an hour in, and says what to change.

The plan comes from cdk.json's context (what the stack would create) and/or ids
of existing network and storage resources the cluster would use.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpctl.aws import Aws, HpctlError, UsageError, aws_errors

HYPERPOD_SERVICE_CODE = "sagemaker"
# Applies across every HyperPod cluster in the account and region; checked when the account lists it.
TOTAL_INSTANCES_QUOTA = "Total number of instances allowed across SageMaker HyperPod clusters"


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"  # ran, and found something to look at that does not block the deploy
    FAIL = "fail"
    NOT_RUN = "not run"  # could not be checked (e.g. no permission to read it): neither passed nor failed


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


def summary(results: list[Finding]) -> str:
    """`N passed, M failed`, plus `, K not run` when a check could not be made: not run is not passed."""
    passed = sum(f.status in (Status.OK, Status.WARN) for f in results)
    failed = sum(f.status is Status.FAIL for f in results)
    not_run = sum(f.status is Status.NOT_RUN for f in results)
    return f"{passed} passed, {failed} failed" + (f", {not_run} not run" if not_run else "")


@dataclass(frozen=True)
class NodeGroup:
    """Nodes of one instance type the cluster asks for: a worker group, the controller or the login nodes."""

    name: str
    instance_type: str
    count: int


@dataclass(frozen=True)
class Plan:
    """What the cluster will need, and which existing resources (by id) to check."""

    region: str
    availability_zone: str
    workers: tuple[NodeGroup, ...]
    controller: NodeGroup
    login: NodeGroup | None = None
    subnet_id: str | None = None
    security_group_id: str | None = None
    fsx_id: str | None = None
    zone_from_option: bool = False  # --az given: a subnet elsewhere is then a conflict
    availability_zone_id: str | None = None  # set: the stack places its subnets by this ID
    named_groups: bool = False  # the workers come from worker_groups: findings name the groups

    @property
    def node_groups(self) -> tuple[NodeGroup, ...]:
        """Every group of nodes, controller and login nodes included (quotas count every node)."""
        return (*self.workers, self.controller, *((self.login,) if self.login else ()))

    @property
    def instance_demand(self) -> Counter[str]:
        """Instances per type, summed over every group of that type."""
        demand: Counter[str] = Counter()
        for group in self.node_groups:
            demand[group.instance_type] += group.count
        return demand

    def worker_types(self) -> dict[str, list[str]]:
        """Each worker instance type (in the order the groups name them) and the groups of that type."""
        types: dict[str, list[str]] = {}
        for group in self.workers:
            types.setdefault(group.instance_type, []).append(group.name)
        return types


def plan_from_context(
    context: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    subnet_id: str | None = None,
    security_group_id: str | None = None,
    fsx_id: str | None = None,
) -> Plan:
    """The plan `cdk deploy` would build: cdk.json's context with the command line's overrides
    (same keys), checked by infra's own ClusterConfig so both agree on every value, the worker
    groups included (ClusterConfig.workers: `worker_groups`, or the one default group)."""
    from infra.config import CONTROLLER_GROUP, LOGIN_GROUP, ClusterConfig, ConfigError

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        config = ClusterConfig.from_mapping({**context, **given})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    single = [key for key in ("worker_instance_type", "worker_count") if key in given]
    if config.worker_groups and single:  # they would be silently ignored: the groups replace that group
        verb = "are" if len(single) > 1 else "is"
        raise UsageError(
            f"{' and '.join(single)} {verb} given on the command line, but the context sets worker_groups, "
            "which replaces the one default worker group: change the groups in cdk.json, or pass --no-context"
        )
    login = config.login_instance_type
    return Plan(
        region=config.region,
        availability_zone=config.availability_zone,
        workers=tuple(NodeGroup(g.name, g.instance_type, g.count) for g in config.workers),
        controller=NodeGroup(CONTROLLER_GROUP, config.controller_instance_type, 1),
        login=NodeGroup(LOGIN_GROUP, login, config.login_count) if login else None,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
        fsx_id=fsx_id,
        zone_from_option="availability_zone" in given,
        availability_zone_id=config.availability_zone_id,
        named_groups=bool(config.worker_groups),
    )


def read_context(path: Path) -> dict[str, Any]:
    from infra.config import read_cdk_context

    try:
        return read_cdk_context(path)
    except FileNotFoundError:
        raise UsageError(f"{path} not found: run from the project root or pass --context-file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass
class Validator:
    """Runs the checks a plan calls for; `findings` collects the results in order."""

    aws: Aws
    plan: Plan
    findings: list[Finding] = field(default_factory=list)

    def run(self) -> list[Finding]:
        if self.aws.region != self.plan.region:
            raise HpctlError(
                f"the plan deploys to {self.plan.region} but AWS calls would go to {self.aws.region}: "
                f"pass --region {self.plan.region}"
            )
        zone = self._zone()
        zone_id = self.plan.availability_zone_id
        by_id = zone_id is not None and not self.plan.subnet_id and not self.plan.zone_from_option
        for instance_type, groups in self.plan.worker_types().items():
            named = groups if self.plan.named_groups else ()
            self.check_offering(instance_type, zone_id if by_id and zone_id else zone, by_id=by_id, groups=named)
        self.check_quotas()
        if self.plan.subnet_id:
            self.check_subnet_private(self.plan.subnet_id)
        if self.plan.security_group_id:
            self.check_security_group(self.plan.security_group_id)
        if self.plan.fsx_id:
            self.check_fsx_zone(self.plan.fsx_id, zone)
        return self.findings

    def _add(self, check: str, status: Status, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))

    def _ec2(self) -> Any:
        return self.aws.client("ec2")

    def _subnet(self, subnet_id: str) -> dict[str, Any]:
        with aws_errors():
            return self._ec2().describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]

    def _zone(self) -> str:
        """The cluster's AZ: an existing subnet's, else the plan's."""
        if not self.plan.subnet_id:
            return self.plan.availability_zone
        subnet_zone = str(self._subnet(self.plan.subnet_id)["AvailabilityZone"])
        if self.plan.zone_from_option and subnet_zone != self.plan.availability_zone:
            self._add(
                "availability zone",
                Status.FAIL,
                f"--az is {self.plan.availability_zone} but subnet {self.plan.subnet_id} is in {subnet_zone}: "
                "make them agree",
            )
        return subnet_zone

    def _offered(self, ec2_type: str, location_type: str) -> list[str]:
        """The zones (`availability-zone`) or zone IDs (`availability-zone-id`) offering a type."""
        with aws_errors():
            pages = (
                self._ec2()
                .get_paginator("describe_instance_type_offerings")
                .paginate(LocationType=location_type, Filters=[{"Name": "instance-type", "Values": [ec2_type]}])
            )
            return sorted({o["Location"] for page in pages for o in page["InstanceTypeOfferings"]})

    def check_offering(
        self, instance_type: str, location: str, *, by_id: bool = False, groups: Sequence[str] = ()
    ) -> None:
        """`location` is a zone name, or with `by_id` a zone ID: IDs name the same physical zone in every
        account, names are shuffled per account. `groups`, the worker groups of this type, are named
        in the finding (cdk.json's worker_groups; the one default group goes unnamed)."""
        ec2_type = instance_type.removeprefix("ml.")
        offered = self._offered(ec2_type, "availability-zone-id" if by_id else "availability-zone")
        check = f"{ec2_type} in {location}"
        where = f"zone ID {location}" if by_id else location
        subject = ec2_type
        if groups:
            subject += f" (worker group{'s' if len(groups) > 1 else ''} {', '.join(groups)})"
        if location in offered:
            self._add(check, Status.OK, f"{subject} is offered in {where}")
            return
        if not offered:
            advice = f"{subject} is not offered in {self.aws.region}: pick another --region"
        elif by_id:
            advice = (f"{subject} is not offered in {where}: set availability_zone_id to one of "
                      f"{', '.join(offered)}")
        else:  # IDs are what to write into cdk.json
            ids = self._offered(ec2_type, "availability-zone-id")
            advice = (f"{subject} is not offered in {where}: use a subnet in {', '.join(offered)} "
                      f"(zone IDs {', '.join(ids)}: set availability_zone_id)")
        self._add(check, Status.FAIL, advice)

    def _quotas(self) -> dict[str, float]:
        """Quota values by name: the account's applied value where it has one, else the default
        (ListServiceQuotas leaves out quotas never changed from their default)."""
        client = self.aws.client("service-quotas")
        values: dict[str, float] = {}
        with aws_errors():
            for operation in ("list_aws_default_service_quotas", "list_service_quotas"):
                for page in client.get_paginator(operation).paginate(ServiceCode=HYPERPOD_SERVICE_CODE):
                    values.update({q["QuotaName"]: float(q["Value"]) for q in page["Quotas"]})
        return values

    def check_quotas(self) -> None:
        try:
            quotas = self._quotas()
        except HpctlError as exc:  # e.g. no servicequotas:List* permission: the other checks still help
            self._add("quotas", Status.NOT_RUN, f"could not read SageMaker quotas: {exc}")
            return
        demand = self.plan.instance_demand
        for instance_type, wanted in sorted(demand.items()):
            name = f"{instance_type} for cluster usage"
            have = quotas.get(name)
            needs = f"{wanted}{self._breakdown(instance_type)}"
            if have is None:
                self._add(
                    f"quota {instance_type}",
                    Status.FAIL,
                    f"no '{name}' quota in {self.aws.region}: request {needs} in the Service Quotas console (SageMaker)",
                )
            elif have < wanted:
                self._add(
                    f"quota {instance_type}",
                    Status.FAIL,
                    f"'{name}' is {have:g}, the cluster needs {needs}: request an increase to {wanted} (Service Quotas, SageMaker)",
                )
            else:
                self._add(
                    f"quota {instance_type}", Status.OK, f"'{name}' is {have:g}, the cluster needs {needs}"
                )
        total = quotas.get(TOTAL_INSTANCES_QUOTA)
        needed = sum(demand.values())
        if total is not None and total < needed:
            self._add(
                "quota total instances",
                Status.FAIL,
                f"'{TOTAL_INSTANCES_QUOTA}' is {total:g}, the cluster needs {needed}: request an increase",
            )

    def _breakdown(self, instance_type: str) -> str:
        """` (trn1-a 2 + trn1-b 3)` where several groups share the type's quota, else nothing."""
        groups = [g for g in self.plan.node_groups if g.instance_type == instance_type]
        if len(groups) < 2:
            return ""
        return f" ({' + '.join(f'{g.name} {g.count}' for g in groups)})"

    def check_subnet_private(self, subnet_id: str) -> None:
        subnet = self._subnet(subnet_id)
        with aws_errors():
            tables = self._ec2().describe_route_tables(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
            )["RouteTables"]
            if not tables:  # no explicit association: the VPC's main table applies
                tables = self._ec2().describe_route_tables(
                    Filters=[
                        {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                        {"Name": "association.main", "Values": ["true"]},
                    ]
                )["RouteTables"]
        default_routes = [
            r for t in tables for r in t.get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"
        ]
        check = f"subnet {subnet_id} private"
        if any(str(r.get("GatewayId", "")).startswith("igw-") for r in default_routes):
            self._add(
                check,
                Status.FAIL,
                f"subnet {subnet_id} routes 0.0.0.0/0 to an internet gateway: use a private subnet (default route to a NAT gateway)",
            )
        elif subnet.get("MapPublicIpOnLaunch"):
            self._add(
                check, Status.FAIL, f"subnet {subnet_id} assigns public IPs on launch: use a private subnet"
            )
        elif not any(r.get("NatGatewayId") for r in default_routes):
            self._add(
                check,
                Status.WARN,
                f"subnet {subnet_id} is private but has no NAT route: nodes need VPC endpoints for S3, SSM and SageMaker",
            )
        else:
            self._add(check, Status.OK, f"subnet {subnet_id} is private with a NAT route")

    def check_security_group(self, group_id: str) -> None:
        with aws_errors():
            group = self._ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        missing = [
            direction
            for direction, rules in (
                ("ingress", group.get("IpPermissions", [])),
                ("egress", group.get("IpPermissionsEgress", [])),
            )
            if not _allows_all_from_self(rules, group_id)
        ]
        check = f"security group {group_id}"
        if missing:
            self._add(
                check,
                Status.FAIL,
                f"{group_id} lacks a self-referencing all-traffic {' and '.join(missing)} rule: "
                f"add protocol -1 with {group_id} as {'source/destination' if len(missing) == 2 else 'peer'} (EFA and Slurm need it)",
            )
        else:
            self._add(check, Status.OK, f"{group_id} allows all traffic to and from itself")

    def check_fsx_zone(self, fsx_id: str, zone: str) -> None:
        with aws_errors():
            systems = self.aws.client("fsx").describe_file_systems(FileSystemIds=[fsx_id])["FileSystems"]
        subnet_ids = systems[0].get("SubnetIds", [])
        fsx_zones = sorted({self._subnet(s)["AvailabilityZone"] for s in subnet_ids})
        check = f"FSx {fsx_id} zone"
        if zone in fsx_zones:
            self._add(check, Status.OK, f"{fsx_id} is in {zone} with the cluster")
        else:
            self._add(
                check,
                Status.FAIL,
                f"{fsx_id} is in {', '.join(fsx_zones) or 'no known zone'}, the cluster in {zone}: "
                "put both in one AZ (cross-AZ Lustre is slow and billed)",
            )


def _allows_all_from_self(rules: list[dict[str, Any]], group_id: str) -> bool:
    return any(
        rule.get("IpProtocol") == "-1"
        and any(p.get("GroupId") == group_id for p in rule.get("UserIdGroupPairs", []))
        for rule in rules
    )
