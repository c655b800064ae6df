"""The data: raw sources (the tiny generator, ILSVRC-2010/2012, image folders, URLs), the prepared
store, the training-set statistics and the input pipeline (crops, augmentation, batches)."""
