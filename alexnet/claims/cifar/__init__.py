"""The paper's CIFAR-10 claims: Figure 1 (ReLU against tanh) and the LRN result of Section 3.3:
the data (the copy, checked), the authors' nets, what both claims train with, each claim's
protocol (figure1, lrn) and the stage (run)."""
