"""mfftools: streaming accuracy and fairness evaluation for face recognition."""

__version__ = "0.1.0"
