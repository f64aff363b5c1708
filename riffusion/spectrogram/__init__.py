"""Spectrograms: parameters, analysis DSP, the image format, phase reconstruction, conversion."""
