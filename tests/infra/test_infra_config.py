"""The config: defaults build, `-c` strings are read, and every bad value names its key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from infra.build import ROOT, cdk_json_context
from infra.config import ClusterConfig, ConfigError
from infra.instance_types import HYPERPOD_INSTANCE_TYPES
from infra.zones import AVAILABILITY_ZONES


def test_cdk_json_context_builds_the_default_config() -> None:
    config = ClusterConfig.from_mapping(cdk_json_context())

    assert config == ClusterConfig()


def test_command_line_strings_are_converted_to_the_field_types() -> None:
    config = ClusterConfig.from_mapping({"worker_count": "4", "fsx_storage_capacity_gib": "4800"})

    assert (config.worker_count, config.fsx_storage_capacity_gib) == (4, 4800)


def test_an_empty_login_instance_type_means_no_login_group() -> None:
    assert ClusterConfig.from_mapping({"login_instance_type": ""}).login_instance_type is None


def test_the_worker_partition_is_the_instance_family() -> None:
    assert ClusterConfig().worker_partition == "trn1"


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("worker_instance_type", "ml.trn1.64xlarge", "not a HyperPod instance type"),
        ("worker_instance_type", "ml.trn2.48xlarge", "not offered by HyperPod in us-west-2"),
        ("controller_instance_type", "c5.xlarge", "not a HyperPod instance type"),
        ("login_instance_type", "ml.nope", "not a HyperPod instance type"),
        ("worker_count", 0, "at least 1"),
        ("worker_count", "two", "whole number"),
        ("login_count", -1, "at least 1"),
        ("fsx_storage_capacity_gib", 2400 + 1200, "multiple of 2400"),
        ("fsx_storage_capacity_gib", 0, "multiple of 2400"),
        ("fsx_throughput_per_unit", 200, "125, 250, 500, 1000"),
        ("worker_volume_gib", 0, "1..16384"),
        ("controller_volume_gib", 20000, "1..16384"),
        ("region", "mars-north-1", "not offered"),
        ("availability_zone", "us-east-1a", "zone of region us-west-2"),
        ("availability_zone", "us-west-2z", "not a zone of region us-west-2"),
        ("availability_zone_id", "use1-az4", "zone ID of region us-west-2"),
        ("availability_zone_id", "usw2-az9", "one of usw2-az1, usw2-az2, usw2-az3, usw2-az4"),
        ("availability_zone_id", "us-west-2d", "zone ID of region us-west-2"),
        ("vpc_cidr", "10.300.0.0/16", "x from 0 to 255"),
        ("vpc_cidr", "10.0.0.0/20", "10.x.0.0/16"),
        ("vpc_cidr", "10.0.0.1/16", "10.x.0.0/16"),
        ("cluster_name", "has_underscore", "letters, digits and hyphens"),
        ("cluster_name", "", "must not be empty"),
        ("bucket_prefix", "my-bucket", "start with 'sagemaker-'"),
        ("bucket_prefix", "sagemaker-" + "x" * 40, "too long"),
        ("existing_bucket_name", "my-bucket", "starting with 'sagemaker-'"),
        ("existing_bucket_name", "sagemaker-Upper", "starting with 'sagemaker-'"),
        ("account", "12345", "12-digit"),
        ("vpc_cidr", "192.168.0.0/24", "10.x.0.0/16"),
        ("stack_name", "1stack", "stack name"),
    ],
)
def test_a_bad_value_fails_naming_its_key(key: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as error:
        ClusterConfig.from_mapping({key: value})

    assert error.value.key == key
    assert f"'{key}'" in str(error.value)


def test_trn1_is_valid_in_the_regions_that_offer_it() -> None:
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        ClusterConfig(region=region, availability_zone=f"{region}a")


@pytest.mark.parametrize("spelling", ["worker_cont", "worker-count", "workerCount", "Worker_count", "WORKER_COUNT"])
def test_a_misspelt_key_is_refused_naming_the_setting_meant(spelling: str) -> None:
    with pytest.raises(ConfigError, match="is not a setting") as error:
        ClusterConfig.from_mapping({spelling: 4})

    assert error.value.key == spelling
    assert "'worker_count'" in str(error.value)


def test_an_unknown_snake_case_key_is_refused_listing_the_settings() -> None:
    with pytest.raises(ConfigError, match="the settings are: account, allow_replacement, availability_zone") as error:
        ClusterConfig.from_mapping({"gpu_count": 4})

    assert error.value.key == "gpu_count"


def test_the_cdk_clis_own_keys_are_not_taken_for_misspellings() -> None:
    context = {"acknowledged-issue-numbers": [32775], "availability-zones:account=1:region=us-west-2": []}

    assert ClusterConfig.from_mapping(context) == ClusterConfig()


def test_every_hyperpod_region_has_its_zones_listed() -> None:
    assert set(AVAILABILITY_ZONES) == set(HYPERPOD_INSTANCE_TYPES)
    for region in HYPERPOD_INSTANCE_TYPES:
        zones = AVAILABILITY_ZONES[region]
        ClusterConfig(
            region=region,
            availability_zone=zones.names(region)[0],
            availability_zone_id=zones.ids()[-1],
            worker_instance_type="ml.c5.xlarge",
        )


def test_a_bad_value_from_the_command_line_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    """`cdk synth -c vpc_cidr=10.300.0.0/16`: the CLI hands app.py its context in CDK_CONTEXT_JSON."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"vpc_cidr": "10.300.0.0/16"}),
        "CDK_OUTDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: cdk.json / -c: context key 'vpc_cidr': must be a 10.x.0.0/16 block (x from 0 to 255), "
        "got '10.300.0.0/16'"
    ]
    assert list(tmp_path.iterdir()) == []


def test_cdk_feature_flags_and_cli_keys_are_not_settings_but_are_allowed() -> None:
    context = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True, "aws:cdk:enable-path-metadata": True}

    assert ClusterConfig.from_mapping(context) == ClusterConfig()


def test_the_readme_documents_every_setting() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Configuration") : text.index("### Deploy")]
    documented = {key for row in re.findall(r"^\| (.+?) \|", section, re.M) for key in re.findall(r"`(\w+)`", row)}

    assert {item.name for item in fields(ClusterConfig)} <= documented
