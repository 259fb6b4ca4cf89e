"""`invoice-pipeline find QUERY`: where is invoice X? (issue 7)

Takes a number or a name the way people type it and prints every invoice that fits: its tax
sources, ERP documents and claims side by side, how the pipeline matched them, its findings
(open first, with the actions people recorded) and its history. `--json` prints the same content
for scripts.

Decisions, taken once here:

- **Query forms** (`parse_query`, pure): 20 digits; 18 digits (10-digit code + number run
  together); a code and a number separated by anything that is not a letter (space, `-`, `/`,
  `_`, `，`, `:`), with or without labels (`发票代码 … 号码 …`); the last 8 digits; fewer than 8
  digits are a 发票号码 that lost its leading zeros (Excel) and are padded. Full-width digits,
  quotes and spaces inside a number are what NFKC and `normalize.classify_invoice_ref` already
  handle. Anything with a letter is a counterparty name fragment (or a TIN). Other digit counts
  are a usage error (exit 2) that says which forms exist.
- **Readings, not guesses.** 20 digits are looked up both as a 数电 number and as a 12-digit
  code + 8-digit number run together — a joined legacy number looks exactly like a 数电 number —
  and both are listed when both exist.
- **The pipeline's rules.** A typed number is classified by `normalize.classify_invoice_ref` and
  looked up in `core.invoice_aliases` under the identifier forms `core.matches` lets that kind of
  reference match (assets/models/core/matches.sql), so `find` finds what matching finds. Names
  are compared in `normalize.normalize_name` form, on the counterparty side (the buyer of what we
  issued, the seller of what we received, the ERP's 往来单位); a query shaped like a TIN also
  matches TINs.
- **Everything that names it.** ERP documents and claims are searched by what was keyed
  (`staging.erp_invoice_refs`, `staging.reimbursement`), matched or not: a number only the ERP
  or a claim knows is found too, marked "not on any tax source" and keyed like the ledger keys it
  (`missing_in_tax_platform`, `claim_without_invoice`). A keyed reference the pipeline did not
  match but that names exactly one invoice is shown with that invoice, marked "not matched".
- **One → in full; several → candidates.** One match prints in full; several print as a list of
  candidates (number, date, parties, total, where it is) with how to narrow (`--date`, the full
  number); `--all` prints each in full (up to 10). `--date` (YYYY-MM-DD or YYYY-MM) keeps
  invoices issued then (ERP-only ones by their keyed 开票日期).
- **Read-only, never in the way.** The live warehouse is opened read-only. While a run holds it
  (DuckDB lets no other process in), `find` says so on stderr and reads the analysts' snapshot
  `warehouse/analytics.duckdb` instead: as of the last publish, masked, and without staging (ERP
  documents and claims are then known by their ids from `core.matches` and the ledger only).
  `core.invoice_history` and `audit.finding_actions` are read when they exist.
- **Masked by default, like the analysts' snapshot.** Output goes into tickets, chats and
  screenshots, and finding an invoice needs its number and amounts, not people's identities. So
  the terminal and the JSON output apply the snapshot's rules (assets/publish/analytics.yaml,
  through `publish.JsonMasker`, i.e. `normalize.mask_tin` and `normalize.mask_person_name`):
  resident-ID numbers inside TINs (individuals, sole proprietors: `110108**********8101`), the
  names of private persons (claimants, ERP clerks, people who acted on findings, individual
  counterparties) and resident IDs inside free text; inside history values a TIN is masked as in
  its own column and an individual's name as in the records. Identifiers the pipeline builds
  (invoice numbers, document and finding ids) are never altered. `--unmasked` prints values as
  stored, for the data team that may read the live warehouse anyway; on the snapshot they stay
  masked.
- **JSON** (`--json`): `candidates` (one line each), `invoices` (in full: `records` — one per tax
  source row, ERP document and claim line —, `matches`, `findings` with their `actions`,
  `history`, null when there is none to read); dates ISO, instants in Asia/Shanghai, decimals as
  strings.
- **Exit status**: 0 when something was found (one invoice or candidates), 1 when nothing was
  (the message lists what was tried) or the warehouse cannot be read, 2 for a usage error.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sys
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from invoice_pipeline import normalize as nz
from invoice_pipeline import project
from invoice_pipeline.tin import is_valid_resident_id
from invoice_pipeline.warehouse import connect, table_exists

_SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_CANDIDATES = 50
MAX_FULL = 10

SOURCE_ORDER = ("tax_platform", "einvoice_xml", "einvoice_ofd")
SOURCE_LABELS = {"tax_platform": "platform", "einvoice_xml": "XML", "einvoice_ofd": "OFD"}

# The identifier forms of core.invoice_aliases a typed reference of each kind may match: the
# `matchable_forms` of assets/models/core/matches.sql (the uid is always one of these forms too).
MATCHABLE_FORMS = {
    "digits20": ("digital_no", "code_number_joined"),
    "code_number": ("code_number",),
    "digits18": ("code_number_joined",),
    "number8": ("number8", "suffix8"),
}
_FORM_READING = {
    "digital_no": "its 数电 number",
    "code_number_joined": "its code and number run together",
    "code_number": "its code and number",
    "number8": "its 8-digit 发票号码",
    "suffix8": "the last 8 digits of its 数电 number",
}
_LEDGER_ONLY_RULES = ("missing_in_tax_platform", "claim_without_invoice")
_STATE_ORDER = {"open": 0, "accepted": 1, "resolved": 2}
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_FORMS_HELP = (
    "type the 20-digit 数电 number, a code and number (10 or 12 digits + 8 digits, joined or "
    "separated), the last 8 digits, or a counterparty name"
)


_SUMMARY_KEYS = ("direction", "seller_tin", "seller_name", "buyer_tin", "buyer_name", "amount_incl_tax")


def _source_rank(source: str) -> int:
    return SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)


class QueryError(ValueError):
    """The query or an option cannot be read: a usage error (exit 2)."""


class FindError(RuntimeError):
    """The warehouse cannot be read; the message is the one line a user sees."""


# ----------------------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class Query:
    """One reading of what was typed.

    kind: `digits20`, `digits18`, `code_number`, `number8` (the ref kinds of
    `normalize.classify_invoice_ref`) or `name`. key: the cleaned number (`code-number` for
    code_number), or the name fragment in `normalize.normalize_name` form. tin: for a name
    query shaped like a TIN, the TIN.
    """

    text: str
    kind: str
    key: str
    tin: str | None = None
    note: str | None = None

    @property
    def invoice_keys(self) -> tuple[str, ...]:
        """The invoice_uids (or canonical keys) this query can stand for, most likely first."""
        if self.kind == "digits20":
            return (self.key, f"{self.key[:12]}-{self.key[12:]}")
        if self.kind == "digits18":
            return (f"{self.key[:10]}-{self.key[10:]}",)
        if self.kind == "code_number":
            return (self.key,)
        return ()

    @property
    def ref_keys(self) -> tuple[str, ...]:
        """`ref_key`s of ERP/claim references that name this number in another spelling."""
        if self.kind in ("digits20", "digits18"):
            return (self.key, *self.invoice_keys)
        if self.kind == "code_number":
            return (self.key, self.key.replace("-", ""))
        return (self.key,)

    def tried(self) -> list[str]:
        """What was looked up, in words."""
        if self.kind == "digits20":
            code, number = self.key[:12], self.key[12:]
            return [
                f"{self.key} as a 数电 number",
                f"{code}-{number} (12-digit code + 8-digit number run together)",
            ]
        if self.kind == "digits18":
            return [f"{self.key[:10]}-{self.key[10:]} (10-digit code + 8-digit number run together)"]
        if self.kind == "code_number":
            return [f"{self.key} (code and number)"]
        if self.kind == "number8":
            return [f"{self.key} as a legacy 8-digit 发票号码 and as the last 8 digits of a 数电 number"]
        tried = [f"counterparty names containing {self.key!r} (normalised)"]
        if self.tin:
            tried.append(f"TIN {self.tin}")
        return tried


@dataclass(frozen=True)
class DateFilter:
    """Issue dates from `start` to `end`, both included: one day or one month."""

    start: dt.date
    end: dt.date
    text: str

    def __contains__(self, day: dt.date | None) -> bool:
        return day is not None and self.start <= day <= self.end


_LABELS = re.compile(r"(?:数电|全电)?(?:发票|票)?(?:代码|号码|编号)|\bNO\b\.?", re.IGNORECASE)


def _one(expr: pl.Expr):
    return pl.select(expr.alias("v")).item()


def _classify(token: str) -> tuple[str, str | None]:
    """`normalize.classify_invoice_ref` of one token typed without a code column."""
    cleaned = nz.clean_identifier(pl.lit(token, dtype=pl.String))
    result = _one(nz.classify_invoice_ref(cleaned, pl.lit(None, dtype=pl.String)))
    return result["ref_kind"], result["ref_key"]


def parse_query(text: str) -> Query:
    """Read a query the way people type invoice numbers and names; QueryError if it cannot be.

    >>> parse_query("011002100511 00290716").key
    '011002100511-00290716'
    """
    s = unicodedata.normalize("NFKC", text or "").strip().strip("'\"‘’“”`").strip()
    if not s:
        raise QueryError(f"empty query: {_FORMS_HELP}")
    unlabelled = _LABELS.sub(" ", s)
    if any(ch.isdigit() for ch in unlabelled) and not any(ch.isalpha() for ch in unlabelled):
        groups = re.findall(r"[0-9]+", unlabelled)
        note = None
        if len(groups) == 2 and len(groups[0]) in (10, 12) and len(groups[1]) <= 8:
            token = f"{groups[0]}-{groups[1]}"
        else:
            token = "".join(groups)  # one number typed with spaces or dashes inside
            if len(token) < 8:
                note = f"read as {token.zfill(8)} (leading zeros restored)"
                token = token.zfill(8)
            elif len(token) in (10, 12):
                raise QueryError(f"{token} is a 发票代码 alone: add its 8-digit 发票号码")
        kind, key = _classify(token)
        if kind == "invalid" or key is None:
            raise QueryError(f"{s!r} ({len(token)} digits) is not an invoice number: {_FORMS_HELP}")
        return Query(text=text, kind=kind, key=key, note=note)
    key = _one(nz.normalize_name(pl.lit(s, dtype=pl.String)))
    if not key:
        raise QueryError(f"cannot read {text!r}: {_FORMS_HELP}")
    compact = re.sub(r"\s+", "", s).upper()
    tin = compact if re.fullmatch(r"[0-9A-Z]{15,20}", compact) else None
    return Query(text=text, kind="name", key=key, tin=tin)


def parse_date_filter(text: str) -> DateFilter:
    """`--date`: a day (2026-10-15, 2026/10/15, 2026年10月15日, 20261015) or a month (2026-10)."""
    value = pl.lit(text.strip(), dtype=pl.String)
    day = _one(nz.parse_date(value))
    if day is not None:
        return DateFilter(day, day, day.isoformat())
    month = _one(nz.parse_period(value))
    if month is not None:
        start = dt.date.fromisoformat(f"{month}-01")
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        return DateFilter(start, end, month)
    raise QueryError(f"--date must be a day YYYY-MM-DD or a month YYYY-MM, got {text!r}")


# ----------------------------------------------------------------------------- the warehouse


def open_warehouse(data_dir: Path, err: TextIO | None = None) -> tuple[duckdb.DuckDBPyConnection, Path, bool]:
    """(connection, path, is_snapshot): the live warehouse read-only, else the analysts' snapshot."""
    err = err or sys.stderr
    live = project.warehouse_path(data_dir)
    snapshot = project.analytics_path(data_dir)
    if not live.exists():
        if snapshot.exists():
            print(f"find: no warehouse at {live}; reading the analysts' snapshot {snapshot}", file=err)
            return connect(snapshot, read_only=True), snapshot, True
        raise FindError(f"no warehouse at {live}: run `invoice-pipeline run` first")
    try:
        return connect(live, read_only=True), live, False
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        busy = "lock" in message.lower() or "different configuration" in message
        if not busy:
            raise FindError(f"cannot read {live}: {message}") from exc
        if not snapshot.exists():
            raise FindError(
                f"{live} is locked by a running pipeline and there is no snapshot at {snapshot}: "
                "try again when the run has finished"
            ) from exc
        print(
            f"find: {live} is locked by a running pipeline ({message}); reading the analysts' snapshot "
            f"{snapshot} instead: as of its last publish, masked, without ERP and claim details",
            file=err,
        )
        return connect(snapshot, read_only=True), snapshot, True


