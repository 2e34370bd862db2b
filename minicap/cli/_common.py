"""Options and output helpers shared by the subcommands."""


def add_device(parser):
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to compute (cuda needs CuPy and a GPU; default: cpu)")


def table(rows, headers):
    """A plain aligned text table (for summaries printed by the CLI)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_metrics(metrics):
    keys = [k for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "ROUGE-L", "truth", "grounding") if k in metrics]
    return table([[k, "n/a" if metrics[k] is None else f"{metrics[k]:.3f}"] for k in keys], ["metric", "value"])
