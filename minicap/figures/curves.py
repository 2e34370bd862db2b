"""Training curves: the loss per iteration, and the validation loss per epoch."""

import numpy as np

from minicap.argcheck import check_int

from ._layout import check_png_path, new_figure, place_axes, save_png

CURVE_WIDTH = 768
CURVE_HEIGHT = 448


def moving_average(values, window):
    """Trailing mean over the last ``window`` values (fewer at the start), same length.

    smoothed[i] = mean of the finite values in values[max(0, i - window + 1) : i + 1]

    NaN and inf are skipped, so one bad step (a diverging run) spoils only the windows
    that contain it; a window with no finite value gives NaN (a gap in the line).
    """
    values = np.asarray(values, dtype=np.float64)
    window = check_int("window", window, low=1)
    finite = np.isfinite(values)
    # Running sums of the finite values and of their count: a NaN put into a plain cumulative
    # sum would be carried into every later window, not just the `window` ones that hold it.
    sums = np.cumsum(np.concatenate([[0.0], np.where(finite, values, 0.0)]))
    counts = np.cumsum(np.concatenate([[0], finite]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    n = counts[ends] - counts[starts]
    totals = sums[ends] - sums[starts]
    return np.divide(totals, n, out=np.full(len(values), np.nan), where=n > 0)


def _check_history(values, name):
    if type(values).__module__.startswith("cupy"):
        raise ValueError(f"{name} is a CuPy array; pass host numbers (float(loss) per step)")
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D list of numbers") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of numbers, got shape {values.shape}")
    return values


def plot_loss_curves(loss_history, path, val_loss_history=None, iterations_per_epoch=None):
    """Save the training loss per iteration and, optionally, the validation loss per epoch.

    loss_history:         one training loss per iteration (host numbers).
    val_loss_history:     optional (None or empty: no validation curve, as for a
                          run without a val split), one validation loss per epoch; value k
                          (counting from 1) is measured at the end of epoch k
                          and drawn at iteration ``k * iterations_per_epoch``.
    iterations_per_epoch: when not given, the epochs are taken to split the
                          iterations evenly: ``len(loss) / len(val)``.

    The training loss is drawn as a thin line with a trailing moving average
    (window ``max(1, len // 20)``, over the finite values only) over it; with validation losses an epoch
    scale runs along the top. The PNG is 768 x 448 pixels. Returns the path.
    """
    path = check_png_path(path)
    loss = _check_history(loss_history, "loss_history")
    # An empty history is a run with no val split (the solver allows one): draw no validation curve.
    no_val = val_loss_history is None or np.shape(val_loss_history) == (0,)
    val = None if no_val else _check_history(val_loss_history, "val_loss_history")
    iterations_per_epoch = check_int("iterations_per_epoch", iterations_per_epoch, low=1, none_ok=True)

    fig = new_figure(CURVE_WIDTH, CURVE_HEIGHT)
    ax = place_axes(fig, 96, 64, CURVE_WIDTH - 128, CURVE_HEIGHT - 128)
    ax.set_axis_on()
    steps = np.arange(1, len(loss) + 1)
    ax.plot(steps, loss, color="#9ecae1", linewidth=0.8, label="training loss")
    ax.plot(steps, moving_average(loss, max(1, len(loss) // 20)), color="#08519c", linewidth=1.8, label="moving average")
    if val is not None:
        per_epoch = iterations_per_epoch or len(loss) / len(val)
        epochs = np.arange(1, len(val) + 1)
        ax.plot(epochs * per_epoch, val, "o-", color="#d94801", label="validation loss (end of epoch)")
        top = ax.secondary_xaxis("top", functions=(lambda it: it / per_epoch, lambda ep: ep * per_epoch))
        top.set_xlabel("epoch")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return save_png(fig, path)