def _plain(value):
    """A value as JSON has it: dates ISO (instants in Asia/Shanghai), decimals as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(_SHANGHAI).isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class Candidate:
    key: str
    on_tax_sources: bool
    found_by: list[str] = field(default_factory=list)
    # ERP documents and claim lines (claim_no, invoice_no as keyed) that name it: id → note.
    erp_docs: dict[str, str] = field(default_factory=dict)
    claims: dict[tuple[str, str | None], str] = field(default_factory=dict)
    dates: set[dt.date] = field(default_factory=set)

    def add(self, reason: str) -> None:
        if reason not in self.found_by:
            self.found_by.append(reason)


class Finder:
    """Lookups on one open warehouse (live or snapshot); every method only reads."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._tables: dict[str, bool] = {}

    def has(self, name: str) -> bool:
        if name not in self._tables:
            schema, table = name.split(".")
            self._tables[name] = table_exists(self.con, schema, table)
        return self._tables[name]

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # ------------------------------------------------------------------ search

    def search(self, query: Query, when: DateFilter | None = None) -> list[Candidate]:
        found: dict[str, Candidate] = {}

        def known(uid: str, reason: str) -> Candidate:
            candidate = found.setdefault(uid, Candidate(uid, True))
            candidate.add(reason)
            return candidate

        if query.kind == "name":
            self._search_name(query, known, found)
        else:
            self._search_number(query, known, found)
        known_uids = [k for k, c in found.items() if c.on_tax_sources]
        dates = self._issue_dates(known_uids)
        for uid in known_uids:
            found[uid].dates |= dates.get(uid, set())
        out = [c for c in found.values() if when is None or any(d in when for d in c.dates)]
        return sorted(out, key=lambda c: (not c.on_tax_sources, min(c.dates, default=dt.date.max), c.key))

    def _issue_dates(self, uids: list[str]) -> dict[str, set[dt.date]]:
        dates: dict[str, set[dt.date]] = {}
        if uids:
            for row in self.rows(
                "select invoice_uid, issue_date from core.authoritative_invoices "
                "where invoice_uid in (select unnest(?::varchar[]))",
                [uids],
            ):
                dates.setdefault(row["invoice_uid"], set()).add(row["issue_date"])
        return dates

    def _resolve_ref(self, kind: str | None, key: str | None) -> list[str]:
        """The invoices a typed reference names under the forms it may match."""
        forms = MATCHABLE_FORMS.get(kind or "")
        if not forms or key is None:
            return []
        return [
            r["invoice_uid"]
            for r in self.rows(
                "select distinct invoice_uid from core.invoice_aliases "
                "where alias = ? and alias_kind in (select unnest(?::varchar[]))",
                [key, list(forms)],
            )
        ]

    @staticmethod
    def canonical(kind: str | None, key: str | None, token: str | None) -> str:
        """How the ledger keys a number no tax source knows (missing_in_tax_platform.sql)."""
        if kind == "digits18" and key:
            return f"{key[:10]}-{key[10:]}"
        return key or token or ""

    def _attach_refs(self, rows: list[dict], side: str, known, found: dict[str, Candidate]) -> None:
        """ERP references (side 'erp') or claim lines (side 'claim') that name the query."""
        for row in rows:
            ident = row["erp_doc_id"] if side == "erp" else (row["claim_no"], row["ref_token"])
            label = f"ERP {row['erp_doc_id']}" if side == "erp" else f"claim {row['claim_no']}"
            typed = f" keyed {row['ref_token']!r}" if row.get("ref_token") else ""
            if row.get("matched_uid"):
                candidate = known(row["matched_uid"], f"{label}{typed}")
                note = f"matched ({row['match_method']})"
            else:
                targets = self._resolve_ref(row.get("ref_kind"), row.get("ref_key"))
                if len(targets) == 1:
                    candidate = known(targets[0], f"{label}{typed}")
                    note = "names it, not matched"
                else:
                    key = self.canonical(row.get("ref_kind"), row.get("ref_key"), row.get("ref_token"))
                    key = key or str(row["erp_doc_id"] if side == "erp" else row["claim_no"])
                    candidate = found.setdefault(key, Candidate(key, False))
                    candidate.add(f"{label}{typed}")
                    note = "not matched" if not targets else f"not matched ({len(targets)} invoices fit)"
                    # a number no tax source has is dated by what was keyed
                    if row.get("issue_date") is not None:
                        candidate.dates.add(row["issue_date"])
            if side == "erp":
                candidate.erp_docs.setdefault(ident, note)
            else:
                candidate.claims.setdefault(ident, note)

    def _search_number(self, query: Query, known, found: dict[str, Candidate]) -> None:
        # 20 digits find a 数电 number under digital_no/uid and a joined legacy number under
        # code_number_joined: both readings in one lookup.
        for row in self.rows(
            "select invoice_uid, alias_kind from core.invoice_aliases "
            "where alias = ? and alias_kind in (select unnest(?::varchar[])) "
            "order by invoice_uid, alias_kind",
            [query.key, list(MATCHABLE_FORMS[query.kind])],
        ):
            known(row["invoice_uid"], _FORM_READING[row["alias_kind"]])

        if query.kind == "number8":
            where = "(x.ref_key = ? or right(x.ref_key, 8) = ?)"
            params: list = [query.key, query.key]
        else:
            where = "x.ref_key in (select unnest(?::varchar[]))"
            params = [list(query.ref_keys)]
        if self.has("staging.erp_invoice_refs") and self.has("staging.erp"):
            self._attach_refs(
                self.rows(
                    "select x.erp_doc_id, x.ref_token, x.ref_kind, x.ref_key, e.issue_date, "
                    "m.invoice_uid as matched_uid, m.match_method "
                    "from staging.erp_invoice_refs as x "
                    "join staging.erp as e on x.erp_doc_id = e.erp_doc_id "
                    "left join core.matches as m on m.match_side = 'erp' and m.erp_doc_id = x.erp_doc_id "
                    "and (m.ref_token = x.ref_token or m.match_method = 'fuzzy') "
                    f"where {where} order by x.erp_doc_id, x.ref_seq",
                    params,
                ),
                "erp",
                known,
                found,
            )
        if self.has("staging.reimbursement"):
            self._attach_refs(
                self.rows(
                    "select x.claim_no, x.invoice_no as ref_token, x.ref_kind, x.ref_key, x.issue_date, "
                    "m.invoice_uid as matched_uid, m.match_method "
                    "from staging.reimbursement as x "
                    "left join core.matches as m on m.match_side = 'claim' and m.claim_no = x.claim_no "
                    "and m.ref_token = x.invoice_no "
                    f"where {where} order by x.claim_no, x.invoice_no",
                    params,
                ),
                "claim",
                known,
                found,
            )
        # The ledger keys numbers no tax source knows: the only trace of them in the snapshot.
        if query.kind == "number8":
            ledger_where, ledger_params = "right(invoice_uid, 8) = ?", [query.key]
        else:
            ledger_where, ledger_params = (
                "invoice_uid in (select unnest(?::varchar[]))",
                [list(query.ref_keys)],
            )
        for row in self.rows(
            "select invoice_uid, rule_id, subject, details from audit.findings "
            f"where rule_id in (select unnest(?::varchar[])) and {ledger_where}",
            [list(_LEDGER_ONLY_RULES), *ledger_params],
        ):
            if row["invoice_uid"] in found:
                continue
            if self._resolve_ref(*_classify(row["invoice_uid"])):
                continue  # a tax source knows it (for another entity): not a number nobody has
            candidate = found.setdefault(row["invoice_uid"], Candidate(row["invoice_uid"], False))
            details = json.loads(row["details"]) if row["details"] else {}
            if row["rule_id"] == "missing_in_tax_platform":
                candidate.erp_docs.setdefault(row["subject"], "not matched (from the ledger)")
                candidate.add(f"ERP {row['subject']} (ledger)")
            for claim in details.get("claims") or []:
                candidate.claims.setdefault((claim, None), "not matched (from the ledger)")
                candidate.add(f"claim {claim} (ledger)")
            if details.get("issue_date"):
                candidate.dates.add(dt.date.fromisoformat(details["issue_date"]))

    def _matching_names(self, fragment: str) -> list[str]:
        parts = [
            "select seller_name as name from core.invoices",
            "select buyer_name from core.invoices",
        ]
        if self.has("staging.erp"):
            parts.append("select counterparty_name from staging.erp")
        names = self.con.sql(
            "select distinct name from (" + " union all ".join(parts) + ") where name is not null"
        ).pl()
        hits = names.filter(nz.normalize_name(pl.col("name")).str.contains(fragment, literal=True))
        return hits["name"].to_list()

    def _search_name(self, query: Query, known, found: dict[str, Candidate]) -> None:
        names = self._matching_names(query.key)
        tin = query.tin or ""
        for row in self.rows(
            """
            select distinct invoice_uid,
                case when direction = 'issued' then buyer_name
                     when direction = 'received' then seller_name
                     else coalesce(seller_name, buyer_name) end as counterparty_name,
                case when direction = 'issued' then buyer_tin
                     when direction = 'received' then seller_tin
                     else coalesce(seller_tin, buyer_tin) end as counterparty_tin
            from core.invoices
            where (direction = 'issued' and buyer_name in (select unnest(?::varchar[])))
               or (direction = 'received' and seller_name in (select unnest(?::varchar[])))
               or (direction is null and (seller_name in (select unnest(?::varchar[]))
                                          or buyer_name in (select unnest(?::varchar[]))))
               or (? <> '' and (seller_tin = ? or buyer_tin = ?))
            order by invoice_uid
            """,
            [names, names, names, names, tin, tin, tin],
        ):
            if tin and row["counterparty_tin"] == tin:
                known(row["invoice_uid"], "counterparty TIN")
            else:
                known(row["invoice_uid"], f"counterparty {row['counterparty_name']}")
        if not self.has("staging.erp"):
            return
        docs = self.rows(
            "select e.erp_doc_id, e.counterparty_name, e.issue_date, x.ref_token, x.ref_kind, x.ref_key, "
            "m.invoice_uid as matched_uid, m.match_method "
            "from staging.erp as e "
            "left join staging.erp_invoice_refs as x on x.erp_doc_id = e.erp_doc_id "
            "left join core.matches as m on m.match_side = 'erp' and m.erp_doc_id = e.erp_doc_id "
            "and (m.ref_token = x.ref_token or m.match_method = 'fuzzy') "
            "where e.counterparty_name in (select unnest(?::varchar[])) "
            "or (? <> '' and e.counterparty_tin = ?) "
            "order by e.erp_doc_id, x.ref_seq",
            [names, tin, tin],
        )
        self._attach_refs(docs, "erp", known, found)

    # ------------------------------------------------------------------ one invoice in full

    def summaries(self, candidates: list[Candidate]) -> list[dict]:
        """One line's worth each: number, date, parties, total, where it is (batched)."""
        uids = [c.key for c in candidates if c.on_tax_sources]
        invoices: dict[str, list[dict]] = {}
        where_else: dict[str, list[str]] = {}
        if uids:
            for row in self.rows(
                "select invoice_uid, entity_tin, direction, issue_date, seller_tin, seller_name, buyer_tin, "
                "buyer_name, amount_incl_tax, status, sources from core.authoritative_invoices "
                "where invoice_uid in (select unnest(?::varchar[])) order by invoice_uid, entity_tin",
                [uids],
            ):
                invoices.setdefault(row.pop("invoice_uid"), []).append(row)
            for row in self.rows(
                "select invoice_uid, match_side, count(*) as n from core.matches "
                "where invoice_uid in (select unnest(?::varchar[])) group by all order by all",
                [uids],
            ):
                label = "ERP" if row["match_side"] == "erp" else "claim"
                where_else.setdefault(row["invoice_uid"], []).append(f"{label} ×{row['n']}")
        out = []
        for candidate in candidates:
            line = {
                "key": candidate.key,
                "invoice_uid": candidate.key if candidate.on_tax_sources else None,
                "on_tax_sources": candidate.on_tax_sources,
                "found_by": candidate.found_by,
            }
            if candidate.on_tax_sources:
                rows = invoices.get(candidate.key, [])
                line.update({k: v for k, v in (rows or [{}])[0].items() if k != "sources"})
                sources = sorted({s for r in rows for s in r["sources"] or []}, key=_source_rank)
                line["where"] = [SOURCE_LABELS.get(s, s) for s in sources] + where_else.get(candidate.key, [])
            else:
                first = (
                    self._erp_rows(list(candidate.erp_docs))
                    or self._claim_rows(list(candidate.claims))
                    or [{}]
                )[0]
                line.update({k: first.get(k) for k in _SUMMARY_KEYS})
                line["issue_date"] = min(candidate.dates, default=None)
                line["status"] = "not on any tax source"
                line["where"] = [
                    f"{label} ×{len(items)}"
                    for label, items in (("ERP", candidate.erp_docs), ("claim", candidate.claims))
                    if items
                ]
            out.append(line)
        return out

    def _erp_rows(self, doc_ids: list[str], notes: dict[str, str] | None = None) -> list[dict]:
        if not doc_ids:
            return []
        if not self.has("staging.erp"):
            return [
                {
                    "source": "erp",
                    "erp_doc_id": d,
                    "match": (notes or {}).get(d),
                    "note": "not in the snapshot",
                }
                for d in doc_ids
            ]
        rows = self.rows(
            """
            select 'erp' as source, erp_doc_id, direction, voucher_no, posting_date, accounting_period,
                invoice_type, invoice_code, invoice_no_raw as invoice_no, issue_date,
                seller_tin, seller_name, buyer_tin, buyer_name,
                amount_excl_tax, tax_amount, amount_incl_tax, currency,
                case when is_cancelled then 'cancelled' when not is_approved then 'not approved'
                     else 'live' end as status,
                clerk, remark, _source_file as file, _source_row as row
            from staging.erp where erp_doc_id in (select unnest(?::varchar[]))
            order by erp_doc_id
            """,
            [doc_ids],
        )
        for row in rows:
            row["match"] = (notes or {}).get(row["erp_doc_id"])
        return rows

    def _claim_rows(self, claims: list[tuple[str, str | None]], notes: dict | None = None) -> list[dict]:
        if not claims:
            return []
        if not self.has("staging.reimbursement"):
            return [
                {
                    "source": "claim",
                    "claim_no": c,
                    "match": (notes or {}).get((c, n)),
                    "note": "not in the snapshot",
                }
                for c, n in claims
            ]
        rows = self.rows(
            """
            select 'claim' as source, claim_no, claimant, department, submitted_date,
                approval_status as status, invoice_code, invoice_no, issue_date, amount_incl_tax,
                claimed_amount, _source_file as file, _source_row as row
            from staging.reimbursement where claim_no in (select unnest(?::varchar[]))
            order by claim_no, _source_row
            """,
            [sorted({c for c, _ in claims})],
        )
        wanted = set(claims)
        out = []
        for row in rows:
            ident = (row["claim_no"], row["invoice_no"])
            if ident in wanted or (row["claim_no"], None) in wanted:
                row["match"] = (notes or {}).get(ident) or (notes or {}).get((row["claim_no"], None))
                out.append(row)
        return out

    def detail(self, candidate: Candidate, summary: dict, masked: bool) -> dict:
        """Everything about one invoice (or one number only the ERP/claims know)."""
        out = dict(summary)
        key = candidate.key
        tax_rows: list[dict] = []
        matches: list[dict] = []
        erp_notes = dict(candidate.erp_docs)
        claim_notes = dict(candidate.claims)
        if candidate.on_tax_sources:
            tax_rows = self.rows(
                """
                select source, entity_tin, direction, invoice_code, invoice_no, digital_invoice_no,
                    invoice_type, issue_date, issue_ts, seller_tin, seller_name, buyer_tin, buyer_name,
                    amount_excl_tax, tax_amount, amount_incl_tax, is_positive, status, risk_level,
                    original_invoice_uid, remark, _source_file as file, _source_row as row
                from core.invoices where invoice_uid = ?
                order by case source when 'tax_platform' then 1 when 'einvoice_xml' then 2 else 3 end,
                    entity_tin
                """,
                [key],
            )
            authority = self.rows(
                "select entity_tin, direction, source from core.authoritative_invoices where invoice_uid = ? "
                "order by entity_tin",
                [key],
            )
            out["entity_sides"] = [
                {
                    "entity_tin": a["entity_tin"],
                    "direction": a["direction"],
                    "authoritative_source": a["source"],
                }
                for a in authority
            ]
            matches = self.rows(
                "select match_side, erp_doc_id, claim_no, ref_token, match_method, is_live, entity_tin "
                "from core.matches where invoice_uid = ? order by match_side, erp_doc_id, claim_no",
                [key],
            )
            for m in matches:
                if m["match_side"] == "erp":
                    erp_notes[m["erp_doc_id"]] = f"matched ({m['match_method']})"
                else:
                    claim_notes[(m["claim_no"], m["ref_token"])] = f"matched ({m['match_method']})"
        erp_rows = self._erp_rows(sorted(erp_notes), erp_notes)
        claim_rows = self._claim_rows(sorted(claim_notes, key=lambda c: (c[0], c[1] or "")), claim_notes)
        # One record per source: each tax source's row, each ERP document, each claim line.
        out["records"] = [*tax_rows, *erp_rows, *claim_rows]
        out["matches"] = matches
        out["findings"] = self.findings(
            [key], sorted(erp_notes), sorted({c for c, _ in claim_notes}), masked=masked
        )
        # The history is an invoice's (core.invoice_history is keyed by invoice_uid): null for a
        # number no tax source has, and when the table does not exist yet.
        out["history"] = None
        if candidate.on_tax_sources and self.has("core.invoice_history"):
            out["history"] = self.rows(
                "select event_seq, observed_at, aspect, event, value_before, value_after, source, "
                "file_name, loaded_at, run_id from core.invoice_history where invoice_uid = ? "
                "order by event_seq",
                [key],
            )
            if masked:  # party values hold TINs: mask them as TINs, like the records above
                for event in out["history"]:
                    for side in ("value_before", "value_after"):
                        event[side] = mask_tins_in_text(event[side])
        return out

    def findings(self, keys: list[str], erp_docs: list[str], claims: list[str], masked: bool) -> list[dict]:
        """Findings about the invoice: by invoice_uid, by subject (the invoice, its ERP documents),
        or naming it in their evidence (an invalid TIN's invoices, a claim's number)."""
        named = [*keys, *erp_docs, *claims]
        state = "s.state" if self.has("audit.finding_status") else "f.status"
        join = (
            "left join audit.finding_status as s on f.finding_id = s.finding_id"
            if self.has("audit.finding_status")
            else ""
        )
        rows = self.rows(
            f"""
            select f.finding_id, f.rule_id, f.severity, {state} as state, f.status, f.entity_tin,
                f.direction, f.period, f.invoice_uid, f.subject, f.amount, f.first_seen_at,
                f.last_seen_at, f.resolved_at, f.details
            from audit.findings as f {join}
            where f.invoice_uid in (select unnest(?::varchar[]))
               or f.subject in (select unnest(?::varchar[]))
               or exists (
                   select 1 from unnest(?::varchar[]) as t(k)
                   where contains(cast(f.details as varchar), '"' || t.k || '"')
               )
            """,
            [keys, named, named],
        )
        now = self._as_of()
        for row in rows:
            row["details"] = json.loads(row["details"]) if row["details"] else None
            end = row["resolved_at"] or now
            row["age_days"] = (end - row["first_seen_at"]).days if end and row["first_seen_at"] else None
            if masked and row["rule_id"] == "invalid_tin":
                row["subject"] = _one(nz.mask_tin(pl.lit(row["subject"], dtype=pl.String)))
            row["actions"] = []
        rows.sort(
            key=lambda r: (
                _STATE_ORDER.get(r["state"], 9),
                _SEVERITY_ORDER.get(r["severity"], 9),
                r["first_seen_at"],
                r["rule_id"],
            )
        )
        if rows and self.has("audit.finding_actions"):
            by_id = {r["finding_id"]: r for r in rows}
            for action in self.rows(
                "select finding_id, action_id, action, acted_by, note, acted_at, via "
                "from audit.finding_actions where finding_id in (select unnest(?::varchar[])) "
                "order by acted_at, action_id",
                [list(by_id)],
            ):
                by_id[action.pop("finding_id")]["actions"].append(action)
        return rows

    def _as_of(self) -> dt.datetime:
        """Ages are counted to the latest run's as-of instant, as the ledger's own ages are."""
        if self.has("audit.runs"):
            rows = self.rows("select max(evaluated_at) as t from audit.runs")
            if rows and rows[0]["t"] is not None:
                return rows[0]["t"]
        return dt.datetime.now(dt.UTC)

    def sequence_gap_hint(self, query: Query) -> list[str]:
        """A legacy number nobody has may sit in a sequence gap the ledger already reports."""
        if query.kind not in ("code_number", "digits18", "digits20"):
            return []
        hints = []
        for uid in query.invoice_keys:
            if "-" not in uid:
                continue
            code, number = uid.split("-")
            for row in self.rows(
                "select finding_id, subject, status from audit.findings "
                "where rule_id = 'sequence_gap' and subject like ? || ':%'",
                [code],
            ):
                first, last = row["subject"].split(":", 1)[1].split("-")
                if first <= number <= last:
                    hints.append(
                        f"{uid} lies in the sequence gap {row['subject']} "
                        f"(finding {row['finding_id']}, {row['status']}): nobody has it"
                    )
        return hints


