# shellcheck shell=sh
# The Neuron job environment: the one home of these variables (POSIX sh, so login shells can read it too).
# jobs/lib/common.sh sources it on the neuron backend; on the cluster the lifecycle's
# $NEURON_VENV/neuron_env.sh sets the cluster's cache directory and sources it for login shells.
# A value already in the environment wins over every default here.

# Graphs compiled once (by neuron_parallel_compile) are reused by every node from the shared cache.
: "${NEURON_CACHE_DIR:=/fsx/neuron-cache}"
: "${NEURON_COMPILE_CACHE_URL:=${NEURON_CACHE_DIR}}"
: "${NEURON_CC_FLAGS:=--model-type=transformer --distribution-strategy=llm-training}"
# A graph whose compilation failed stays in the cache marked failed; without this flag every later
# job fails on it instead of compiling it again (the official optimum-neuron example sets it:
# examples/training/llama/finetune_llama.sh).
case " ${NEURON_CC_FLAGS} " in
    *" --retry_failed_compilation "*) ;;
    *) NEURON_CC_FLAGS="${NEURON_CC_FLAGS} --retry_failed_compilation" ;;
esac
case "${NEURON_CC_FLAGS}" in
    *--cache_dir*) ;;
    *) NEURON_CC_FLAGS="${NEURON_CC_FLAGS} --cache_dir=${NEURON_COMPILE_CACHE_URL}" ;;
esac
: "${NEURON_FUSE_SOFTMAX:=1}"
: "${NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS:=3}"
: "${NEURON_RT_STOCHASTIC_ROUNDING_EN:=1}"
# glibc's default of 8 arenas per core makes 32 ranks' host memory balloon
: "${MALLOC_ARENA_MAX:=64}"
# EFA between trn1 nodes, with device RDMA; libfabric must survive the fork of data loaders
: "${FI_PROVIDER:=efa}"
: "${FI_EFA_USE_DEVICE_RDMA:=1}"
: "${FI_EFA_FORK_SAFE:=1}"
export NEURON_CACHE_DIR NEURON_COMPILE_CACHE_URL NEURON_CC_FLAGS NEURON_FUSE_SOFTMAX \
    NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS NEURON_RT_STOCHASTIC_ROUNDING_EN MALLOC_ARENA_MAX \
    FI_PROVIDER FI_EFA_USE_DEVICE_RDMA FI_EFA_FORK_SAFE
