#!/usr/bin/env bash
# The one launcher for compile and train, run once per node by srun:
#   NEURON_EXTRACT_GRAPHS_ONLY=1  neuron_parallel_compile torchrun ... (a few steps, graphs into the cache)
#   NEURON_EXTRACT_GRAPHS_ONLY=0  torchrun ... (the training run, resumed from its last checkpoint)
# Same command either way, so the compiled graphs are exactly the ones training asks for.
set -euo pipefail

: "${NEURON_EXTRACT_GRAPHS_ONLY:=0}"
: "${SLURM_NODEID:?run under srun: the node rank comes from SLURM_NODEID}"

# shellcheck source=jobs/lib/common.sh
source "${JOBS_DIR:?JOBS_DIR is exported by the job template}/lib/common.sh"

# optional FLAG VALUE: add --FLAG VALUE only when VALUE is set (else the recipe's value stands)
optional() { [[ -z "$2" ]] || FINETUNE_ARGS+=("--$1" "$2"); }

if [[ "$NEURON_EXTRACT_GRAPHS_ONLY" != 0 ]]; then
    PREFIX=(neuron_parallel_compile)
    out_dir=${COMPILE_DIR}
    max_steps=${COMPILE_MAX_STEPS}
else
    PREFIX=()
    out_dir=${OUTPUT_DIR}
    max_steps=${MAX_STEPS}
fi

FINETUNE_ARGS=(
    "$RECIPE"
    --model_name_or_path "$MODEL_DIR"
    --dataset_path "$DATASET_PATH"
    --output_dir "$out_dir"
    --backend "$BACKEND"
    --tensor_parallel_size "$TP_SIZE"
)
optional max_steps "$max_steps"
optional num_train_epochs "$NUM_TRAIN_EPOCHS"
optional per_device_train_batch_size "$BATCH_SIZE"
optional gradient_accumulation_steps "$GRAD_ACCUM"
optional learning_rate "$LEARNING_RATE"
optional max_seq_length "$MAX_SEQ_LENGTH"
optional save_steps "$SAVE_STEPS"
optional logging_steps "$LOGGING_STEPS"
optional lora_r "$LORA_R"
optional lora_alpha "$LORA_ALPHA"
optional lora_dropout "$LORA_DROPOUT"
optional lora_target_modules "$LORA_TARGET_MODULES"
optional bf16 "$BF16"
optional seed "$SEED"
optional eval_fraction "$EVAL_FRACTION"
read -ra extra <<<"$TRAIN_EXTRA_ARGS"
FINETUNE_ARGS+=("${extra[@]}")

log "node ${SLURM_NODEID} ($(hostname)): ${PREFIX[*]} torchrun ${TORCHRUN_ARGS[*]} --node_rank ${SLURM_NODEID}"
exec "${PREFIX[@]}" torchrun "${TORCHRUN_ARGS[@]}" --node_rank "$SLURM_NODEID" \
    -m training.finetune "${FINETUNE_ARGS[@]}"
