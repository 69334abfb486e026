"""The study's figures from its written results: python plotting.py --help"""
import sys

from pruning.cli import plotting_main

if __name__ == "__main__":
    sys.exit(plotting_main())
