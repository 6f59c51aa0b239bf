"""The ``specinterp`` command.

``specinterp report`` analyses a model on real data and writes ``report/index.html``
(self-contained), ``report/metrics.json`` (schema: :data:`specinterp.report.render.
METRICS_SCHEMA`) and prints a summary. With no options it trains (or reuses) the built-in
arraynet MLP on scikit-learn's digits, NumPy only. Errors end with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["main"]

#: default samples of the report's Hessian (12 batches of 128: the built-in's 1438 training digits)
HESSIAN_SAMPLES = 1536


def _parser() -> argparse.ArgumentParser:
    from .report.curvature import DENSITY_SECONDS

    parser = argparse.ArgumentParser(
        prog="specinterp",
        description="Matrix-spectral stability and interpretability diagnostics "
        "(arXiv:2602.01136).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = sub.add_parser(
        "report",
        help="analyse a model on real data and write an HTML/JSON/Markdown report",
        description="Analyse a model on real data (default: the built-in MLP on scikit-learn's "
        "digits) and write report/index.html and report/metrics.json.",
    )
    rep.add_argument(
        "--model",
        metavar="MODULE:FACTORY",
        help="factory returning a torch module (Hugging Face models too), a Flax NNX or "
        "Equinox module, a fitted scikit-learn MLP, an arraynet Sequential or a JAX "
        "(apply_fn, params) pair; MODULE may be a .py path",
    )
    rep.add_argument(
        "--data",
        metavar="PATH",
        help=".npz with arrays x and y, a folder with MNIST IDX / CIFAR batches, or "
        "MODULE:FACTORY returning (x, y) (token ids for a language model). The loss follows "
        "y: integer labels give the cross-entropy (labels 0/1 for one logit per sample or per "
        "output: the binary one), real targets the squared error",
    )
    rep.add_argument("--samples", type=int, default=200, help="samples to analyse (default 200)")
    rep.add_argument(
        "--hessian-samples",
        type=int,
        default=HESSIAN_SAMPLES,
        help="samples in the loss whose Hessian is reported, in batches of 128 (default "
        f"{HESSIAN_SAMPLES}: every training digit of the built-in model)",
    )
    rep.add_argument(
        "--density-seconds",
        type=float,
        default=DENSITY_SECONDS,
        help="time the Hessian density may take: 4 SLQ probes × 60 steps, or fewer where "
        f"those would take longer (default {DENSITY_SECONDS:g})",
    )
    rep.add_argument("--out", default="report", help="output folder (default: report)")
    rep.add_argument("--seed", type=int, default=0, help="seed of subsampling and estimators")
    rep.add_argument("--device", default=None, help="torch device for a torch model (e.g. cuda)")
    rep.add_argument("--format", choices=["html", "json", "md"], default="html")
    rep.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    rep.add_argument("--traceback", action="store_true", help="show tracebacks of errors")
    ck = sub.add_parser(
        "checkpoints",
        help="train the built-in MLP and plot spectral quantities against the epoch",
        description="Train the built-in MLP on digits, keep every epoch's weights, and write "
        "checkpoints/checkpoints.html with the top Hessian eigenvalue, the NTK condition number "
        "and the mean Jacobian entropy against the epoch.",
    )
    ck.add_argument("--epochs", type=int, default=20, help="epochs to train (default 20)")
    ck.add_argument("--out", default="checkpoints", help="output folder (default: checkpoints)")
    ck.add_argument("--seed", type=int, default=0, help="seed of training and estimators")
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.add_argument("--traceback", action="store_true", help="show tracebacks of errors")
    return parser


def _checkpoints(args: argparse.Namespace) -> int:
    from .report.training_run import train_and_sweep, write_sweep

    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1; got {args.epochs}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer; got {args.seed}")
    bar = None
    if not args.quiet:
        try:
            from tqdm import tqdm

            bar = tqdm(total=args.epochs, desc="training", unit="epoch", file=sys.stderr)
        except ImportError:
            bar = None
    try:
        sweep = train_and_sweep(args.epochs, args.seed, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    path = write_sweep(sweep, args.out)
    if not args.quiet:
        print(f"checkpoints written to {path}")
    return 0


class _Progress:
    """Step-level progress on stderr (tqdm when installed)."""

    def __init__(self, quiet: bool, total: int) -> None:
        self.quiet = quiet
        self.total = total
        self.bar: Any = None

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.bar is None and not self.quiet:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="step", file=sys.stderr, leave=False)
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.set_description(name)
        elif not self.quiet:
            print(f"… {name}", file=sys.stderr)
        yield
        if self.bar:
            self.bar.update(1)
        self.last = time.perf_counter() - t0

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def _to_model_arrays(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    """Explicit conversion of the data to the model's namespace, dtype and device."""
    tokens = np.issubdtype(x.dtype, np.integer)  # token ids stay integer
    return (
        model.xp.asarray(x, dtype=None if tokens else model.dtype, device=model.device),
        model.xp.asarray(y, device=model.device),
    )


