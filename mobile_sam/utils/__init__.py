"""Helpers shared by the predictor and the mask generators."""
