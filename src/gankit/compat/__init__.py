"""Familiar APIs of courses and reference code, as thin wrappers over gankit's own pieces.

``gankit.compat.cs231n``: the functions of Stanford CS231n's GAN assignment (GANs-PyTorch.ipynb).
"""
