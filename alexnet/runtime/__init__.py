"""How a process computes: bit identity's environment, set before numpy or torch loads (pinning),
and torch's switches, the device and safe torch.load (backend)."""
