"""Custom kernels for the penalties (installed as ``jacdistill.kernels``)."""
