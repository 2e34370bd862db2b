"""Column phases: a strided depthwise conv's input stored so that every tap reads whole rows.

A depthwise k x k conv with stride 1 runs as k*k passes along whole image rows
(``ops.Depthwise``): tap (p, q) of output row i is input row i + p from column q on,
Wo*C contiguous values. With stride s, tap q of output column j reads padded column
s*j + q, every s-th pixel, so no tap is one contiguous run: the einsum over the
windows then runs its inner loop along the C channels of one pixel at a time, through
NumPy's buffered iterator.

Stored by *phase*, each padded row holds first its columns 0, s, 2s, ..., then its
columns 1, 1 + s, 1 + 2s, ..., and so on: s planes side by side, each plane a run of
slots of C values. Tap q of output column j is then slot j + q // s of plane q % s,
so tap q covers the Wo output columns with Wo consecutive slots: one contiguous run
again. The taps of one plane lie a slot apart, so the conv becomes one row-tap einsum
per plane (``ops.Depthwise.from_phases``).

Splitting a map into phases is a copy, and a strided one. It costs nothing extra
where the layer before is a 1x1 conv, as in MobileNet v2's strided blocks
(``blocks.Bottleneck``): a 1x1 conv treats every pixel alike, so it can read its
input pixels in phase order (``gather``) and write its output straight into the
phases. Its input has a sixth of the channels of its output (MobileNet's expansion
factor), so the gather copies a sixth of what splitting the output would.
"""


class Phases:
    """Where the padded columns of one row lie when split into phases, for an input
    ``width`` pixels wide and a conv with ``kernel`` columns, ``stride`` and ``padding``.

    Attributes: ``wo`` output columns; ``slots`` pixels per stored row; ``starts[ph]``
    the first slot of plane ph (it holds padded columns ph, ph + s, ...: as many as the
    taps read); ``inside``: (slot, column, count) per plane, slots slot ... slot + count - 1
    holding input columns column, column + s, ...; ``border``: the slots that hold padding.
    """

    def __init__(self, width, kernel, stride, padding):
        if not 1 < stride <= kernel:
            raise ValueError(f"Phases: needs a stride from 2 to the kernel's {kernel} columns, got {stride}")
        self.width, self.kernel, self.stride = width, kernel, stride
        self.wo = (width + 2 * padding - kernel) // stride + 1
        self.starts, self.inside, self.border = [], [], []
        slot = 0
        for phase in range(stride):
            # Output column wo - 1 reads slot wo - 1 + t for tap q = phase + s*t, t <= (k - 1 - phase) // s.
            size = self.wo + (kernel - 1 - phase) // stride
            columns = [phase + stride * m - padding for m in range(size)]  # input column per slot
            inside = [m for m, column in enumerate(columns) if 0 <= column < width]
            if inside:  # consecutive slots: the columns grow by s
                self.inside.append((slot + inside[0], columns[inside[0]], len(inside)))
            self.border += [slot + m for m, column in enumerate(columns) if not 0 <= column < width]
            self.starts.append(slot)
            slot += size
        self.slots = slot

    def gather(self, x, out):
        """out[:, :, slot] = x[:, :, the slot's column] for x (N, h, W, C) and out (N, h, slots, C);
        the border slots get 0 (a finite value, for a 1x1 conv to run over; they are overwritten)."""
        if x.shape[2] != self.width:
            raise ValueError(f"Phases.gather: made for {self.width} columns, got {x.shape[2]}")
        s = self.stride
        for slot, column, count in self.inside:
            out[:, :, slot : slot + count] = x[:, :, column : column + s * (count - 1) + 1 : s]
        for slot in self.border:
            out[:, :, slot] = 0
        return out
