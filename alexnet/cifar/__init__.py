"""The paper's CIFAR-10 claims: Figure 1 (ReLU against tanh) and the LRN result of Section 3.3.

Modules (tests/test_package.py keeps this list complete):
    data        CIFAR-10 from the official archives or an image folder, checked; the generated tiny set
    nets        the authors' CIFAR-10 nets: Figure 1's four-layer net, the 13%/11% conv-local nets
    training    Figure 1 (lr grid, then seeds) and the LRN claim, resumable per net (stage cifar)
"""
