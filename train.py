"""Train, prune and evaluate one model: python train.py --help"""
import sys

from pruning.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
