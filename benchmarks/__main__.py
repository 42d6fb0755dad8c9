"""``python -m benchmarks [--quick] [--medium] [--markdown PATH]`` -- see benchmarks/run.py."""

from .run import main

main()
