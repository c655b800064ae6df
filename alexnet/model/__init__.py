"""The network: the paper's net with its ablation switches and the torchvision variant (net), and a
trained net's files (netstore)."""