# ----------------------------------------------------------------------------- the command


def find(
    con: duckdb.DuckDBPyConnection,
    query: Query,
    when: DateFilter | None = None,
    masked: bool = True,
    show_all: bool = False,
    is_snapshot: bool = False,
) -> dict:
    """The whole answer as one JSON-ready document (masked unless `masked=False`)."""
    finder = Finder(con)
    candidates = finder.search(query, when)
    doc: dict = {
        "query": query.text,
        "read_as": query.kind,
        "tried": query.tried(),
        "note": query.note,
        "date": when.text if when else None,
        "snapshot": is_snapshot,
        "masked": masked or is_snapshot,
        "result": "not_found" if not candidates else "found" if len(candidates) == 1 else "ambiguous",
        "candidates": finder.summaries(candidates[:MAX_CANDIDATES]),
        "more_candidates": max(0, len(candidates) - MAX_CANDIDATES),
        "invoices": [],
    }
    if len(candidates) == 1 or (show_all and candidates):
        doc["invoices"] = [
            finder.detail(c, line, masked)
            for c, line in zip(candidates[:MAX_FULL], doc["candidates"], strict=False)
        ]
    if not candidates:
        doc["hints"] = finder.sequence_gap_hint(query)
    doc = _plain(doc)
    if masked and not is_snapshot:
        doc = mask_document(doc)
    return doc


