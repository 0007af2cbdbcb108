"""automl-tl: search *how* to transfer a pretrained backbone to a small labelled dataset."""

__version__ = "0.1.0"
