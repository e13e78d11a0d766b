# shellcheck shell=bash
# Sourced by every job template (and by jobs/submit): paths on the shared file
# system, the backend switch, Neuron/EFA variables, HyperPod auto-resume and
# the torchrun arguments. Every parameter is an environment variable with a
# default; set it in the environment of `jobs/submit` (sbatch passes it on).
#
# Nothing here needs a Slurm allocation, so `submit` can source it too; the
# per-job values (MASTER_ADDR, node count) are filled in only inside a job.

: "${JOBS_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${PROJECT_DIR:=$(cd "${JOBS_DIR}/.." && pwd)}"

# --- where things live: everything under one shared root (FSx for Lustre on HyperPod). The root
# is root-owned; the lifecycle prepares models/, s3/datasets/, s3/runs/ and envs/ for the default
# user (lifecycle/provision/shared_tree.py). s3/ is exported to S3, so a run's outputs outlive FSx.
: "${FSX_ROOT:=/fsx}"
: "${RUN_NAME:=llama3-8b-lora}"
: "${VENV_DIR:=${FSX_ROOT}/envs/neuron}"
: "${MODEL_ID:=meta-llama/Meta-Llama-3-8B}"
: "${MODEL_DIR:=${FSX_ROOT}/models/${MODEL_ID##*/}}"
: "${DATASET_ID:=databricks/databricks-dolly-15k}"
: "${DATASET_PATH:=${FSX_ROOT}/s3/datasets/${DATASET_ID##*/}}"
: "${RUN_DIR:=${FSX_ROOT}/s3/runs/${RUN_NAME}}"
: "${LOG_DIR:=${RUN_DIR}/logs}"
: "${OUTPUT_DIR:=${RUN_DIR}/train}"
: "${COMPILE_DIR:=${RUN_DIR}/compile}"
: "${ADAPTER_DIR:=${RUN_DIR}/adapter}"
: "${MERGED_DIR:=${RUN_DIR}/merged}"
: "${NEURON_CACHE_DIR:=${FSX_ROOT}/neuron-cache}"

# jobs/submit needs the paths only: the rest is resolved by each job on its own nodes.
if [[ "${JOBS_PATHS_ONLY:-0}" == 1 ]]; then
    # shellcheck disable=SC2317 # sourced: return ends the sourcing, exit the caller
    return 0 2>/dev/null || exit 0
fi

# --- backend: neuron on trn1, cuda where GPUs are, cpu elsewhere (the local cluster)
: "${BACKEND:=auto}"
: "${NEURON_DEVICE:=/dev/neuron0}"
# NeuronCores per node and the tensor-parallel size: empty means detected on the node (see below)
: "${NEURON_CORES_PER_NODE:=}"
: "${CPU_PROCS_PER_NODE:=1}"
# hub: the model from the Hugging Face Hub; tiny: a tiny random Llama, only when asked for by name
# (a step that landed on the wrong node must never put a toy model where the real one belongs)
: "${MODEL_SOURCE:=hub}"

# --- training: an empty value leaves the recipe's value
: "${RECIPE:=${PROJECT_DIR}/training/recipes/llama3-8b-lora.yaml}"
: "${TP_SIZE:=}"
: "${MAX_STEPS:=}"
: "${NUM_TRAIN_EPOCHS:=}"
: "${BATCH_SIZE:=}"
: "${GRAD_ACCUM:=}"
: "${LEARNING_RATE:=}"
: "${MAX_SEQ_LENGTH:=}"
: "${SAVE_STEPS:=}"
: "${LOGGING_STEPS:=}"
: "${LORA_R:=}"
: "${LORA_ALPHA:=}"
: "${LORA_DROPOUT:=}"
: "${LORA_TARGET_MODULES:=}"
: "${BF16:=}"
: "${SEED:=}"
: "${EVAL_FRACTION:=}"
: "${TRAIN_EXTRA_ARGS:=}"
# neuron_parallel_compile runs the training command for this many steps
: "${COMPILE_MAX_STEPS:=10}"
: "${MASTER_PORT:=$((29500 + ${SLURM_JOB_ID:-0} % 1000))}"

