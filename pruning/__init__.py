"""A small toolkit for studying weight and neuron pruning of a ReLU MLP on MNIST.

Data flows one way: config -> data + model -> masks via callback -> training ->
result.json + TensorBoard events -> results table -> plots.
"""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, "no CUDA driver") hides the
# progress lines users need; keep it quiet unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
