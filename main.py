"""The whole weight-vs-neuron pruning study, two models at a time: python main.py --help"""
import sys

from pruning.cli import study_main_guarded

if __name__ == "__main__":
    sys.exit(study_main_guarded())