# --- HyperPod: its Slurm has the auto-resume plugin; this directory exists on its nodes
: "${HYPERPOD_MARKER:=/opt/sagemaker_cluster}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

# resolve_backend: the concrete backend for BACKEND=auto, from what this node has
resolve_backend() {
    case "$BACKEND" in
        auto)
            if [[ -e "$NEURON_DEVICE" ]]; then
                echo neuron
            elif [[ -r "${VENV_DIR}/neuron_env.sh" ]]; then
                # The lifecycle writes the Neuron job environment onto the shared file system only
                # when the cluster has Trainium workers: this node (a login node in the default
                # partition?) is the wrong place, and a CPU run here would pass for the real one.
                die "BACKEND=auto: $(hostname) has no Neuron device (${NEURON_DEVICE}) but this cluster's" \
                    "workers do (${VENV_DIR}/neuron_env.sh): submit to the worker partition (PARTITION)," \
                    "or set BACKEND=cpu to run on this node's CPUs on purpose"
            elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
                echo cuda
            else
                echo cpu
            fi
            ;;
        neuron | cuda | cpu) echo "$BACKEND" ;;
        *) die "BACKEND must be auto, neuron, cuda or cpu, got '${BACKEND}'" ;;
    esac
}

BACKEND=$(resolve_backend)

# neuron_core_count: NeuronCores on this node, summed over neuron-ls's device table (as the official
# optimum-neuron example does: examples/training/llama/finetune_llama.sh); 32 without neuron-ls
neuron_core_count() {
    if command -v neuron-ls >/dev/null; then
        neuron-ls | awk '/^\| [0-9]+/ {total += $4} END {print total + 0}'
    else
        echo 32
    fi
}

# tp_for_cores N: the tensor-parallel size for Llama-3-8B on a node with N NeuronCores (the same
# table as the official example: trn1.32xlarge 32 -> 8, trn2.48xlarge 64 -> 4, trn2.3xlarge 4 -> 4)
tp_for_cores() {
    case "$1" in
        32) echo 8 ;;
        64 | 4) echo 4 ;;
        *) die "no tensor-parallel size known for a node with $1 NeuronCores; set TP_SIZE (and NEURON_CORES_PER_NODE)" ;;
    esac
}

if [[ "$BACKEND" == neuron ]]; then
    [[ -n "$NEURON_CORES_PER_NODE" ]] || NEURON_CORES_PER_NODE=$(neuron_core_count)
    [[ -n "$TP_SIZE" ]] || TP_SIZE=$(tp_for_cores "$NEURON_CORES_PER_NODE")
fi
: "${NEURON_CORES_PER_NODE:=32}"
: "${TP_SIZE:=8}"

case "$BACKEND" in
    neuron) : "${PROCS_PER_NODE:=${NEURON_CORES_PER_NODE}}" ;;
    cuda) : "${PROCS_PER_NODE:=$(nvidia-smi -L | wc -l)}" ;;
    cpu) : "${PROCS_PER_NODE:=${CPU_PROCS_PER_NODE}}" ;;
esac

# the venv's python, torchrun and neuron_parallel_compile come first
if [[ -d "${VENV_DIR}/bin" ]]; then
    export VIRTUAL_ENV=${VENV_DIR}
    export PATH="${VENV_DIR}/bin:${PATH}"
fi

