"""The emulator's command line: `python -m pipeline.emulator` and `readerfirst sendgrid-emulator`.

`build_parser()` declares the options once, so the readerfirst CLI can offer the same ones;
`main(argv)` runs the emulator until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pipeline.emulator.faults import Fault, FaultPlan
from pipeline.emulator.server import EmulatorConfig, run_emulator
from pipeline.errors import ConfigurationError
from pipeline.simulation.replies import ReplyHabit

__all__ = ["build_parser", "config_from_args", "main"]

DEFAULT_PORT = 3030
API_KEY_VARIABLE = "SENDGRID_API_KEY"


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text().strip()
        except OSError as error:
            raise ConfigurationError(f"--api-key-file {args.api_key_file}: cannot be read ({error.strerror})") from None
        if not key:
            raise ConfigurationError(f"--api-key-file {args.api_key_file}: the file is empty")
        return key
    key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if not key:
        raise ConfigurationError(f"set {API_KEY_VARIABLE} (the key clients must present) or give --api-key-file FILE")
    return key


def build_parser(prog: str = "readerfirst sendgrid-emulator") -> argparse.ArgumentParser:
    """The emulator's options, with help texts and defaults."""
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # `--api-key` must not pass as an abbreviation of `--api-key-file`
        description="A SendGrid-compatible mail-send server on loopback, for tests, demos and staging.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: loopback only)")
    # Never a plain --api-key option: a command line is visible to every user of the machine (ps).
    parser.add_argument("--api-key-file", type=Path, default=None, metavar="FILE",
                        help="file holding the only key clients may present as 'Authorization: Bearer KEY' "
                             f"(default: the {API_KEY_VARIABLE} environment variable)")
    parser.add_argument("--store", required=True, type=Path, help="SQLite file where delivered messages are kept")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of mail-send requests that meet a fault, 0 to 1 (default 0)")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(fault.value for fault in Fault),
        help="comma-separated faults sharing --fault-rate equally: 429,500,slow,drop,drop-after (default all five)",
    )
    parser.add_argument("--slow-seconds", type=float, default=0.3, help="how long a 'slow' fault waits before answering (default 0.3)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault draws, to replay the same faults")
    parser.add_argument("--webhook-url", default=None, help="where to POST signed delivery events (none: no events)")
    parser.add_argument(
        "--bounce", nargs="+", action="extend", default=[], metavar="ADDR", help="addresses that bounce instead of being delivered"
    )
    parser.add_argument(
        "--signing-key", type=Path, default=None, help="PEM file of the webhook's P-256 key (created if absent; default: a new key per run)"
    )
    parser.add_argument("--reader-model", type=Path, default=None,
                        help="reader model YAML (audiences/reader-models/): simulated readers open, click, unsubscribe")
    parser.add_argument("--reader-seed", type=int, default=0, help="seed of the simulated readers (default 0)")
    parser.add_argument("--reader-editions", type=Path, default=None,
                        help="folder of edition files giving each section's topics (default: the project's editions/)")
    parser.add_argument("--inbound-url", default=None,
                        help="where simulated readers' replies go, as signed Inbound Parse posts "
                             "(the web service's /webhooks/inbound; needs --reader-model)")
    parser.add_argument("--reply-rate", type=float, default=ReplyHabit.base,
                        help=f"chance a reader who read a copy that missed them replies (default {ReplyHabit.base}); "
                             f"a copy that serves them fully adds {ReplyHabit.served_bonus}")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The EmulatorConfig the parsed options describe; ConfigurationError names a bad option."""
    try:
        kinds = [Fault(kind.strip()) for kind in args.fault_kinds.split(",") if kind.strip()]
    except ValueError as error:
        raise ConfigurationError(f"--fault-kinds {args.fault_kinds!r}: use 429, 500, slow, drop and drop-after") from error
    faults = FaultPlan.spread(args.fault_rate, kinds, slow_seconds=args.slow_seconds, seed=args.seed)
    return EmulatorConfig(
        api_key=_api_key(args),
        store_path=args.store,
        host=args.host,
        port=args.port,
        faults=faults,
        webhook_url=args.webhook_url,
        bounces=tuple(args.bounce),
        signing_key_path=args.signing_key,
        reader_model=getattr(args, "reader_model", None),
        reader_seed=getattr(args, "reader_seed", 0),
        reader_editions=getattr(args, "reader_editions", None),
        inbound_url=getattr(args, "inbound_url", None),
        reply_habit=_reply_habit(getattr(args, "reply_rate", ReplyHabit.base)),
    )


def _reply_habit(rate: float) -> ReplyHabit:
    try:
        return ReplyHabit(base=rate)
    except ValueError:
        raise ConfigurationError(f"--reply-rate {rate}: a chance between 0 and 1") from None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # serve_forever ends on KeyboardInterrupt, so SIGTERM (docker stop, CI) shuts down as Ctrl-C does.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with command-line options; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    try:
        config = config_from_args(args)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run_emulator(config)
    except (ConfigurationError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
