"""The paper's claims, checked: the ablation arms and their measures (arms), the verdict rule
(verdict), the claims table (table), the sweep of DVC experiments (sweep, expqueue, exptable) and
the CIFAR-10 claims (cifar)."""
