"""Evaluation: centre and ten-crop testing and ensembles (evaluate), top-k error (metrics), the
saved predictions (predictions), the paper's tables beside ours (results), conv1's colour per
column (kernels)."""
