"""lowloss: explore the low-loss space of neural networks at cluster scale."""

__version__ = "0.1.0"
