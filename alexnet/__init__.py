"""AlexNet (Krizhevsky, Sutskever, Hinton, 2012), reproduced end to end.

Modules and packages, one concern each (tests/test_package.py keeps this list and each package's complete):
    errors      the error classes a stage turns into one clear line
    cli         what every stage script shares: argument parsing, numerics pinning, one-line errors
    config      params.yaml as typed, validated dataclasses
    fileio      atomic writes, safe tar reading, checksums
    sources     raw datasets: the tiny generator, ILSVRC-2010/2012, image folders, URLs
    prepare     resize + centre crop into a sharded uint8 store
    store       reading the prepared store
    stats       mean image, channel moments, RGB PCA
    model       the paper's network, its ablation switches, the torchvision variant
    netstore    models/seed<N>/'s layout: model.pt, info.json, architecture.json (torch-free)
    input       the input pipeline: pixels (test-time crops), augment (training's), loader (batches)
    optim       the paper's SGD update and its learning-rate schedule
    distributed one process or one rank of a torchrun launch (DDP)
    train       SGD with the paper's update and schedule, checkpoints, determinism, DDP
    evaluate    centre and ten-crop testing, ensembles, the first net's measures for the ablations
    metrics     top-k error, counted alike by training and evaluation
    predictions data/eval/ and metrics/evaluate.json's flat keys, and reading the evaluation back
    kernels     conv1's colour per column: Figure 3's specialisation as a number
    paper       the paper's numbers and claims, as the tables and the claims table quote them
    tables      Markdown and LaTeX tables and cells, one way for report, results and claims
    results     the paper's tables beside ours
    retrieval   fc7 nearest neighbours, binary codes (auto-encoder, LSH) and their precision
    analysis    kernels, top-5 figures, fc7 retrieval, binary codes, t-SNE
    arms        the ablation arms, the measures their claims are judged by, reading ablations/results.json
    ablations   the arms as DVC experiments: queue, sweep, status, collect into ablations/results.json
    expqueue    DVC's experiment queue for a long sweep: task states, stale tasks, workers, a planning lock
    verdict     the claims' verdict rule (a t interval against the paper's number), stated once
    claims      the paper's claims beside ours, judged by that rule
    cifar       CIFAR-10's claims: data (the copy, checked), nets (the authors'), training (Figure 1, LRN)
    report      the paper-style HTML/Markdown report
    provenance  the git revision (clean or dirty, pipeline outputs aside), what decides bit-identity
    pinning     bit identity's environment, set before torch or numpy loads (every stage)
    runtime     torch's switches (bit identity, determinism), the device, safe torch.load
    imports     which package modules a file runs (a checkpoint's code fingerprint, dvc.yaml's deps)
    lockcheck   a fresh dvc.lock's output hashes against the committed ones (CI's bit-identity check)
    exptable    the experiments table: headline errors and the params that differ, in 120 columns
"""

__version__ = "0.1.0"
