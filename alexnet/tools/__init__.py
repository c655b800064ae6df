"""The command-line tools, each a thin parser over a library module with the stages' error
contract (alexnet.cli.run_tool): ablations (the sweep), exptable, lockcheck, imports. Installed as
console scripts (alexnet-ablations, ...) and runnable as `python -m alexnet.tools.<name>`."""
