"""The kubemu command (kubectl-shaped)."""
