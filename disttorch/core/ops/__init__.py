"""Differentiable ops. Each op's forward and backward live together in one Function subclass."""
