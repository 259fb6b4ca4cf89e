"""`invoice-pipeline` — run the nightly job, make sample data, see what happened.

Exit status: 0 when the pipeline ran (findings are results, not failures); 1 with a
one-line reason on stderr when it could not.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from invoice_pipeline import project

DEMO_INVOICES = 2000
DEMO_SEED = 20261127


class PipelineError(Exception):
    """The pipeline could not run; the message is the one line a user sees."""


def _data_dir(value: str | None) -> Path:
    return Path(value).resolve() if value else project.data_dir()


def _as_of(value: str | None) -> str:
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise PipelineError(f"--as-of must be a date YYYY-MM-DD, got {value!r}") from exc


def run_pipeline(data_dir: Path, as_of: str = "") -> None:
    """Materialise the whole graph in this process (the nightly job)."""
    import dagster as dg

    from invoice_pipeline.alerts import failed_run_alert, raise_outside_run
    from invoice_pipeline.definitions import defs

    if not project.landing_dir(data_dir).is_dir():
        raise PipelineError(f"no landing folder at {project.landing_dir(data_dir)}")
    os.environ[project.DATA_DIR_ENV] = str(data_dir)
    job = defs().resolve_job_def("nightly")
    log_level = os.environ.get("INVOICE_PIPELINE_LOG_LEVEL", "WARNING")
    run_config = {
        "resources": {
            "warehouse": {"config": {"data_dir": str(data_dir)}},
            "settings": {"config": {"as_of": as_of}},
        },
        # The terminal shows warnings (quarantined files, rejected values) and errors; every
        # event is still in the run's event log (`make ui`) — INVOICE_PIPELINE_LOG_LEVEL=DEBUG shows all.
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    if not result.success:
        failures = []
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None:
                    error = error.cause  # the user's exception, not Dagster's wrapper
                failures.append((event.step_key or "?", error.message.strip() if error else "step failed"))
        alert = failed_run_alert("nightly", result.run_id, failures, data_dir, "the run did not succeed")
        raise_outside_run(data_dir, alert)
        if failures:
            step, message = failures[0]
            raise PipelineError(
                f"step {step} failed: {message.splitlines()[0] if message else 'step failed'}"
            )
        raise PipelineError("the run did not succeed (see the Dagster event log)")


def write_reports(data_dir: Path, as_of: str = "") -> list[Path]:
    """The monthly compliance workbooks of every month with data up to the as-of month.

    The scheduled `monthly_reports` job writes the month that just closed; a run from the
    command line refreshes every month, so the reports always match the warehouse.
    """
    from invoice_pipeline.reports import write_reports_for_month
    from invoice_pipeline.reports.data import months_with_data
    from invoice_pipeline.warehouse import connect

    last_month = as_of[:7] if as_of else date.today().isoformat()[:7]
    con = connect(project.warehouse_path(data_dir))
    try:
        written = []
        for month in months_with_data(con):
            if month <= last_month:
                written += write_reports_for_month(con, data_dir, month)
        return written
    finally:
        con.close()


def summary_lines(data_dir: Path) -> list[str]:
    """What is in the warehouse now, in a few lines for a terminal."""
    from invoice_pipeline.warehouse import connect, row_count, table_exists

    path = project.warehouse_path(data_dir)
    con = connect(path, read_only=True)
    try:
        lines = [f"warehouse: {path}"]
        statuses = con.execute(
            "select status, count(*) from audit.load_log group by status order by status"
        ).fetchall()
        lines.append("files: " + ", ".join(f"{count} {status}" for status, count in statuses))
        for layer in ("raw", "staging", "core"):
            tables = [
                t
                for (t,) in con.execute(
                    "select table_name from duckdb_tables() where schema_name = ? order by table_name",
                    [layer],
                ).fetchall()
            ]
            lines.append(f"{layer}: " + ", ".join(f"{t} {row_count(con, layer, t):,}" for t in tables))
        rejected = row_count(con, "audit", "rejected_rows")
        lines.append(f"rejected values: {rejected} (audit.rejected_rows)")
        if table_exists(con, "audit", "finding_status"):
            lines.append("open findings (audit.findings; accepted risks counted apart):")
            for rule_id, severity, count, money in con.execute(
                "select rule_id, severity, count(*), sum(amount) from audit.finding_status "
                "where state = 'open' group by rule_id, severity "
                "order by case severity when 'error' then 0 when 'warning' then 1 else 2 end, rule_id"
            ).fetchall():
                at_stake = f"  {money:,.2f} 元" if money is not None else ""
                lines.append(f"  {severity:<8}{rule_id:<26}{count:>6}{at_stake}")
            accepted, money = con.execute(
                "select count(*), sum(amount) from audit.finding_status where state = 'accepted'"
            ).fetchone()
            if accepted:
                at_stake = f"  {money:,.2f} 元" if money is not None else ""
                lines.append(f"  {'accepted':<8}{'(risk accepted, not open)':<26}{accepted:>6}{at_stake}")
        for source, name, reason in con.execute(
            "select source, file_name, reason from audit.load_log where status = 'quarantined' "
            "order by source, file_name"
        ).fetchall():
            lines.append(f"quarantined {source}/{name}: {reason}")
        return lines
    finally:
        con.close()


def _where(data_dir: Path, reports: list[Path]) -> list[str]:
    return [
        f"reports: {len(reports)} files under {data_dir / 'reports'} "
        "(<YYYY-MM>/<entity TIN>/compliance_report.xlsx and .html)",
        f"analysts: duckdb {project.analytics_path(data_dir)} -readonly   "
        "(audit.findings, audit.<rule_id>, report.*, core.*; personal data masked)",
        *_next_steps(data_dir),
    ]


def _next_steps(data_dir: Path) -> list[str]:
    """`find` and `annotate` spelled out on the open error finding with the most money at stake."""
    from invoice_pipeline.warehouse import connect, table_exists

    con = connect(project.warehouse_path(data_dir), read_only=True)
    try:
        if not table_exists(con, "audit", "finding_status"):
            return []
        row = con.execute(
            "select finding_id, invoice_uid from audit.finding_status "
            "where state = 'open' and severity = 'error' and invoice_uid is not null "
            "order by amount desc nulls last, finding_id limit 1"
        ).fetchone()
    finally:
        con.close()
    if row is None:
        return []
    finding_id, invoice_uid = row
    where = f" --data-dir {data_dir}"
    return [
        f"an invoice's story: .venv/bin/invoice-pipeline find {invoice_uid}{where}",
        f"record follow-up:   .venv/bin/invoice-pipeline annotate {finding_id} --action reissue_requested "
        f"--by NAME --note TEXT{where}",
    ]


def _cmd_run(args: argparse.Namespace) -> None:
    data_dir = _data_dir(args.data_dir)
    as_of = _as_of(args.as_of)
    run_pipeline(data_dir, as_of)
    reports = write_reports(data_dir, as_of)
    print("\n".join([*summary_lines(data_dir), *_where(data_dir, reports)]))


def _cmd_generate(args: argparse.Namespace) -> None:
    from invoice_pipeline.generate import generate

    out = Path(args.out).resolve()
    truth = generate(out, invoices=args.invoices, seed=args.seed)
    print(
        f"wrote {out / 'landing'} ({args.invoices} platform invoices, seed {args.seed}); "
        f"truth: {out / 'truth.json'} ({len(truth.get('problems', []))} planted problems)"
    )


def _cmd_demo(args: argparse.Namespace) -> None:
    from invoice_pipeline.generate import generate

    data_dir = _data_dir(args.data_dir)
    truth = generate(data_dir, invoices=args.invoices, seed=args.seed)
    print(f"sample written to {project.landing_dir(data_dir)} (planted problems: {data_dir / 'truth.json'})")
    as_of = truth.get("as_of", "")
    run_pipeline(data_dir, as_of)
    reports = write_reports(data_dir, as_of)
    print("\n".join([*summary_lines(data_dir), "", *_where(data_dir, reports)]))
    print("UI: make ui, then open http://127.0.0.1:3000")


def _cmd_backup(args: argparse.Namespace) -> None:
    from invoice_pipeline.backup import create_backup, record_backup, verify_backup
    from invoice_pipeline.warehouse import connect

    data_dir = _data_dir(args.data_dir)
    if not project.warehouse_path(data_dir).exists():
        raise PipelineError(f"no warehouse at {project.warehouse_path(data_dir)}")
    con = connect(project.warehouse_path(data_dir))
    try:
        path = create_backup(con, data_dir, kind="manual")
        result = verify_backup(path)
        record_backup(con, path, result)
    finally:
        con.close()
    if not result.ok:
        raise PipelineError(f"backup {path} does not verify: {'; '.join(result.problems)}")
    print(f"backup {path}: verified, {len(result.tables)} tables, {sum(result.tables.values()):,} rows")


def _cmd_verify_backup(args: argparse.Namespace) -> None:
    from invoice_pipeline.backup import verify_backup

    result = verify_backup(Path(args.path).resolve())
    if not result.ok:
        raise PipelineError(f"{args.path} does not verify: {'; '.join(result.problems)}")
    print(f"{args.path}: verified, {len(result.tables)} tables, {sum(result.tables.values()):,} rows")


def _cmd_restore(args: argparse.Namespace) -> None:
    from invoice_pipeline.backup import BackupError, restore_backup

    data_dir = _data_dir(args.data_dir)
    try:
        counts = restore_backup(Path(args.path).resolve(), data_dir)
    except BackupError as exc:
        raise PipelineError(str(exc)) from exc
    print(
        f"restored {project.warehouse_path(data_dir)} from {args.path}: {len(counts)} tables, "
        f"{sum(counts.values()):,} rows (the previous file is kept as invoices.duckdb.before-restore)"
    )


def _cmd_annotate(args: argparse.Namespace) -> None:
    from invoice_pipeline.remediation import InvalidAction, RemediationError, annotate, validate

    try:
        validate(args.action, args.by, args.note)
    except InvalidAction as exc:
        args.usage_error(str(exc))  # exit 2 with the usage line, like any other usage mistake
    try:
        recorded = annotate(_data_dir(args.data_dir), args.finding_id, args.action, args.by, args.note)
    except RemediationError as exc:
        raise PipelineError(str(exc)) from exc
    print(recorded.describe())


def _cmd_find(args: argparse.Namespace) -> int:
    from invoice_pipeline.find import FindError, QueryError, run_find

    try:
        return run_find(
            _data_dir(args.data_dir),
            " ".join(args.query),
            date=args.date,
            as_json=args.json,
            unmasked=args.unmasked,
            show_all=args.all,
        )
    except QueryError as exc:
        args.usage_error(str(exc))  # exit 2
    except FindError as exc:
        raise PipelineError(str(exc)) from exc
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invoice-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="the nightly job, in-process")
    run.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    run.add_argument("--as-of", help="evaluate time-based rules at 02:00 Asia/Shanghai on this date")
    run.set_defaults(handler=_cmd_run)

    generate = commands.add_parser("generate", help="synthetic landing files with a truth file")
    generate.add_argument("--out", required=True, help="folder to write landing/ and truth.json into")
    generate.add_argument(
        "--invoices", type=int, default=DEMO_INVOICES, help="platform invoices (default 2000)"
    )
    generate.add_argument("--seed", type=int, default=DEMO_SEED)
    generate.set_defaults(handler=_cmd_generate)

    demo = commands.add_parser("demo", help="generate a sample into the data directory and run everything")
    demo.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    demo.add_argument("--invoices", type=int, default=DEMO_INVOICES)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.set_defaults(handler=_cmd_demo)

    backup = commands.add_parser("backup", help="a verified backup of the warehouse under backups/")
    backup.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    backup.set_defaults(handler=_cmd_backup)

    verify = commands.add_parser("verify-backup", help="check a backup's checksums and that it restores")
    verify.add_argument("path", help="a backups/<timestamp> folder")
    verify.set_defaults(handler=_cmd_verify_backup)

    restore = commands.add_parser("restore", help="replace the warehouse with a backup that verifies")
    restore.add_argument("path", help="a backups/<timestamp> folder")
    restore.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    restore.set_defaults(handler=_cmd_restore)

    from invoice_pipeline.remediation import ACTIONS

    annotate = commands.add_parser(
        "annotate", help="record what was done about a finding (audit.finding_actions)"
    )
    annotate.add_argument("finding_id", metavar="FINDING_ID", help="audit.findings.finding_id")
    annotate.add_argument("--action", required=True, choices=ACTIONS)
    annotate.add_argument("--by", required=True, help="who did it (your name)")
    annotate.add_argument("--note", help="free text; required for accepted_risk (why) and note")
    annotate.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    annotate.set_defaults(handler=_cmd_annotate, usage_error=annotate.error)

    find = commands.add_parser(
        "find",
        help="where is invoice X? sources side by side, matches, findings, history",
        description="Find an invoice by any number people type (20-digit 数电 number, code and number "
        "joined or separated, the last 8 digits) or by a counterparty name with --date. "
        "Exit 0 found, 1 nothing found, 2 usage error. Output is masked like the analysts' snapshot.",
    )
    find.add_argument("query", nargs="+", metavar="QUERY", help="a number as typed, or a name fragment")
    find.add_argument("--date", help="issue date YYYY-MM-DD or month YYYY-MM")
    find.add_argument("--json", action="store_true", help="the same content as JSON, for scripts")
    find.add_argument("--all", action="store_true", help="show every candidate in full (up to 10)")
    find.add_argument(
        "--unmasked", action="store_true", help="show TINs and people's names as stored (not masked)"
    )
    find.add_argument("--data-dir", help="data directory (default: $INVOICE_PIPELINE_DATA_DIR or data/)")
    find.set_defaults(handler=_cmd_find, usage_error=find.error)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)  # None, or an exit status (find: 1 when nothing was found)
    except PipelineError as exc:
        print(f"invoice-pipeline: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the contract is one line, not a traceback
        print(
            f"invoice-pipeline: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
