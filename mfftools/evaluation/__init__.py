"""Evaluations of an embeddings file: the instance protocol, the pair protocol, fairness measures."""
