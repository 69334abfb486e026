"""Inference latency of every pruned model of a study, and this machine's matmul peak: python benchmark.py --help"""
import sys

from pruning.cli import benchmark_main

if __name__ == "__main__":
    sys.exit(benchmark_main())
