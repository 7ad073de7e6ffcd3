"""Self-supervised audio-visual representation learning with relaxed cross-modal synchronicity (CrissCross), as an nbdev research toolkit

Modules:

- `crisscross.evaluation`: Frozen-feature protocols: features of frozen backbones (cached), k-NN, a linear SVM and a linear probe chosen on validation data, retrieval within and across modalities"""

__version__ = "0.0.1"
