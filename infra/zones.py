"""Availability zones per region, so a zone name or zone ID from another region (or a
typo such as us-west-2z) fails at synth instead of at CreateSubnet.

Zone *names* are shuffled per account (us-west-2d in one account is another physical
zone in the next); zone *IDs* (usw2-az4) are the same everywhere, which is why the
HyperPod reference templates place their subnets by ID. Which names and IDs a region
has comes from the snapshot of EC2's DescribeAvailabilityZones shipped in moto 5.2.6
(moto/ec2/models/availability_zones_and_regions.py), for the regions of
infra/instance_types.py; extend the table when AWS opens a zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SOURCE = "moto 5.2.6's DescribeAvailabilityZones snapshot"


@dataclass(frozen=True)
class RegionZones:
    letters: str  # us-west-2 + a letter: the names an account sees
    id_prefix: str  # usw2: zone IDs are <id_prefix>-az<N>
    id_numbers: tuple[int, ...]

    def names(self, region: str) -> list[str]:
        return [f"{region}{letter}" for letter in self.letters]

    def ids(self) -> list[str]:
        return [f"{self.id_prefix}-az{n}" for n in self.id_numbers]


AVAILABILITY_ZONES: Mapping[str, RegionZones] = {
    "us-east-1": RegionZones("abcdef", "use1", (1, 2, 3, 4, 5, 6)),
    "us-east-2": RegionZones("abc", "use2", (1, 2, 3)),
    "us-west-2": RegionZones("abcd", "usw2", (1, 2, 3, 4)),
    "ap-south-1": RegionZones("abc", "aps1", (1, 2, 3)),
    "ap-southeast-2": RegionZones("abc", "apse2", (1, 2, 3)),
    "ap-northeast-1": RegionZones("acd", "apne1", (1, 2, 4)),
    "ap-southeast-1": RegionZones("abc", "apse1", (1, 2, 3)),
    "eu-central-1": RegionZones("abc", "euc1", (1, 2, 3)),
    "eu-north-1": RegionZones("abc", "eun1", (1, 2, 3)),
    "eu-west-1": RegionZones("abc", "euw1", (1, 2, 3)),
    "eu-west-2": RegionZones("abc", "euw2", (1, 2, 3)),
    "sa-east-1": RegionZones("abc", "sae1", (1, 2, 3)),
}