# torchrun steps start many processes per node: one thread each, unless set (one_process_per_node)
OMP_NUM_THREADS_SET=${OMP_NUM_THREADS:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1

if [[ "$BACKEND" == neuron ]]; then
    # shellcheck source=jobs/lib/neuron_env.sh
    source "${JOBS_DIR}/lib/neuron_env.sh"
    # torchrun starts one process per NeuronCore and torch-neuronx gives each local rank its core
    # (NEURON_RT_VISIBLE_CORES); NEURON_RT_NUM_CORES would fight that, so it must stay unset
    unset NEURON_RT_NUM_CORES
fi

# srun for every step: one failed task ends the step, and on HyperPod a faulty node
# is replaced and the step started again (training resumes from its last checkpoint)
SRUN_ARGS=(--kill-on-bad-exit=1)
if [[ -d "$HYPERPOD_MARKER" ]]; then
    SRUN_ARGS+=(--auto-resume=1)
fi

# torchrun arguments for this allocation; the node rank is added by lib/finetune.sh on each node
if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    : "${NNODES:=${SLURM_JOB_NUM_NODES}}"
    : "${MASTER_ADDR:=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)}"
    export MASTER_ADDR MASTER_PORT NNODES
    # shellcheck disable=SC2034 # used by the scripts that source this file
    TORCHRUN_ARGS=(
        --nnodes "$NNODES"
        --nproc_per_node "$PROCS_PER_NODE"
        --master_addr "$MASTER_ADDR"
        --master_port "$MASTER_PORT"
        --max_restarts 0
    )
fi

# Export everything, so `srun bash lib/finetune.sh` on other nodes sees the same values.
export JOBS_DIR PROJECT_DIR FSX_ROOT RUN_NAME VENV_DIR MODEL_ID MODEL_DIR DATASET_ID DATASET_PATH RUN_DIR \
    LOG_DIR OUTPUT_DIR COMPILE_DIR ADAPTER_DIR MERGED_DIR NEURON_CACHE_DIR BACKEND NEURON_DEVICE \
    NEURON_CORES_PER_NODE CPU_PROCS_PER_NODE PROCS_PER_NODE MODEL_SOURCE RECIPE TP_SIZE MAX_STEPS \
    NUM_TRAIN_EPOCHS BATCH_SIZE GRAD_ACCUM LEARNING_RATE MAX_SEQ_LENGTH SAVE_STEPS LOGGING_STEPS LORA_R \
    LORA_ALPHA LORA_DROPOUT LORA_TARGET_MODULES BF16 SEED EVAL_FRACTION TRAIN_EXTRA_ARGS COMPILE_MAX_STEPS \
    HYPERPOD_MARKER

# share_outputs PATH...: what this user wrote below each PATH gets the read bits its umask allows.
# safetensors >= 0.8 creates its files 0600 whatever the umask (a temp file renamed into place:
# https://github.com/safetensors/safetensors/issues/782), so models and adapters saved through it
# (transformers, peft, the Trainer's checkpoints) would be private while every other output is not.
share_outputs() {
    local p
    for p in "$@"; do
        [[ -e "$p" ]] || continue
        find "$p" -user "$(id -u)" \( -type f ! -perm -0044 -o -type d ! -perm -0055 \) \
            -exec chmod +rX {} + 2>/dev/null || true
    done
}

# job_start NAME: the banner every job log starts with; whatever way the job ends, its
# outputs are left readable by the user's group (the run dir is exported to S3 as well)
job_start() {
    log "START $1: job ${SLURM_JOB_ID:-none} on ${SLURM_JOB_NODELIST:-$(hostname)} (${SLURM_JOB_NUM_NODES:-1} node(s))," \
        "backend ${BACKEND}, run dir ${RUN_DIR}"
    JOB_T0=$SECONDS
    trap 'share_outputs "$RUN_DIR" "$MODEL_DIR" "$DATASET_PATH"' EXIT
}

# one_process_per_node: a 1-task step on an --exclusive node (its srun step gets every CPU of
# the allocation) runs as many threads as the node has CPUs, unless OMP_NUM_THREADS was set
one_process_per_node() {
    local cpus=${SLURM_CPUS_ON_NODE:-$(nproc)}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS_SET:-${cpus}}
    export MKL_NUM_THREADS=${OMP_NUM_THREADS}
    log "threads: OMP_NUM_THREADS=${OMP_NUM_THREADS} (${cpus} CPU(s) on $(hostname))"
}

# job_end NAME: the closing line, with the wall time a step took
job_end() {
    log "END $1: job ${SLURM_JOB_ID:-none} succeeded in $((SECONDS - JOB_T0)) s"
}

# require_path WHAT PATH: fail the job with a message naming the variable to fix
require_path() {
    [[ -e "$2" ]] || die "$1 ${2} does not exist (set $1, or run the step that creates it)"
}
