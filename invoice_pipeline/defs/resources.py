"""Resources shared by every asset: the warehouse and the run's settings."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from invoice_pipeline import project
from invoice_pipeline.warehouse import connect, ensure_audit_tables

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Every asset and check that opens the warehouse runs in this pool; dagster_home/dagster.yaml
# gives it one slot, because DuckDB allows one writing process per file.
WAREHOUSE_POOL = "duckdb_writer"


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse under the data directory (SPEC §2).

    `data_dir` empty means `$INVOICE_PIPELINE_DATA_DIR`, else `data/` in the repository.
    """

    data_dir: str = ""

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve() if self.data_dir else project.data_dir()

    @property
    def landing(self) -> Path:
        return project.landing_dir(self.root)

    @property
    def path(self) -> Path:
        return project.warehouse_path(self.root)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.path)
        try:
            ensure_audit_tables(con)
            yield con
        finally:
            con.close()


class RunSettings(dg.ConfigurableResource):
    """What a run is evaluated against: `as_of` (YYYY-MM-DD) or, when empty, now.

    Time-based rules use 02:00 Asia/Shanghai on the as-of date (SPEC §4.1 "Time").
    """

    as_of: str = ""

    def as_of_instant(self) -> datetime:
        if not self.as_of:
            return datetime.now(SHANGHAI)
        return datetime.combine(date.fromisoformat(self.as_of), time(2, 0), SHANGHAI)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={"warehouse": Warehouse(), "settings": RunSettings()},
        # The multiprocess executor costs seconds per step on two cores, and in-process keeps
        # every DuckDB connection of a run in one process.
        executor=dg.in_process_executor,
    )
