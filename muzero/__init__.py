"""muzero: a MuZero training system that runs on a laptop and on Kubernetes."""

__version__ = "0.1.0"
