"""The input pipeline: stored uint8 pixels to network input.

Modules (tests/test_package.py keeps this list complete):
    pixels      stored pixels -> network input without randomness: crops, mirroring, mean subtraction
    augment     batched, on-device crops, flips, PCA lighting, mean subtraction
    loader      batches from the store, read ahead by threads, augmented on the device
"""
