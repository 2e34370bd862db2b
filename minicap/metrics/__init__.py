"""Caption metrics of the COCO evaluation, in pure Python (no Java).

- ``evaluate(references, candidates)``: BLEU-1..4, CIDEr-D and ROUGE-L in one dict
- ``bleu``, ``cider_d``, ``rouge_l``: one metric each, on the same inputs
- ``tokenize``: the PTB-style tokenizer every metric applies first

Inputs are raw strings: ``references`` maps an image key to a list of reference
captions, ``candidates`` maps the same keys to one generated caption. The
numbers equal the official ``pycocoevalcap`` scorers (Bleu(4), Cider, Rouge) on
the same tokenized captions. METEOR and SPICE need Java and are not provided.
"""

from minicap.metrics.bleu import bleu
from minicap.metrics.cider import cider_d
from minicap.metrics.evaluation import evaluate
from minicap.metrics.rouge import rouge_l
from minicap.metrics.tokenizer import tokenize

__all__ = ["bleu", "cider_d", "evaluate", "rouge_l", "tokenize"]
