"""Decoupled distillation: train your own MobileSAM (the MobileSAM paper, section 3.2). CLI: `python -m distill`."""
