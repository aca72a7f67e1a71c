# Sourced by the run scripts (main.sh, main_llm.sh, toy.sh): pin the CPU kernels to AVX2 so
# that a run is a function of its config and seed on the CPU model it ran on, whichever
# instruction set it has (not across CPU vendors: an Intel and an AMD machine still round
# differently, docs/reliability.md).
# PyTorch, MKL and oneDNN otherwise dispatch on the CPU they find (AVX-512 here, AVX2 on
# older EPYCs), and the kernels of two instruction sets round differently: SmolLM2's logits
# differ by up to 4.7e-4 between the two on this machine, a difference RL's sampling turns
# into different rollouts within a few steps (docs/reliability.md).
# Any of these already set in the environment wins; FGRPO_NATIVE_ISA=1 keeps the native kernels.
if [ "$(uname -m)" = "x86_64" ] && [ "${FGRPO_NATIVE_ISA:-0}" != "1" ]; then
  export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}"
  export MKL_ENABLE_INSTRUCTIONS="${MKL_ENABLE_INSTRUCTIONS:-AVX2}"
  export MKL_CBWR="${MKL_CBWR:-AVX2}"
  export ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}"
fi
