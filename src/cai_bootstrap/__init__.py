"""cai-bootstrap: a base model bootstraps its own alignment, stage by stage, with held-out gates."""

__version__ = "0.1.0"
