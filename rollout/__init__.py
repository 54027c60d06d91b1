"""Rollouts: a revision (or a new region) brought across the fleet wave by wave, on top of the DR pipeline."""
