"""Which HyperPod instance types each region offers, so a wrong type fails at synth
rather than an hour into CreateCluster.

Whether a name exists at all comes from the API itself (botocore's
ClusterInstanceType enum, see config.py); this table says where. Sources, as
compiled on SOURCE_DATE: the regions SageMaker HyperPod is offered in (HyperPod
documentation), intersected for the Trainium types with EC2's regional offerings
(the snapshot shipped in moto 5.2.5). Only the types this project may use are
listed: extend the table rather than bypass it, and check `hpctl validate`, which
asks the real account for zone-level offerings.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCE_DATE = "2026-11-23"

_GENERAL = frozenset(
    {
        "ml.c5.xlarge",
        "ml.c5.2xlarge",
        "ml.c5.4xlarge",
        "ml.c5.9xlarge",
        "ml.m5.xlarge",
        "ml.m5.2xlarge",
        "ml.m5.4xlarge",
        "ml.m5.12xlarge",
        "ml.t3.xlarge",
        "ml.t3.2xlarge",
    }
)
_TRN1 = frozenset({"ml.trn1.32xlarge"})
_TRN1N = frozenset({"ml.trn1n.32xlarge"})
_TRN2 = frozenset({"ml.trn2.48xlarge"})

HYPERPOD_INSTANCE_TYPES: Mapping[str, frozenset[str]] = {
    "us-east-1": _GENERAL | _TRN1 | _TRN1N,
    "us-east-2": _GENERAL | _TRN1 | _TRN1N | _TRN2,
    "us-west-2": _GENERAL | _TRN1 | _TRN1N,
    "ap-south-1": _GENERAL | _TRN1,
    "ap-southeast-2": _GENERAL | _TRN1,
    "ap-northeast-1": _GENERAL,
    "ap-southeast-1": _GENERAL,
    "eu-central-1": _GENERAL,
    "eu-north-1": _GENERAL,
    "eu-west-1": _GENERAL,
    "eu-west-2": _GENERAL,
    "sa-east-1": _GENERAL,
}


def regions_offering(instance_type: str) -> list[str]:
    """Regions where HyperPod offers `instance_type`, for error messages."""
    return sorted(region for region, types in HYPERPOD_INSTANCE_TYPES.items() if instance_type in types)
