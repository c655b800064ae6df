"""The paper's CIFAR-10 claims: Figure 1 (ReLU against tanh) and the LRN result of Section 3.3.

Modules (tests/test_package.py keeps this list complete):
    data        CIFAR-10 from the official archives or an image folder, checked; the generated tiny set
    nets        the authors' CIFAR-10 nets: Figure 1's four-layer net, the 13%/11% conv-local nets
    training    what both claims train with: a net's run and checkpoint, the epoch loop, the inputs
    figure1     Figure 1 as a protocol: the lr grid, the evaluation seeds, the ratio by level, figures
    lrn         the LRN claim: the 13pct and 11pct nets through the authors' schedule, ten-view test
    run         stage cifar: both claims, their outputs and run record
"""
