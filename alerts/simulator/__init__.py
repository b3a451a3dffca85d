"""An xRocket-compatible exchange simulator for tests, demos and benchmarks."""

from alerts.simulator.config import SimulatorConfig, generated_symbols
from alerts.simulator.server import Simulator, serve_forever

__all__ = ["Simulator", "SimulatorConfig", "generated_symbols", "serve_forever"]
