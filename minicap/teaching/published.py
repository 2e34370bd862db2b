"""The courses' known-value checks: fixed inputs and the values a correct function gives.

Each entry is a function building the inputs of one check (``np.linspace``
constructions, as the notebooks write them) and the expected arrays, printed
to 8 decimals as the notebooks print them. Numbers only: the code is ours.

Sources:

- CS231n assignment 3 (2017-18), ``RNN_Captioning.ipynb`` and ``LSTM_Captioning.ipynb``:
  rnn_step_forward, rnn_forward, word_embedding_forward, lstm_step_forward,
  lstm_forward, the temporal softmax loss sanity values and the two
  ``CaptioningRNN`` losses (``expected_loss``);
- EECS 498 (FA19/20) A4: the temporal softmax loss sanity ranges;
- CS231n assignment 2, ``FullyConnectedNets.ipynb``: affine_forward and the
  update rules sgd_momentum, rmsprop and adam;
- EECS 498 (FA19/20) A4, ``rnn_lstm_attention_captioning``: dot_product_attention,
  the attention LSTM step (its ``lstm_step_forward(..., attn, Wattn)``, our
  ``attention_lstm_step_forward``) and the attention LSTM over a sequence;
- minicap's own (marked ``source="minicap"``): temporal_affine_forward, for which
  neither course prints a value. Computed once with the library, like the
  courses' own constants were computed with their solutions.

The EECS 498 captioning losses (150.609..., 146.316..., 46.911...) are left out:
they need the course's pretrained CNN on 112x112 images.

Tolerances are the notebooks' ("you should see errors on the order of e-8 or
less" is read as below 1e-7, one order above the stated one); each entry says
which. Every constant is reproduced by ``minicap.layers`` in
tests/test_teaching_published.py.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class KnownValue:
    """One known-value check of ``function``: ``build()`` gives (args, expected).

    args: the positional arguments; expected: {output: array}, where the output
    is a position in the result (an int) or a key of the update rule's config
    (a str). tolerance: the largest relative error that passes; outputs: the
    names of the result's positions, for the report.
    """

    function: str
    build: Callable
    tolerance: float
    source: str
    outputs: tuple = ("out",)


def _ls(start, stop, *shape):
    return np.linspace(start, stop, num=int(np.prod(shape))).reshape(shape)


def _rnn_step():
    N, D, H = 3, 10, 4
    args = (_ls(-0.4, 0.7, N, D), _ls(-0.2, 0.5, N, H), _ls(-0.1, 0.9, D, H), _ls(-0.3, 0.7, H, H),
            _ls(-0.2, 0.4, H))
    next_h = [[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
              [0.66854692, 0.79562378, 0.87755553, 0.92795967],
              [0.97934501, 0.99144213, 0.99646691, 0.99854353]]
    return args, {0: np.array(next_h)}


def _rnn_forward():
    N, T, D, H = 2, 3, 4, 5
    args = (_ls(-0.1, 0.3, N, T, D), _ls(-0.3, 0.1, N, H), _ls(-0.2, 0.4, D, H), _ls(-0.4, 0.1, H, H),
            _ls(-0.7, 0.1, H))
    h = [[[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
          [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
          [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
         [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
          [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
          [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]]
    return args, {0: np.array(h)}


def _word_embedding():
    V, W = 5, 3
    args = (np.array([[0, 3, 1, 2], [2, 1, 0, 3]]), _ls(0, 1, V, W))
    rows = {0: [0.0, 0.07142857, 0.14285714], 1: [0.21428571, 0.28571429, 0.35714286],
            2: [0.42857143, 0.5, 0.57142857], 3: [0.64285714, 0.71428571, 0.78571429]}
    out = [[rows[0], rows[3], rows[1], rows[2]], [rows[2], rows[1], rows[0], rows[3]]]
    return args, {0: np.array(out)}


def _affine():
    args = (_ls(-0.1, 0.5, 2, 4, 5, 6), _ls(-0.2, 0.3, 120, 3), _ls(-0.3, 0.1, 3))
    out = [[1.49834967, 1.70660132, 1.91485297], [3.25553199, 3.5141327, 3.77273342]]
    return args, {0: np.array(out)}


def _temporal_affine():
    N, T, H, V = 2, 3, 4, 5
    args = (_ls(-0.2, 0.6, N, T, H), _ls(-0.5, 0.4, H, V), _ls(-0.1, 0.3, V))
    # 12 decimals: one entry is near zero, where 8 would cost 2e-7 of relative error
    out = [[[0.026773455378, 0.098764302059, 0.170755148741, 0.242745995423, 0.314736842105],
            [-0.053775743707, 0.044576659039, 0.142929061785, 0.241281464531, 0.339633867277],
            [-0.134324942792, -0.009610983982, 0.115102974828, 0.239816933638, 0.364530892449]],
           [[-0.214874141876, -0.063798627002, 0.087276887872, 0.238352402746, 0.389427917620],
            [-0.295423340961, -0.117986270023, 0.059450800915, 0.236887871854, 0.414324942792],
            [-0.375972540046, -0.172173913043, 0.031624713959, 0.235423340961, 0.439221967963]]]
    return args, {0: np.array(out)}


def _lstm_step_inputs():
    N, D, H = 3, 4, 5
    return (_ls(-0.4, 1.2, N, D), _ls(-0.3, 0.7, N, H), _ls(-0.4, 0.9, N, H), _ls(-2.1, 1.3, D, 4 * H),
            _ls(-0.7, 2.2, H, 4 * H), _ls(0.3, 0.7, 4 * H))


def _lstm_step():
    next_h = [[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
              [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
              [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]]
    next_c = [[0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
              [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
              [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]]
    return _lstm_step_inputs(), {0: np.array(next_h), 1: np.array(next_c)}


def _lstm_forward():
    N, D, H, T = 2, 5, 4, 3
    args = (_ls(-0.4, 0.6, N, T, D), _ls(-0.4, 0.8, N, H), _ls(-0.2, 0.9, D, 4 * H), _ls(-0.3, 0.6, H, 4 * H),
            _ls(0.2, 0.7, 4 * H))
    h = [[[0.01764008, 0.01823233, 0.01882671, 0.0194232],
          [0.11287491, 0.12146228, 0.13018446, 0.13902939],
          [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
         [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
          [0.6704845, 0.69350089, 0.71486014, 0.7346449],
          [0.81733511, 0.83677871, 0.85403753, 0.86935314]]]
    return args, {0: np.array(h)}


def _dot_product_attention():
    N, H = 2, 5
    args = (_ls(-0.4, 0.6, N, H), _ls(-0.4, 1.8, N, H, 4, 4))
    attn = [[-0.29784344, -0.07645979, 0.14492386, 0.36630751, 0.58769115],
            [0.81412643, 1.03551008, 1.25689373, 1.47827738, 1.69966103]]
    weights = [[[0.06511126, 0.06475411, 0.06439892, 0.06404568],
                [0.06369438, 0.06334500, 0.06299754, 0.06265198],
                [0.06230832, 0.06196655, 0.06162665, 0.06128861],
                [0.06095243, 0.06061809, 0.06028559, 0.05995491]],
               [[0.05717142, 0.05784357, 0.05852362, 0.05921167],
                [0.05990781, 0.06061213, 0.06132473, 0.06204571],
                [0.06277517, 0.06351320, 0.06425991, 0.06501540],
                [0.06577977, 0.06655312, 0.06733557, 0.06812722]]]
    return args, {0: np.array(attn), 1: np.array(weights)}


def _attention_lstm_step():
    N, H = 3, 5
    x, prev_h, prev_c, Wx, Wh, b = _lstm_step_inputs()
    attn, Wattn = _ls(0.6, 1.8, N, H), _ls(1.3, 4.2, H, 4 * H)
    next_h = [[0.53704256, 0.59980774, 0.65596820, 0.70569729, 0.74932626],
              [0.78729857, 0.82010653, 0.84828362, 0.87235677, 0.89283167],
              [0.91017981, 0.92483119, 0.93717126, 0.94754073, 0.95623746]]
    next_c = [[0.59999328, 0.69285041, 0.78570758, 0.87856479, 0.97142202],
              [1.06428558, 1.15714276, 1.24999992, 1.34285708, 1.43571424],
              [1.52857143, 1.62142857, 1.71428571, 1.80714286, 1.90000000]]
    return (x, prev_h, prev_c, attn, Wx, Wh, Wattn, b), {0: np.array(next_h), 1: np.array(next_c)}


def _attention_forward():
    N, D, H, T = 2, 5, 4, 3
    args = (_ls(-0.4, 0.6, N, T, D), _ls(-0.4, 1.8, N, H, 4, 4), _ls(-0.2, 0.9, D, 4 * H),
            _ls(-0.3, 0.6, H, 4 * H), _ls(1.3, 4.2, H, 4 * H), _ls(0.2, 0.7, 4 * H))
    h = [[[0.56141729, 0.70274849, 0.80000386, 0.86349400],
          [0.89556391, 0.92856726, 0.94950579, 0.96281018],
          [0.96792077, 0.97535465, 0.98039623, 0.98392994]],
         [[0.95065880, 0.97135490, 0.98344373, 0.99045552],
          [0.99317679, 0.99607466, 0.99774317, 0.99870293],
          [0.99907382, 0.99946784, 0.99969426, 0.99982435]]]
    return args, {0: np.array(h)}


def _rule_inputs():
    N, D = 4, 5
    return _ls(-0.4, 0.6, N, D), _ls(-0.6, 0.4, N, D)


def _sgd_momentum():
    w, dw = _rule_inputs()
    config = {"learning_rate": 1e-3, "velocity": _ls(0.6, 0.9, 4, 5)}
    next_w = [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
              [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
              [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
              [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]]
    velocity = [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
                [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
                [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
                [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]]
    return (w, dw, config), {0: np.array(next_w), "velocity": np.array(velocity)}


def _rmsprop():
    w, dw = _rule_inputs()
    config = {"learning_rate": 1e-2, "cache": _ls(0.6, 0.9, 4, 5)}
    next_w = [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
              [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
              [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
              [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]]
    cache = [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
             [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
             [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
             [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]]
    return (w, dw, config), {0: np.array(next_w), "cache": np.array(cache)}


def _adam():
    w, dw = _rule_inputs()
    config = {"learning_rate": 1e-2, "m": _ls(0.6, 0.9, 4, 5), "v": _ls(0.7, 0.5, 4, 5), "t": 5}
    next_w = [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
              [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
              [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
              [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]]
    v = [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
         [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
         [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
         [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]]
    m = [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
         [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
         [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
         [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]]
    return (w, dw, config), {0: np.array(next_w), "v": np.array(v), "m": np.array(m)}


CS231N_A3 = "CS231n assignment 3"
CS231N_A2 = "CS231n assignment 2"
EECS498 = "EECS 498 A4"

KNOWN_VALUES = (
    KnownValue("affine_forward", _affine, 1e-8, CS231N_A2),
    KnownValue("word_embedding_forward", _word_embedding, 1e-7, CS231N_A3),
    KnownValue("temporal_affine_forward", _temporal_affine, 1e-7, "minicap"),
    KnownValue("rnn_step_forward", _rnn_step, 1e-7, CS231N_A3, ("next_h",)),
    KnownValue("rnn_forward", _rnn_forward, 1e-7, CS231N_A3, ("h",)),
    KnownValue("lstm_step_forward", _lstm_step, 1e-7, CS231N_A3, ("next_h", "next_c")),
    KnownValue("lstm_forward", _lstm_forward, 1e-6, CS231N_A3, ("h",)),
    KnownValue("dot_product_attention_forward", _dot_product_attention, 1e-7, EECS498,
               ("attn", "attn_weights")),
    KnownValue("attention_lstm_step_forward", _attention_lstm_step, 1e-7, EECS498,
               ("next_h", "next_c")),
    KnownValue("attention_forward", _attention_forward, 1e-7, EECS498, ("h",)),
    KnownValue("sgd_momentum", _sgd_momentum, 1e-7, CS231N_A2, ("next_w",)),
    KnownValue("rmsprop", _rmsprop, 1e-6, CS231N_A2, ("next_w",)),
    KnownValue("adam", _adam, 1e-6, CS231N_A2, ("next_w",)),
)

# temporal_softmax_loss on scores 0.001 * randn (nearly uniform over V = 10 words),
# so the loss is about log(10) = 2.3 per kept step: (N, T, V, fraction of steps kept, about).
SOFTMAX_SANITY = ((100, 1, 10, 1.0, 2.3), (100, 10, 10, 1.0, 23.0), (5000, 10, 10, 0.1, 2.3))
SOFTMAX_SANITY_TOLERANCE = 0.03  # relative; the draws are seeded, and the three land within 1%

# EECS 498's version: targets set to <NULL> (id 0, ignored) where a uniform draw exceeds the
# fraction, and id 0 also ignored where drawn, so about 90% of log(10) per step; the
# notebook gives ranges: (N, T, V, fraction, (low, high)).
EECS498_SOFTMAX_SANITY = ((1000, 1, 10, 1.0, (2.00, 2.11)), (1000, 10, 10, 1.0, (20.6, 21.0)),
                          (5000, 10, 10, 0.1, (2.00, 2.11)))

# CaptioningRNN.loss with every parameter np.linspace(-1.4, 1.3) and V = len(word_to_idx) = 3
# (CS231n's expected_loss; a difference below 1e-10 was the notebooks' bar).
MODEL_LOSSES = {"rnn": ((-1.5, 0.3), 9.83235591003), "lstm": ((-0.5, 1.7), 9.82445935443)}
MODEL_LOSS_TOLERANCE = 1e-10
