"""AlexNet (Krizhevsky, Sutskever, Hinton, 2012), reproduced end to end.

The folders are the parts (docs/architecture.md draws how they import each other): data (raw
sources, the prepared store, the statistics, the input pipeline), model, training, evaluation,
analysis, claims (the ablation arms, the verdict rule, the sweep, the CIFAR-10 claims), report,
pipeline (provenance, lock checks, the import closure) and runtime (how numerics and devices are
set). Beside them, what every part shares: config (params.yaml), paper (the paper's numbers),
errors, fileio, cli (the stage scripts' and tools' command-line contract).
"""

__version__ = "0.1.0"
