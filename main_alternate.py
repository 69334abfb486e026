"""The same study as main.py, one model at a time: python main_alternate.py --help"""
import sys

from pruning.cli import alternate_main_guarded

if __name__ == "__main__":
    sys.exit(alternate_main_guarded())
