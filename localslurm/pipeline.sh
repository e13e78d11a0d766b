# shellcheck shell=bash
# Sourced by scripts/demo.sh and the tests: the pipeline's settings on the local
# cluster (a tiny Llama, a few CPU steps), as defaults any caller can override.
# The "/fsx" of the cluster is a project directory; the venv is the project's own.

_LOCALSLURM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

: "${LOCALSLURM_DIR:=${_LOCALSLURM_ROOT}/.state/localslurm}"
: "${SLURM_CONF:=${LOCALSLURM_DIR}/etc/slurm.conf}"
: "${FSX_ROOT:=${LOCALSLURM_DIR}/fsx}"
: "${RUN_NAME:=demo}"
: "${VENV_DIR:=${_LOCALSLURM_ROOT}/.venv}"
: "${ENV_INSTALL:=0}"
: "${BACKEND:=auto}"
: "${MODEL_SOURCE:=tiny}"
: "${MODEL_DIR:=${FSX_ROOT}/models/tiny-llama}"
: "${DATASET_PATH:=${FSX_ROOT}/s3/datasets/dolly-tiny.jsonl}"
: "${NODES:=2}"
: "${MAX_STEPS:=300}"
: "${SAVE_STEPS:=100}"
: "${LOGGING_STEPS:=1}"
: "${MAX_SEQ_LENGTH:=128}"
: "${GRAD_ACCUM:=1}"
: "${LEARNING_RATE:=1e-2}"
# With random frozen embeddings and head, a tiny model learns the answers only when lm_head adapts too.
: "${LORA_TARGET_MODULES:=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head}"
: "${BF16:=false}"
: "${MERGE_DTYPE:=float32}"
: "${MAX_NEW_TOKENS:=24}"
# Both emulated nodes share this machine's few cores: torch's thread pool contending for them made
# evaluating the tiny models 7x slower (9.6 s with 2 threads, 1.3 s with 1, on 2 cores).
: "${EVAL_THREADS:=1}"

export LOCALSLURM_DIR SLURM_CONF FSX_ROOT RUN_NAME VENV_DIR ENV_INSTALL BACKEND MODEL_SOURCE MODEL_DIR \
    DATASET_PATH NODES MAX_STEPS SAVE_STEPS LOGGING_STEPS MAX_SEQ_LENGTH GRAD_ACCUM LEARNING_RATE \
    LORA_TARGET_MODULES BF16 MERGE_DTYPE MAX_NEW_TOKENS EVAL_THREADS
