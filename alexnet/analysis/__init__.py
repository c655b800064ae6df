"""Section 6's analysis: kernels, top-5 figures, fc7 retrieval and t-SNE (analyze), nearest
neighbours and binary codes (retrieval)."""