def _fit_shape(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, str]:
    """Apply the model to a probe batch; flatten per-sample inputs if that is what fits."""
    from .report.loading import ReportInputError

    tried = []
    for candidate, note in ((x, ""), (x.reshape(x.shape[0], -1), " (inputs flattened)")):
        if note and x.ndim == 2:
            break
        xa, ya = _to_model_arrays(model, candidate, y)
        try:
            out = model.apply(xa[:2, ...])
            if out.ndim == 2 and int(out.shape[0]) == min(2, int(x.shape[0])):
                return xa, ya, note
            tried.append(f"output shape {tuple(out.shape)}")
        except Exception as exc:
            tried.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise ReportInputError(
        f"the model cannot be applied to data with per-sample shape {tuple(x.shape[1:])} "
        f"({tried[0]})"
    )


def _report(args: argparse.Namespace) -> int:
    from specinterp import as_model

    from .report.analysis import analyse
    from .report.builtin import EPOCHS, builtin_model
    from .report.loading import ReportInputError, load_data, load_model
    from .report.render import write_report

    if args.samples < 1:
        raise ReportInputError(f"--samples must be at least 1; got {args.samples}")
    if args.hessian_samples < 1:
        raise ReportInputError(f"--hessian-samples must be at least 1; got {args.hessian_samples}")
    if not args.density_seconds > 0:  # NaN too
        raise ReportInputError(
            f"--density-seconds must be a positive number of seconds; got {args.density_seconds}"
        )
    if args.seed < 0:
        raise ReportInputError(f"--seed must be a non-negative integer; got {args.seed}")
    progress = _Progress(args.quiet, total=8)
    try:
        if args.model is None:
            bar = None
            if not args.quiet:
                try:
                    from tqdm import tqdm

                    bar = tqdm(
                        total=EPOCHS,
                        desc="training built-in MLP",
                        unit="epoch",
                        file=sys.stderr,
                        leave=False,
                    )
                except ImportError:
                    bar = None
            built = builtin_model(args.seed, progress=bar)
            if bar is not None:
                bar.close()
            obj = built.net
            model_name = "built-in arraynet ReLU MLP 64-64-10 on digits" + (
                " (cached weights)" if built.cached else ""
            )
            x, y, data_name = built.x_test, built.y_test, "scikit-learn digits, held-out 20 %"
            # the Hessian of the training loss, over every training digit
            curvature = (built.x_train, built.y_train)
        else:
            obj = load_model(args.model)
            model_name = args.model
            x = y = curvature = None
        if args.data is not None:
            x, y, data_name = load_data(args.data)
        elif x is None:
            from specinterp.datasets import load_digits

            x, y = load_digits()
            data_name = "scikit-learn digits"
        if args.device is not None:
            if not hasattr(obj, "to"):
                raise ReportInputError("--device applies to torch models only")
            obj = obj.to(args.device)
        try:
            model = as_model(*obj) if isinstance(obj, tuple) else as_model(obj)
        except Exception as exc:
            raise ReportInputError(f"cannot use the model: {exc}") from exc
        rng = np.random.default_rng(args.seed)
        n = min(args.samples, len(y))
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        xa, ya, note = _fit_shape(model, np.asarray(x)[idx], np.asarray(y)[idx])
        # the Hessian is of the loss over all the data (up to --hessian-samples, batches of 128)
        cx, cy = (x, y) if curvature is None or args.data is not None else curvature
        every = np.sort(rng.permutation(len(cy))[: args.hessian_samples])
        xh, yh, _ = _fit_shape(model, np.asarray(cx)[every], np.asarray(cy)[every])
        rep = analyse(
            model,
            xa,
            ya,
            model_name=model_name,
            data_name=data_name + note,
            seed=args.seed,
            step=progress.step,
            curvature_data=(xh, yh),
            density_seconds=args.density_seconds,
            progress=not args.quiet,
        )
        figs: dict[str, bytes] = {}
        if args.format == "html":
            with progress.step("figures"):
                try:
                    from .report.figures import make_figures

                    figs = make_figures(rep)
                except ImportError:
                    rep.missing.append(
                        "figures: matplotlib is not installed (pip install 'specinterp[plot]')"
                    )
        main_file = write_report(rep, args.out, args.format, figs)
    finally:
        progress.close()
    if not args.quiet:
        _summary(rep, main_file)
    return 0


def _summary(rep: Any, main_file: Any) -> None:
    from .report.tables import format_table

    g = rep.gmsi
    rows = [
        ("accuracy", rep.accuracy),
        ("GMSI", g.value),
        ("binding", g.binding),
        *[(f"s_{k}", v) for k, v in g.components.items()],
        ("mean H(J)", float(np.nanmean(rep.jacobian.entropy))),
        ("mean κ_attr(J)", float(np.nanmean(rep.jacobian.attribution_condition_number))),
        ("max-sensitivity (mean)", rep.attribution["max_sensitivity_mean"]),
        ("Hessian λ_max", float(rep.hessian_values[0])),
    ]
    print(f"{rep.model} — {rep.data}, {rep.num_samples} samples")
    print(format_table(["quantity", "value"], rows))
    print(f"report written to {main_file}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``specinterp`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ._allocator import keep_freed_memory

    keep_freed_memory()  # a command that exits: large freed blocks may stay in the heap
    try:
        return _checkpoints(args) if args.command == "checkpoints" else _report(args)
    except KeyboardInterrupt:
        print("specinterp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "traceback", False):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"specinterp: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