_TIN_IN_TEXT = re.compile(r"(?<![0-9A-Z])[0-9]{17}[0-9X](?:[0-9]{2})?(?![0-9A-Z])")


def mask_tins_in_text(text: str | None) -> str | None:
    """Every TIN in a text whose first 18 characters are a resident ID, masked by
    `normalize.mask_tin` (110101**********1002), as the same TIN is masked in its own column."""
    if not text:
        return text

    def one(match: re.Match) -> str:
        tin = match[0]
        if not is_valid_resident_id(tin[:18]):
            return tin
        return _one(nz.mask_tin(pl.lit(tin, dtype=pl.String)))

    return _TIN_IN_TEXT.sub(one, text)


def mask_document(doc: dict) -> dict:
    """The analysts' snapshot masking (assets/publish/analytics.yaml) applied by key.

    Values under the spec's keep columns (invoice numbers, ids, enums) are put back as they were:
    the snapshot copies those columns unchanged, and an invoice number must never be altered.
    """
    from invoice_pipeline.publish import JsonMasker, load_spec

    spec = load_spec()
    masked = json.loads(JsonMasker(spec).mask([json.dumps(doc, ensure_ascii=False)])[0])
    masked = _restore(doc, masked, spec.keep_columns | {"key"})
    for before, after in zip(doc["invoices"], masked["invoices"], strict=True):
        # A party's name masked in the records (an individual's) is masked in its history too.
        names = {
            b[k]: a[k]
            for b, a in zip(before["records"], after["records"], strict=True)
            for k in ("seller_name", "buyer_name")
            if b.get(k) and b[k] != a.get(k)
        }
        for event in after["history"] or []:
            for side in ("value_before", "value_after"):
                for name, hidden in names.items():
                    if event[side]:
                        event[side] = event[side].replace(name, hidden)
    return masked


