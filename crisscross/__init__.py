"""Self-supervised audio-visual representation learning with relaxed cross-modal synchronicity (CrissCross), as an nbdev research toolkit"""

__version__ = "0.0.1"
