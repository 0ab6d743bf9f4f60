"""compreps: do coresets, pruning and quantization preserve neural network representations?"""

__version__ = "0.1.0"
