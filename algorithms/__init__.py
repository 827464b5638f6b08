"""The paper's solvers, one algorithm per module."""
