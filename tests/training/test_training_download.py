"""Model download: token resolution and Hub error mapping, against a Hub and Secrets Manager on 127.0.0.1.

The real huggingface_hub client and boto3 talk HTTP to local servers; most tests call
training.download in-process, two run the command line end to end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from training_helpers import run_module
from training_hub_server import FakeHub, Repo, serve

from training.download import DownloadError, download, resolve_token

OPEN_FILES = {
    "config.json": b'{"model_type": "llama"}',
    "model-00001-of-00002.safetensors": b"a" * 64,
    "model-00002-of-00002.safetensors": b"b" * 64,
    "model.safetensors.index.json": b"{}",
    "tokenizer.json": b"{}",
    "pytorch_model.bin": b"not wanted",
    "original/consolidated.00.pth": b"not wanted",
    "README.md": b"not wanted",
}
GATED_FILES = {"config.json": b"{}", "model.safetensors": b"w" * 32}
TOKEN = "hf_test_token"
ABSENT_SECRET_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:absent-AbCdEf"
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with serve({"acme/open": Repo(OPEN_FILES), "acme/gated": Repo(GATED_FILES, gated_token=TOKEN),
                "acme/bin-only": Repo({"config.json": b"{}", "pytorch_model.bin": b"x"})}) as h:
        yield h


@pytest.fixture()
def online(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """Lift the session's offline switch for the local Hub only (its URL is passed as the endpoint)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub.requests.clear()
    return hub


@pytest.fixture(scope="module")
def secret() -> Iterator[tuple[str, str]]:
    """(ARN, endpoint) of a Secrets Manager secret (moto's server on 127.0.0.1) holding the token as JSON."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("secretsmanager", region_name="us-west-2", endpoint_url=url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = client.create_secret(Name="hf-token", SecretString=json.dumps({"HF_TOKEN": TOKEN}))["ARN"]
    yield arn, url
    server.stop()


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch, secret: tuple[str, str]) -> str:
    """boto3 in this process pointed at the local Secrets Manager; returns the secret's ARN."""
    for key, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SECRETS_MANAGER": secret[1]}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return secret[0]


def test_only_safetensors_configs_and_tokenizer_are_fetched(online: FakeHub, tmp_path: Path) -> None:
    download("acme/open", tmp_path / "model", endpoint=online.url)
    files = sorted(str(p.relative_to(tmp_path / "model")) for p in (tmp_path / "model").rglob("*") if p.is_file())
    assert files == ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "tokenizer.json"]
    assert (tmp_path / "model" / "model-00001-of-00002.safetensors").read_bytes() == b"a" * 64
    assert not list(tmp_path.glob(".*partial"))


def test_a_second_download_to_a_complete_directory_does_nothing(online: FakeHub, tmp_path: Path) -> None:
    download("acme/open", tmp_path / "model", endpoint=online.url)
    online.requests.clear()
    download("acme/open", tmp_path / "model", endpoint=online.url)
    assert online.requests == []


def test_a_gated_model_without_a_token_says_how_to_get_access(online: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"acme/gated is gated: accept its licence at "
                                            r"https://huggingface.co/acme/gated.*HF_TOKEN or --hf_token_secret_arn"):
        download("acme/gated", tmp_path / "model", endpoint=online.url)
    assert not (tmp_path / "model").exists()


def test_a_token_without_access_is_told_apart_from_no_token(online: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="is gated and this token has no access"):
        download("acme/gated", tmp_path / "model", token="hf_someone_else", endpoint=online.url)


def test_a_missing_repository_and_bin_only_weights_are_errors(online: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"acme/missing was not found on the Hub \(private repositories need"):
        download("acme/missing", tmp_path / "a", endpoint=online.url)
    with pytest.raises(DownloadError, match=r"acme/bin-only@main has no \.safetensors weights"):
        download("acme/bin-only", tmp_path / "b", endpoint=online.url)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_token_is_sent_to_the_hub(online: FakeHub, tmp_path: Path) -> None:
    download("acme/gated", tmp_path / "model", token=TOKEN, endpoint=online.url)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == GATED_FILES["model.safetensors"]
    assert {auth for _, _, auth in online.requests} == {f"Bearer {TOKEN}"}


def test_hf_token_in_the_environment_wins_over_the_secret(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert resolve_token(ABSENT_SECRET_ARN) == "hf_from_env"  # the secret is not even read


def test_the_secret_is_read_when_hf_token_is_unset(aws: str) -> None:
    assert resolve_token(aws) == TOKEN


def test_without_either_there_is_no_token(aws: str) -> None:
    assert resolve_token(None) is None


def test_an_unreadable_secret_is_an_error_naming_it(aws: str) -> None:
    with pytest.raises(DownloadError, match=f"cannot read the Hugging Face token from secret {ABSENT_SECRET_ARN}"):
        resolve_token(ABSENT_SECRET_ARN)


def _cli_env(hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    return {**AWS_TEST_ENV, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "",
            "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_cli_gated_model_without_token_exits_2_with_the_reason(hub: FakeHub, tmp_path: Path) -> None:
    result = run_module("training.download", "--model_id", "acme/gated", "--output_dir", str(tmp_path / "m"),
                        env=_cli_env(hub, tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: acme/gated is gated: accept its licence at https://huggingface.co/acme/gated, "
        "then provide a token with HF_TOKEN or --hf_token_secret_arn")


def test_cli_downloads_a_gated_model_with_the_token_from_the_secret(hub: FakeHub, secret: tuple[str, str],
                                                                    tmp_path: Path) -> None:
    arn, url = secret
    hub.requests.clear()
    result = run_module("training.download", "--model_id", "acme/gated", "--output_dir", str(tmp_path / "m"),
                        "--hf_token_secret_arn", arn,
                        env={**_cli_env(hub, tmp_path), "AWS_ENDPOINT_URL_SECRETS_MANAGER": url})
    assert result.returncode == 0, result.stderr
    assert "acme/gated@main: 2 files" in result.stdout
    assert {auth for _, _, auth in hub.requests} == {f"Bearer {TOKEN}"}
