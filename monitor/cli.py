"""The ``driftline`` command line."""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from detectors.errors import ColumnTypeError, InvalidParameterError

#: Exit codes of ``driftline check`` (and of every command on bad input).
EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2
#: ``driftline run``: ingestion stopped on an error it cannot recover from.
EXIT_RUN_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="driftline", description="Drift and quality monitoring for ML models in production."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="compare a current data file with a reference file",
        description="Batch drift report of CURRENT against REFERENCE (CSV, Parquet or JSON lines).",
    )
    check.add_argument("--reference", required=True, metavar="REF", help="reference data file")
    check.add_argument("--current", required=True, metavar="CUR", help="current data file")
    check.add_argument("--config", metavar="FILE", help="YAML config (drift and columns sections)")
    check.add_argument("--target", metavar="COL", help="ground-truth column (not a feature)")
    check.add_argument("--prediction", metavar="COL", help="model output column: prediction drift")
    check.add_argument(
        "--model",
        metavar="PATH",
        help="joblib-saved model: SHAP attribution drift, features ordered by drift impact "
        "(loading a pickle runs its code: trusted files only)",
    )
    check.add_argument(
        "--multivariate",
        action="store_true",
        help="also run the multivariate methods (config: multivariate.methods) on row samples",
    )
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")
    check.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="exit 1 when the dataset or the prediction drifted",
    )
    check.add_argument(
        "--exact",
        action="store_true",
        help="compute numeric statistics on the raw rows instead of the sketch (slower)",
    )

    run = commands.add_parser("run", help="run the monitoring service")
    run.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    run.add_argument("--log-level", default="INFO", help="logging level (default INFO)")

    replay = commands.add_parser(
        "replay", help="feed a JSON-lines or Parquet prediction log through the service's windows"
    )
    replay.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    replay.add_argument("--file", required=True, metavar="LOGS", help="JSON-lines or Parquet log")
    replay.add_argument("--format", choices=("table", "json"), default="table")

    reference = commands.add_parser("reference", help="manage reference profiles")
    reference_commands = reference.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = reference_commands.add_parser(
        "build", help="profile a training file and store it as the model's new reference"
    )
    build.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    build.add_argument("--model", required=True, metavar="NAME", help="model name in the config")
    build.add_argument("--file", required=True, metavar="TRAIN", help="CSV, Parquet or JSON lines")
    build.add_argument(
        "--model-version",
        metavar="VERSION",
        help="the model version the reference describes (records' model_version)",
    )

    alerts = commands.add_parser(
        "alerts", help="incidents, events, re-delivery, rule backtests and Prometheus rule export"
    )
    alert_commands = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = alert_commands.add_parser("list", help="the incidents, most recent first")
    listing.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    listing.add_argument("--model", metavar="NAME", help="only this model's incidents")
    listing.add_argument("--state", choices=("firing", "resolved"), help="only these incidents")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    shown = alert_commands.add_parser("events", help="the events and their deliveries")
    shown.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    shown.add_argument("--model", metavar="NAME", help="only this model's events")
    shown.add_argument("--limit", type=int, default=100)
    shown.add_argument("--format", choices=("table", "json"), default="table")
    again = alert_commands.add_parser("redeliver", help="queue a dead event for delivery again")
    again.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    again.add_argument("event_id", metavar="EVENT_ID")
    again.add_argument(
        "--target", metavar="NAME", help="only this target (default: every dead one)"
    )
    replayed = alert_commands.add_parser(
        "backtest", help="replay the configured rules over the stored windows (sends nothing)"
    )
    replayed.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    replayed.add_argument("--model", required=True, metavar="NAME", help="model name in the config")
    replayed.add_argument(
        "--since", metavar="TIME", help="only windows starting at or after (ISO 8601 or epoch s)"
    )
    replayed.add_argument("--format", choices=("table", "json"), default="table")
    export = alert_commands.add_parser(
        "export-rules", help="Prometheus alerting rules equivalent to the configured rules"
    )
    export.add_argument("--config", required=True, metavar="FILE", help="service YAML config")
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")

    demo = commands.add_parser(
        "demo", help="run the service on an embedded broker with drift injected partway"
    )
    demo.add_argument(
        "--batch",
        action="store_true",
        help="instead: write an example reference/current file pair and check it",
    )
    demo.add_argument("--rows", type=int, default=50_000, help="--batch: rows in each file")
    demo.add_argument("--dir", default="demo-data", help="--batch: where to write the files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            # argv None: this is the `driftline` process itself, which ends with the command.
            return _check(args, whole_process=argv is None)
        if args.command == "run":
            return _run(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "reference":
            return _reference_build(args)
        if args.command == "alerts":
            return _alerts(args)
        if args.command == "demo":
            from monitor.demo.service import main_demo

            return main_demo(batch=args.batch, rows=args.rows, directory=Path(args.dir))
    except (ValueError, LookupError, ColumnTypeError, InvalidParameterError, OSError) as exc:
        # Input and config problems are the user's to fix: one clear sentence, no traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _print_error(args.command, message)
        return EXIT_USAGE
    except RuntimeError as exc:  # StoreError, ServiceError: an unreachable database and the like
        _print_error(args.command, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def _print_error(command: str, message: object) -> None:
    """Print ``driftline COMMAND: message`` on stderr, in red on a terminal."""
    # rich is imported here, not at the top: `check --format json` and `--help` never need it.
    from rich.console import Console
    from rich.markup import escape

    # Escaped: a message quoting a column or value such as "[x]" is not markup.
    Console(stderr=True).print(
        f"[bold red]driftline {command}:[/] {escape(str(message))}",
        highlight=False,
        soft_wrap=True,
    )


def _check(args: argparse.Namespace, *, whole_process: bool = False) -> int:
    from monitor.check.run import run_check, to_json
    from monitor.config.drift import load_check_config
    from monitor.presentation.check import render_table

    if whole_process:
        # What is imported by now lives until the process ends: the cyclic collector need not
        # scan it again, neither during the check nor at interpreter exit, where that took
        # about 0.07 s of a 0.6 s check of 100,000 rows (benchmarks/startup.py). Not when
        # main() is called with arguments from a longer-lived process (tests, a notebook).
        gc.freeze()
    config = load_check_config(args.config)
    result = run_check(
        args.reference,
        args.current,
        config,
        target=args.target,
        prediction=args.prediction,
        model=args.model,
        # A multivariate section in the config asks for it as well as the flag does.
        multivariate=args.multivariate or "multivariate" in config.model_fields_set,
        exact=args.exact,
    )
    if args.format == "json":
        payload = to_json(result)
        if args.output:
            Path(args.output).write_bytes(payload)
        else:
            sys.stdout.buffer.write(payload)
            sys.stdout.flush()
    elif args.output:
        from rich.console import Console

        with open(args.output, "w") as handle:
            render_table(result, Console(file=handle, width=120, no_color=True))
    else:
        from rich.console import Console

        render_table(result, Console())
    return EXIT_DRIFT if args.fail_on_drift and result.drift_found else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from monitor.config.service import ServiceConfig
    from monitor.service.run import IngestionError, Service
    from monitor.streaming.kafka_security import config_secrets, redact_secrets_in_logs

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ServiceConfig.load(args.config)
    # No secret in any log line, whatever the level: kafka-python logs its admin client's
    # configuration (the SASL password included) at DEBUG.
    redact_secrets_in_logs(config_secrets(config))
    service = Service(config)
    # SIGTERM stops like Ctrl-C: a last checkpoint, then exit.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            service.run()
    except IngestionError as error:
        # Not EXIT_USAGE: the config was fine, the run failed (the traceback is logged above);
        # a supervisor restarts the process and can alert on the restarts.
        _print_error("run", error)
        return EXIT_RUN_FAILED
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from monitor.config.service import ServiceConfig
    from monitor.presentation.windows import print_windows, windows_json
    from monitor.service.replay import replay

    result = replay(ServiceConfig.load(args.config), Path(args.file))
    if args.format == "json":
        sys.stdout.buffer.write(windows_json(result))
    else:
        print_windows(result, Console())
    return EXIT_OK


def _reference_build(args: argparse.Namespace) -> int:
    """Check the file's columns, profile it, store it, and say what was stored and from when.

    A file whose prediction, target or score column is missing or ambiguous
    is refused before anything is stored (``ReferenceColumnsError``, exit 2);
    see :func:`monitor.analyses.reference.check_reference_columns`. The new
    version is in force from the first window starting after the data
    already consumed (:func:`monitor.analyses.reference.store_reference`):
    running services switch to it there, without a restart.
    """
    from datetime import UTC, datetime

    from rich.console import Console

    from monitor.analyses.reference import (
        build_reference,
        check_reference_columns,
        describe_reference,
        store_reference,
    )
    from monitor.config.service import ServiceConfig
    from monitor.datafiles import read_table
    from monitor.store import Store

    config = ServiceConfig.load(args.config)
    model = config.model(args.model)
    frame = read_table(args.file, "training")
    columns = check_reference_columns(model, [str(c) for c in frame.columns])
    # With performance_estimation configured, the fitted CBPE is stored with the profile.
    reference = build_reference(model, frame)
    profile = reference.profile
    store = Store.connect(config.database_url())
    try:
        stored = store_reference(store, config, model, reference, model_version=args.model_version)
    finally:
        store.close()
    estimator = " and its performance estimator" if reference.estimator is not None else ""
    out = Console(highlight=False, markup=False, soft_wrap=True)
    out.print(
        f"Stored reference profile{estimator} version {stored.version} of {model.name!r}: "
        f"{len(profile.specs)} columns, {profile.reference.rows:,} rows."
    )
    if stored.model_version is not None:
        out.print(f"  model version: {stored.model_version}")
    if stored.effective_from is not None:  # else from the first window, as always
        start = datetime.fromtimestamp(stored.effective_from, UTC).isoformat()
        out.print(
            f"  in force from: the window starting {start} (effective_from "
            f"{stored.effective_from:.3f}), the first after the data already consumed"
        )
    for line in describe_reference(columns, reference, model):
        out.print(f"  {line}")
    return EXIT_OK


def _alerts(args: argparse.Namespace) -> int:
    """``driftline alerts ACTION``: read or act on the alerting layer's database."""
    import orjson
    from rich.console import Console

    from monitor.alerting import operator
    from monitor.config.service import ServiceConfig
    from monitor.presentation import alerts as shown

    config = ServiceConfig.load(args.config)
    if args.action == "export-rules":
        text = operator.prometheus_rules(config)
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    from monitor.store import Store

    out = Console(highlight=False, soft_wrap=True)
    store = Store.connect(config.database_url())
    try:
        if args.action == "list":
            rows = operator.incidents(store, model=args.model, status=args.state, limit=args.limit)
            if args.format == "json":
                sys.stdout.buffer.write(
                    orjson.dumps(
                        [operator.incident_json(r) for r in rows], option=orjson.OPT_APPEND_NEWLINE
                    )
                )
            else:
                out.print(shown.incidents_table(rows))
        elif args.action == "events":
            found = operator.events(store, model=args.model, limit=args.limit)
            if args.format == "json":
                sys.stdout.buffer.write(
                    orjson.dumps(
                        [operator.event_json(d) for d in found], option=orjson.OPT_APPEND_NEWLINE
                    )
                )
            else:
                out.print(shown.events_table(found))
        elif args.action == "redeliver":
            done = operator.redeliver(store, args.event_id, target=args.target)
            if done.requeued:
                out.print(f"Queued {done.event_id} again for {', '.join(done.requeued)}.")
            if done.not_dead:
                out.print(f"Not dead (left as is): {', '.join(done.not_dead)}.")
        else:
            config.model(args.model)  # KeyError naming the known models
            since = None if args.since is None else _epoch(args.since)
            report = operator.backtest_model(config, store, args.model, since=since)
            if args.format == "json":
                sys.stdout.buffer.write(
                    orjson.dumps(operator.backtest_json(report), option=orjson.OPT_APPEND_NEWLINE)
                )
            else:
                shown.print_backtest(report, out)
    finally:
        store.close()
    return EXIT_OK


def _epoch(text: str) -> float:
    """Epoch seconds from ``text``: a number, or an ISO 8601 time (UTC when it has no offset)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: an ISO 8601 time or epoch seconds; got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


if __name__ == "__main__":
    sys.exit(main())
