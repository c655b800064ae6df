"""The input pipeline: test-time crops and pixel arithmetic (pixels), training's augmentation
(augment), batches from the prepared store (loader)."""
