"""Pre-flight checks before `cdk deploy`: each finds one way cluster creation would fail
an hour in, and says what to change.

The plan comes from cdk.json's context (what the stack would create) and/or ids
of existing network and storage resources the cluster would use.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
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
class Plan:
    """What the cluster will need, and which existing resources (by id) to check."""

    region: str
    availability_zone: str
    worker_instance_type: str
    worker_count: int
    controller_instance_type: str
    login_instance_type: str | None = None
    login_count: int = 0
    subnet_id: str | None = None
    security_group_id: str | None = None
    fsx_id: str | None = None
    zone_from_option: bool = False  # --az given: a subnet elsewhere is then a conflict
    availability_zone_id: str | None = None  # set: the stack places its subnets by this ID

    @property
    def instance_demand(self) -> Counter[str]:
        """Instances per type, controller and login nodes included (quotas count every node)."""
        demand = Counter({self.worker_instance_type: self.worker_count})
        demand[self.controller_instance_type] += 1
        if self.login_instance_type:
            demand[self.login_instance_type] += self.login_count
        return demand


def plan_from_context(
    context: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    subnet_id: str | None = None,
    security_group_id: str | None = None,
    fsx_id: str | None = None,
) -> Plan:
    """The plan `cdk deploy` would build: cdk.json's context with the command line's overrides
    (same keys), checked by infra's own ClusterConfig so both agree on every value."""
    from infra.config import ClusterConfig, ConfigError

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        config = ClusterConfig.from_mapping({**context, **given})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return Plan(
        region=config.region,
        availability_zone=config.availability_zone,
        worker_instance_type=config.worker_instance_type,
        worker_count=config.worker_count,
        controller_instance_type=config.controller_instance_type,
        login_instance_type=config.login_instance_type,
        login_count=config.login_count,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
        fsx_id=fsx_id,
        zone_from_option="availability_zone" in given,
        availability_zone_id=config.availability_zone_id,
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
        if self.plan.availability_zone_id and not self.plan.subnet_id and not self.plan.zone_from_option:
            self.check_offering(self.plan.worker_instance_type, self.plan.availability_zone_id, by_id=True)
        else:
            self.check_offering(self.plan.worker_instance_type, zone)
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

    def check_offering(self, instance_type: str, location: str, *, by_id: bool = False) -> None:
        """`location` is a zone name, or with `by_id` a zone ID: IDs name the same physical zone in every
        account, names are shuffled per account."""
        ec2_type = instance_type.removeprefix("ml.")
        offered = self._offered(ec2_type, "availability-zone-id" if by_id else "availability-zone")
        check = f"{ec2_type} in {location}"
        where = f"zone ID {location}" if by_id else location
        if location in offered:
            self._add(check, Status.OK, f"{ec2_type} is offered in {where}")
            return
        if not offered:
            advice = f"{ec2_type} is not offered in {self.aws.region}: pick another --region"
        elif by_id:
            advice = (f"{ec2_type} is not offered in {where}: set availability_zone_id to one of "
                      f"{', '.join(offered)}")
        else:  # IDs are what to write into cdk.json
            ids = self._offered(ec2_type, "availability-zone-id")
            advice = (f"{ec2_type} is not offered in {where}: use a subnet in {', '.join(offered)} "
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
            if have is None:
                self._add(
                    f"quota {instance_type}",
                    Status.FAIL,
                    f"no '{name}' quota in {self.aws.region}: request {wanted} in the Service Quotas console (SageMaker)",
                )
            elif have < wanted:
                self._add(
                    f"quota {instance_type}",
                    Status.FAIL,
                    f"'{name}' is {have:g}, the cluster needs {wanted}: request an increase to {wanted} (Service Quotas, SageMaker)",
                )
            else:
                self._add(
                    f"quota {instance_type}", Status.OK, f"'{name}' is {have:g}, the cluster needs {wanted}"
                )
        total = quotas.get(TOTAL_INSTANCES_QUOTA)
        needed = sum(demand.values())
        if total is not None and total < needed:
            self._add(
                "quota total instances",
                Status.FAIL,
                f"'{TOTAL_INSTANCES_QUOTA}' is {total:g}, the cluster needs {needed}: request an increase",
            )

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
