"""Download a model from the Hugging Face Hub to a local directory (on the cluster: FSx), safetensors only.

Example:
    HF_TOKEN=hf_xxx python -m training.download --model_id meta-llama/Meta-Llama-3-8B \\
        --output_dir /fsx/models/Meta-Llama-3-8B

    # token from the stack's Secrets Manager secret instead (HF_TOKEN still wins when set)
    python -m training.download --model_id meta-llama/Meta-Llama-3-8B --output_dir /fsx/models/Meta-Llama-3-8B \\
        --hf_token_secret_arn arn:aws:secretsmanager:us-west-2:111122223333:secret:hyperpod-hf-token-AbCdEf

Only the safetensors weights, JSON configs and tokenizer files are fetched (no
`original/` PyTorch checkpoint, no .bin duplicates), straight into place: nothing
is loaded or re-saved, so an 8B model never passes through host memory in fp32.
The files land in a hidden `.partial` directory next to --output_dir that is
renamed when complete; an interrupted download resumes from it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from training.errors import ArgumentError, UserError, require_output_dir

ALLOW_PATTERNS = ["*.safetensors", "*.json", "tokenizer.model", "*.tiktoken"]
IGNORE_PATTERNS = ["original/*", "*.bin", "*.pth", "*.pt", "*.h5", "*.msgpack", "*.onnx", "*.gguf"]
SECRET_JSON_KEYS = ("HF_TOKEN", "hf_token", "token")


class DownloadError(UserError):
    """A download that cannot succeed as asked, with what to do about it."""


@dataclass
class DownloadArguments:
    model_id: str = field(metadata={"help": "Hub repository id, e.g. meta-llama/Meta-Llama-3-8B."})
    output_dir: str = field(metadata={"help": "Directory to create with the model files (e.g. on /fsx)."})
    revision: str = field(default="main", metadata={"help": "Branch, tag or commit to download."})
    hf_token_secret_arn: str | None = field(default=None, metadata={
        "help": "Secrets Manager secret holding the Hub token (plain string or JSON with HF_TOKEN/token); "
                "used only when HF_TOKEN is not set."})
    region: str | None = field(default=None, metadata={"help": "Region of the secret (default: from its ARN)."})

    def __post_init__(self) -> None:
        if self.model_id.count("/") != 1 or not all(self.model_id.split("/")):
            raise ArgumentError(f"--model_id must look like 'org/name' (e.g. meta-llama/Meta-Llama-3-8B), "
                                f"got {self.model_id!r}")
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(self.model_id)
        except HFValidationError as exc:
            raise ArgumentError(f"--model_id {self.model_id!r} is not a valid Hub repository id: {exc}") from exc
        if self.hf_token_secret_arn is not None and not self.hf_token_secret_arn.startswith("arn:"):
            raise ArgumentError(f"--hf_token_secret_arn must be an ARN (arn:aws:secretsmanager:...), "
                                f"got {self.hf_token_secret_arn!r}")
        require_output_dir("output_dir", self.output_dir)


def token_from_secret(secret_arn: str, region: str | None = None) -> str:
    """The Hub token stored in a Secrets Manager secret (a plain string or a JSON object)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    region = region or secret_arn.split(":")[3] or None
    try:
        value = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    except (ClientError, BotoCoreError) as e:
        raise DownloadError(f"cannot read the Hugging Face token from secret {secret_arn}: {e}") from e
    text = (value.get("SecretString") or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DownloadError(f"secret {secret_arn} starts with '{{' but is not valid JSON ({e}); store the "
                                f"plain token or JSON with one of {', '.join(SECRET_JSON_KEYS)}") from e
        text = next((str(data[k]).strip() for k in SECRET_JSON_KEYS if data.get(k)), "")
    if not text:
        raise DownloadError(f"secret {secret_arn} holds no token (expected a string or JSON with one of "
                            f"{', '.join(SECRET_JSON_KEYS)})")
    return text


def resolve_token(secret_arn: str | None, region: str | None = None) -> str | None:
    """HF_TOKEN from the environment first, else the secret, else None (public models only)."""
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    if secret_arn:
        return token_from_secret(secret_arn, region)
    return None


def _is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))


def download(model_id: str, output_dir: Path, revision: str = "main", token: str | None = None,
             endpoint: str | None = None) -> Path:
    """snapshot_download into `output_dir`; Hub errors become DownloadErrors that say what to do.

    `endpoint` defaults to huggingface_hub's (HF_ENDPOINT, else huggingface.co).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if _is_complete(output_dir):
        print(f"{output_dir} already holds a model; nothing to do", flush=True)
        return output_dir
    if output_dir.exists() and any(output_dir.iterdir()):
        raise DownloadError(f"{output_dir} exists and is not a complete model; remove it or pick another directory")
    partial = output_dir.with_name(f".{output_dir.name}.partial")
    page = f"https://huggingface.co/{model_id}"
    try:
        snapshot_download(
            repo_id=model_id,
            revision=revision,
            local_dir=partial,
            token=token if token else False,  # False: never fall back to a token cached on this machine
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
            endpoint=endpoint,
        )
    except GatedRepoError as e:
        if token:
            raise DownloadError(f"{model_id} is gated and this token has no access: accept the licence at {page} "
                                f"with the account that owns the token ({e.server_message or e})") from e
        raise DownloadError(f"{model_id} is gated: accept its licence at {page}, then provide a token with "
                            "HF_TOKEN or --hf_token_secret_arn") from e
    except RevisionNotFoundError as e:
        raise DownloadError(f"{model_id} has no revision {revision!r}") from e
    except RepositoryNotFoundError as e:
        hint = "" if token else " (private repositories need a token: HF_TOKEN or --hf_token_secret_arn)"
        raise DownloadError(f"{model_id} was not found on the Hub{hint}") from e
    except (LocalEntryNotFoundError, HfHubHTTPError) as e:
        raise DownloadError(f"downloading {model_id} failed: {e}") from e
    if not any(partial.glob("*.safetensors")):
        raise DownloadError(f"{model_id}@{revision} has no .safetensors weights; this tool does not convert "
                            ".bin checkpoints")
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # download bookkeeping, only needed to resume
    if output_dir.exists():
        output_dir.rmdir()  # empty (checked above)
    os.replace(partial, output_dir)
    files = sorted(p.name for p in output_dir.rglob("*") if p.is_file())
    print(f"{model_id}@{revision}: {len(files)} files in {output_dir}: {', '.join(files)}", flush=True)
    return output_dir


def main(args: DownloadArguments) -> Path:
    token = resolve_token(args.hf_token_secret_arn, args.region)
    return download(args.model_id, Path(args.output_dir), args.revision, token)


if __name__ == "__main__":
    from training.cli import run_entry_point

    sys.exit(run_entry_point((DownloadArguments,), main, prog="python -m training.download", description=__doc__))
