"""Programs that measure jacdistill (installed as ``jacdistill.benchmarks``; results in results/)."""
