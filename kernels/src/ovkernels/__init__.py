"""ovkernels."""
