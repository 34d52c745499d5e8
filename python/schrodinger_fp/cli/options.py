"""Options and helpers shared by the ``sfp`` subcommands."""

from __future__ import annotations

import argparse

from schrodinger_fp.format import CONTAINERS, Format
from schrodinger_fp.training.policy import Policy, PolicyLike


class CommandError(Exception):
    """A failure to report as ``sfp: error: ...`` with exit code 1."""


def human(nbytes: float) -> str:
    """Format a byte count with a decimal unit: ``90.9 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


def add_format_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--exp-bits/--man-bits/--rounding/--underflow/--seed`` or ``--policy``."""
    group = parser.add_argument_group(
        "format (default: lossless)",
        "A width above a tensor's dtype keeps that dtype's whole field (--man-bits 8 keeps 8 "
        "mantissa bits of float32 and all 7 of bfloat16); sfp list shows each tensor's format.",
    )
    group.add_argument("--exp-bits", type=int, metavar="N", help="exponent bits to keep")
    group.add_argument("--man-bits", type=int, metavar="N", help="mantissa bits to keep")
    group.add_argument("--rounding", choices=("truncate", "nearest", "stochastic"))
    group.add_argument("--underflow", choices=("flush", "stochastic"))
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for stochastic rounding (each tensor rounds with a seed derived from it "
        "and the tensor's name)",
    )
    group.add_argument(
        "--container",
        choices=CONTAINERS,
        metavar="NAME",
        help="a named container instead of widths: float8_e4m3fn, float8_e5m2, bfloat16, ... "
        "(the cast), NAME_satfinite (saturating), or a block format: mxfp8_e4m3, mxfp8_e5m2, "
        "mxfp6_e2m3, mxfp6_e3m2, mxfp4, nvfp4",
    )
    group.add_argument("--policy", metavar="JSON", help="per-tensor formats: a policy JSON file")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet`` and ``-T/--threads``."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument(
        "-T",
        "--threads",
        type=_thread_count,
        default=0,
        metavar="N",
        help=f"codec threads, 1 to {MAX_THREADS} (0: all cores, the default)",
    )


#: The most codec threads the core accepts.
MAX_THREADS = 1024


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_THREADS}, got {value}")
    return value


def check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that argparse cannot express (exits with code 2)."""
    widths = ("exp_bits", "man_bits", "rounding", "underflow")
    for option in ("policy", "container"):
        if getattr(args, option, None) is not None and any(
            getattr(args, k) is not None for k in widths
        ):
            parser.error(
                f"--{option} cannot be combined with --exp-bits/--man-bits/--rounding/--underflow"
            )
    if getattr(args, "policy", None) is not None and getattr(args, "container", None) is not None:
        parser.error("--policy cannot be combined with --container")


def policy_from_args(args: argparse.Namespace) -> PolicyLike:
    """Return the policy the format options ask for (None: lossless).

    Raises
    ------
    CommandError
        If the policy file cannot be read.
    ValueError
        If it is not a valid policy, or the bit counts are invalid.
    """
    if args.policy is not None:
        try:
            return Policy.load(args.policy)
        except OSError as exc:
            raise CommandError(f"cannot read policy {args.policy}: {exc.strerror or exc}") from None
    if getattr(args, "container", None) is not None:
        return Format.named(args.container)
    if all(getattr(args, k) is None for k in ("exp_bits", "man_bits", "rounding", "underflow")):
        return None
    return Format(
        exp_bits=args.exp_bits,
        man_bits=args.man_bits,
        rounding=args.rounding or "nearest",
        underflow=args.underflow or "flush",
        seed=args.seed,
    )


def threads_from_args(args: argparse.Namespace) -> int | None:
    """Return the codec thread count of ``-T`` (None for 0: all cores)."""
    return None if args.threads == 0 else args.threads