def _restore(original, masked, keep: frozenset[str]):
    if isinstance(original, dict):
        return {
            k: v if k in keep and _is_scalar(v) else _restore(v, masked[k], keep) for k, v in original.items()
        }
    if isinstance(original, list):
        return [_restore(o, m, keep) for o, m in zip(original, masked, strict=True)]
    return masked


def _is_scalar(value) -> bool:
    return not isinstance(value, dict | list) or all(not isinstance(v, dict | list) for v in value)


def run_find(
    data_dir: Path,
    query_text: str,
    date: str | None = None,
    as_json: bool = False,
    unmasked: bool = False,
    show_all: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The `find` command: print the answer, return the exit status (0 found, 1 not found)."""
    out = out or sys.stdout
    err = err or sys.stderr
    query = parse_query(query_text)
    when = parse_date_filter(date) if date else None
    con, path, is_snapshot = open_warehouse(data_dir, err)
    try:
        doc = find(con, query, when, masked=not unmasked, show_all=show_all, is_snapshot=is_snapshot)
    finally:
        con.close()
    doc["warehouse"] = str(path)
    if unmasked and is_snapshot:
        print("find: --unmasked has no effect on the snapshot: it was masked when published", file=err)
    if as_json:
        print(json.dumps(doc, ensure_ascii=False, indent=2), file=out)
    else:
        render(doc, out)
    return 0 if doc["candidates"] else 1


# ----------------------------------------------------------------------------- the terminal

# (label, key, compare): the rows of the side-by-side table; `compare` marks a row whose
# values differ between columns with ≠ (names, codes and numbers are compared only between
# the tax sources: the ERP keys them its own way).
# The ERP document, claim, entity and direction are in the column headers and the title.
_FIELDS = (
    ("match", "match", None),
    ("code 发票代码", "invoice_code", "tax"),
    ("number 发票号码", "invoice_no", "tax"),
    ("数电发票号码", "digital_invoice_no", "tax"),
    ("type 票种", "invoice_type", "tax"),
    ("issued 开票日期", "issue_date", "all"),
    ("seller TIN", "seller_tin", "all"),
    ("seller 销方", "seller_name", "tax"),
    ("buyer TIN", "buyer_tin", "all"),
    ("buyer 购方", "buyer_name", "tax"),
    ("amount 金额", "amount_excl_tax", "all"),
    ("tax 税额", "tax_amount", "all"),
    ("total 价税合计", "amount_incl_tax", "all"),
    ("status", "status", "tax"),
    ("risk", "risk_level", "tax"),
    ("blue invoice", "original_invoice_uid", "tax"),
    ("posted 记账日期", "posting_date", None),
    ("period 会计期间", "accounting_period", None),
    ("voucher 凭证号", "voucher_no", None),
    ("claimed 报销金额", "claimed_amount", None),
    ("claimant 报销人", "claimant", None),
    ("department", "department", None),
    ("submitted", "submitted_date", None),
    ("clerk 制单人", "clerk", None),
    ("remark 备注", "remark", None),
    ("file", "file", None),
    ("row", "row", None),
    ("", "note", None),
)


def _console(out: TextIO):
    from rich.console import Console

    width = shutil.get_terminal_size((120, 40)).columns
    return Console(
        file=out, width=max(width, 80), highlight=False, markup=False, emoji=False, soft_wrap=False
    )


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _column_header(source: dict, sides: int) -> str:
    if source["source"] == "erp":
        return f"ERP {source['erp_doc_id']}"
    if source["source"] == "claim":
        return f"claim {source['claim_no']}"
    label = SOURCE_LABELS.get(source["source"], source["source"])
    return f"{label} ({source.get('direction')})" if sides > 1 else label


# A record column is at least as wide as a 20-digit number or TIN, so identifiers never break.
_RECORD_WIDTH = 20
_LABEL_WIDTH = 18


def _differs(records: list[dict], key: str, compare: str | None) -> bool:
    if compare is None:
        return False
    values = {
        _text(r.get(key))
        for r in records
        if r.get(key) is not None and (compare == "all" or r["source"] in SOURCE_ORDER)
    }
    return len(values) > 1


def _sources_tables(invoice: dict, width: int) -> list:
    """The records side by side: field rows × source columns, split into as many tables as
    the terminal needs so that no column is cut off; ≠ marks fields the sources disagree on."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    records = invoice["records"]
    sides = len({r.get("entity_tin") for r in records if r["source"] in SOURCE_ORDER})
    per_table = max(1, (width - _LABEL_WIDTH - 2) // (_RECORD_WIDTH + 2))
    tables = []
    for start in range(0, len(records), per_table):
        chunk = records[start : start + per_table]
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("", no_wrap=True, style="bold", min_width=_LABEL_WIDTH)
        for record in chunk:
            header = Text(_column_header(record, sides))
            table.add_column(header, overflow="fold", min_width=_RECORD_WIDTH)
        for label, key, compare in _FIELDS:
            if not any(_text(r.get(key)) for r in chunk):
                continue
            mark = "≠ " if _differs(records, key, compare) else ""
            table.add_row(Text(mark + label), *(Text(_text(r.get(key))) for r in chunk))
        tables.append(table)
    return tables


def _side_line(invoice: dict) -> str:
    sides = invoice.get("entity_sides") or []
    parts = []
    for side in sides:
        word = {"issued": "issued by", "received": "received by"}.get(side["direction"], "of")
        parts.append(
            f"{word} {side['entity_tin']} (authority: {SOURCE_LABELS.get(side['authoritative_source'])})"
        )
    return "; ".join(parts)


def _render_invoice(console, invoice: dict) -> None:
    from rich.rule import Rule
    from rich.text import Text

    title = f"invoice {invoice['key']}" if invoice["on_tax_sources"] else f"number {invoice['key']}"
    console.print(Rule(Text(title), align="left"))
    if invoice["on_tax_sources"]:
        console.print(Text(f"{_side_line(invoice)} · on: {', '.join(invoice.get('where') or [])}"))
    else:
        console.print(
            Text("NOT ON ANY TAX SOURCE (platform, XML, OFD): known only to the ERP / claims below")
        )
    console.print(Text("found by: " + "; ".join(invoice["found_by"])))
    console.print()
    for i, table in enumerate(_sources_tables(invoice, console.width)):
        if i:
            console.print()
        console.print(table)

    console.print()
    console.print(Text("matches", style="bold"))
    if invoice["matches"]:
        for m in invoice["matches"]:
            what = f"ERP {m['erp_doc_id']}" if m["match_side"] == "erp" else f"claim {m['claim_no']}"
            typed = f" keyed {m['ref_token']!r}" if m["ref_token"] else ""
            live = "live" if m["is_live"] else "not live (cancelled, unapproved, draft or rejected)"
            console.print(Text(f"  {what}{typed} — {m['match_method']}, {live}"))
    else:
        console.print(Text("  none: no ERP document or claim is matched to it"))

    findings = invoice["findings"]
    open_count = sum(f["state"] != "resolved" for f in findings)
    console.print(Text(f"findings ({open_count} open, {len(findings) - open_count} resolved)", style="bold"))
    if not findings:
        console.print(Text("  none"))
    for f in findings:
        age = f["age_days"]
        if f["state"] == "resolved":
            when = f"open {age} d, resolved {(f['resolved_at'] or '')[:10]}"
        else:
            when = f"{age} d, since {(f['first_seen_at'] or '')[:10]}"
        amount = f"  {f['amount']} 元" if f["amount"] is not None else ""
        head = f"  {f['state']:<9}{f['severity']:<8}{f['rule_id']:<24}{when}{amount}"
        console.print(Text(f"{head}  [{f['finding_id']}] {f['subject']}"))
        for a in f["actions"]:
            note = f" — {a['note']}" if a["note"] else ""
            console.print(
                Text(
                    f"{'':11}{(a['acted_at'] or '')[:16].replace('T', ' ')} {a['action']} "
                    f"by {a['acted_by']} ({a['via']}){note}"
                )
            )

    if invoice["history"] is not None:
        console.print(Text("history", style="bold"))
        if not invoice["history"]:
            console.print(Text("  no events recorded"))
        for h in invoice["history"]:
            change = h["value_after"] or ""
            if h["value_before"] is not None:
                change = f"{h['value_before']} → {h['value_after'] or '(gone)'}"
            console.print(
                Text(
                    f"  {h['event_seq']:>3} {(h['observed_at'] or '')[:10]} {h['aspect']:<9}{h['event']:<16}"
                    f"{change}  ({h['file_name'] or h['source']})"
                )
            )
    console.print()


def _counterparty(c: dict) -> str:
    if c.get("direction") == "issued":
        return c.get("buyer_name") or c.get("buyer_tin") or ""
    if c.get("direction") == "received":
        return c.get("seller_name") or c.get("seller_tin") or ""
    return " → ".join(x for x in (c.get("seller_name"), c.get("buyer_name")) if x)


def _candidates_table(doc: dict):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    by_number = doc["read_as"] != "name"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("invoice", no_wrap=True)
    table.add_column("issued", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("counterparty", overflow="fold", min_width=12)
    table.add_column("价税合计", justify="right", no_wrap=True)
    table.add_column("status", overflow="fold")
    table.add_column("on", overflow="fold")
    if by_number:
        table.add_column("matched as", overflow="fold")
    for i, c in enumerate(doc["candidates"], start=1):
        cells = [
            i,
            c["key"],
            c.get("issue_date"),
            {"issued": "销项", "received": "进项"}.get(c.get("direction") or "", ""),
            _counterparty(c),
            c.get("amount_incl_tax"),
            c.get("status"),
            ", ".join(c.get("where") or []),
        ]
        if by_number:
            cells.append(c["found_by"][0] if c["found_by"] else "")
        table.add_row(*(Text(_text(v)) for v in cells))
    return table


def _narrow_hint(doc: dict) -> str:
    kind = doc["read_as"]
    shown = "--all prints each in full" if not doc["invoices"] else "each is printed in full below"
    if kind == "digits20":
        key = "".join(ch for ch in doc["query"] if ch.isdigit())
        return (
            f"These 20 digits are a 数电 number and also a 12-digit code + 8-digit number run together. "
            f"Type {key[:12]}-{key[12:]} for the legacy invoice, narrow with --date, or {shown}."
        )
    if kind == "name":
        return f"Narrow it: --date YYYY-MM-DD or YYYY-MM, or more of the name; {shown}."
    return (
        "Narrow it: --date YYYY-MM-DD or YYYY-MM, or the full number (the 20-digit 数电 number, "
        f"or code and number); {shown}."
    )


def render(doc: dict, out: TextIO) -> None:
    """The answer for a person at a terminal (CJK-aware column widths, via rich)."""
    from rich.text import Text

    console = _console(out)
    tried = "; ".join(doc["tried"])
    date = f", issued {doc['date']}" if doc["date"] else ""
    if doc["note"]:
        console.print(Text(f"find: {doc['note']}"))
    if doc["result"] == "not_found":
        console.print(Text(f"nothing found for {doc['query']!r}{date}. Tried: {tried}."))
        console.print(
            Text(
                "Looked in: tax platform, XML and OFD invoices (every identifier form), "
                "ERP documents, claims, the findings ledger."
            )
        )
        for hint in doc.get("hints") or []:
            console.print(Text(hint))
        if doc["date"]:
            console.print(Text("Without --date more may match."))
        return
    if doc["result"] == "ambiguous":
        more = f" (and {doc['more_candidates']} more)" if doc["more_candidates"] else ""
        console.print(
            Text(f"{len(doc['candidates'])} candidates{more} for {doc['query']!r}{date} — read as: {tried}")
        )
        console.print(_candidates_table(doc))
        console.print(Text(_narrow_hint(doc)))
        console.print()
    for invoice in doc["invoices"]:
        _render_invoice(console, invoice)
    if doc["snapshot"]:
        console.print(Text(f"(read from the analysts' snapshot {doc.get('warehouse', '')})"))
