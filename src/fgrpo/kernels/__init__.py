"""Compute kernels below every other library layer: fp32 linears through oneDNN on CPU."""
