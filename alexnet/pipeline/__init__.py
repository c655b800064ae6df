"""Pipeline bookkeeping: git revision and machine (provenance), which modules a file runs
(imports), the committed dvc.lock against the clone (lockcheck)."""
