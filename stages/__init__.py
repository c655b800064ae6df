"""The pipeline's stage scripts, one per dvc.yaml stage, each run as `python -m stages.<name>`.

As modules, not as `python stages/<name>.py`: Python then puts the working directory, not
stages/, first on sys.path, so a stage imports the `alexnet` package of the checkout it runs in.
A `dvc exp run --queue` experiment runs in its own copy of the repository, and with the script
form it imported the editable install's package, that is whatever code the main workspace held
when the experiment ran rather than the code it was queued with.
"""
