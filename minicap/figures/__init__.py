"""Figures of a captioning run, written as PNG files (matplotlib, Agg, no GUI).

- ``plot_loss_curves``        training loss per iteration, validation loss per epoch
- ``plot_captions``           images with their generated and reference captions
- ``plot_caption_comparison`` the same for train and test images, side by side
- ``plot_attention``          one panel per word with its attention map over the image
  (``generated_words`` gives the words of a generated caption, with its ``<END>``)
- ``plot_beam_search``        an image with the beam's n-best captions and scores

Inputs are host NumPy arrays and strings (callers move data off the GPU and
decode ids to words). Every function creates the parent folder, writes the PNG
atomically and returns its path; sizes are exact pixel formulas given in each
docstring. matplotlib is imported only when a figure is drawn.
"""

from .attention import generated_words, plot_attention, upsample_bilinear
from .captions import plot_beam_search, plot_caption_comparison, plot_captions
from .curves import moving_average, plot_loss_curves

__all__ = [
    "moving_average",
    "plot_attention",
    "generated_words",
    "plot_beam_search",
    "plot_caption_comparison",
    "plot_captions",
    "plot_loss_curves",
    "upsample_bilinear",
]
