"""A running average of the parameters, to evaluate instead of the last minibatch's weights.

Minibatch steps leave the weights jittering around where the loss is low: each
update follows one batch's gradient. Averaging the weights over the last steps
(Polyak averaging, here with a forgetting factor) cancels much of that jitter,
and the averaged model usually generalises better than any single step's
weights. After every update

    sums <- decay * sums + (1 - decay) * params,      averaged = sums / (1 - decay^t)

after t updates, with sums starting at zero. The division is Adam's bias
correction: it makes ``averaged`` an exact weighted mean of the t parameter
values so far, with weights proportional to decay^(t - i), instead of a mean
pulled towards zero for the first 1 / (1 - decay) steps. decay = 0.999 averages
over roughly the last thousand updates.

Training itself never sees the average: the solver swaps it in for validation
and keeps it as the best parameters (``CaptioningSolver(average_decay=...)``).
"""

from .backend import get_array_module, to_device, to_numpy


class ParameterAverage:
    """Exponential moving average of a dict of parameter arrays (NumPy or CuPy)."""

    def __init__(self, decay):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"average_decay must be a number in [0, 1), such as 0.999, got {decay!r}")
        self.decay = float(decay)
        self.steps = 0
        self.sums = None  # created on the first update, on the parameters' device

    def update(self, params):
        """Fold the current parameters into the average (in place; one temporary per array)."""
        if self.sums is None:
            self.sums = {name: get_array_module(value).zeros_like(value) for name, value in params.items()}
        for name, value in params.items():
            total = self.sums[name]
            total *= self.decay
            total += (1.0 - self.decay) * value
        self.steps += 1

    def averaged(self):
        """The bias-corrected average, a new dict of new arrays; None before the first update."""
        if self.steps == 0:
            return None
        correction = 1.0 - self.decay ** self.steps
        return {name: total / correction for name, total in self.sums.items()}

    def to(self, device):
        """Move the sums to ``device`` ('cpu' or 'cuda'), as ``model.to`` moves the parameters; returns self."""
        if self.sums is not None:
            self.sums = to_device(self.sums, device)
        return self

    def copy(self):
        other = ParameterAverage(self.decay)
        other.steps = self.steps
        other.sums = None if self.sums is None else {name: value.copy() for name, value in self.sums.items()}
        return other

    def state(self):
        """Host arrays and numbers, for a checkpoint."""
        sums = None if self.sums is None else {name: to_numpy(value) for name, value in self.sums.items()}
        return {"decay": self.decay, "steps": self.steps, "sums": sums}

    @classmethod
    def from_state(cls, state, device):
        average = cls(state["decay"])
        average.steps = int(state["steps"])
        average.sums = None if state["sums"] is None else to_device(dict(state["sums"]), device)
        return average
