"""Data: profile sources (synthetic generator, files, real tweets), labels, datamodule."""
