"""发票号码 and 数电发票号码: 20-digit numbers, legacy codes, and our consecutive runs.

Numbers are assigned after every invoice exists (reds and planted ones included), so that our
issued legacy invoices are consecutive under each 发票代码 except where a gap is planted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from invoice_pipeline.generate.ids import legacy_code
from invoice_pipeline.generate.model import (
    ISSUED,
    KIND_DIGITAL,
    KIND_LEGACY_CODE,
    World,
    code_region,
    invoice_province,
)


@dataclass
class Sequences:
    """Our issued legacy invoices in number order: one run per 发票代码."""

    order: np.ndarray  # invoice indices, sorted by (code, issue time)
    code_of: np.ndarray  # code id at each position
    starts: np.ndarray  # first position of each of our codes
    ends: np.ndarray
    code_ids: np.ndarray  # the code id of each run
    offsets: np.ndarray  # extra numbers skipped before each position (gaps, new allocations)


def prepare_numbers(world: World) -> Sequences:
    """20-digit numbers and 发票代码 for every invoice; our runs, for gaps to be planted into."""
    rng = world.rng
    n = world.n
    digital = KIND_DIGITAL[world.kind]
    ent_prov = np.array([int(invoice_province(e.region)) for e in world.entities])
    cp_prov = np.array([int(invoice_province(r)) for r in world.cps.region])
    prov = np.where(world.dirn == ISSUED, ent_prov[world.ent], cp_prov[world.cp]).astype(np.int64)
    channel = np.where(rng.random(n) < 0.95, 2, 7).astype(np.int64)
    seq = world.ts * 1000 + rng.integers(0, 1000, size=n)
    no20 = prov * 10**16 + channel * 10**15 + 10**13 + seq
    while True:  # numbers are unique: bump the rare collision
        order = np.argsort(no20, kind="stable")
        dup = np.flatnonzero(np.diff(no20[order]) == 0) + 1
        if not len(dup):
            break
        no20[order[dup]] += 1
    world.no20 = np.where(digital, no20, -1)

    codes: dict[str, int] = {}
    ours = np.full((len(world.entities), 6), -1, np.int64)
    for e, entity in enumerate(world.entities):
        for kind, code_kind in enumerate(KIND_LEGACY_CODE):
            if code_kind:
                code = legacy_code(
                    code_kind, code_region(entity.region), "26", 2 if code_kind == "sdp" else 1
                )
                ours[e, kind] = codes.setdefault(code, len(codes))
    n_ours = len(codes)
    theirs = np.full((len(world.cps), 6), -1, np.int64)
    for c, region in enumerate(world.cps.region):
        for kind, code_kind in enumerate(KIND_LEGACY_CODE):
            if code_kind:
                year = "25" if (c + kind) % 3 == 0 else "26"
                batch = 2 + (c * 7 + kind) % 8 if code_kind == "zp" else 3 + (c * 7 + kind * 13) % 97
                code = legacy_code(code_kind, code_region(region), year, batch)
                theirs[c, kind] = codes.setdefault(code, len(codes))
    world.codes = list(codes)
    code_id = np.where(world.dirn == ISSUED, ours[world.ent, world.kind], theirs[world.cp, world.kind])
    world.code_id = code_id

    legacy = np.flatnonzero(code_id >= 0)
    order = legacy[np.lexsort((legacy, world.ts[legacy], code_id[legacy]))]
    code_of = code_id[order]
    bounds = np.flatnonzero(np.diff(code_of)) + 1
    starts = np.concatenate([[0], bounds]) if len(order) else np.zeros(0, np.int64)
    ends = np.concatenate([bounds, [len(order)]]) if len(order) else np.zeros(0, np.int64)
    run_codes = code_of[starts] if len(order) else np.zeros(0, np.int64)
    mine = run_codes < n_ours
    return Sequences(
        order, code_of, starts[mine], ends[mine], run_codes[mine], np.zeros(len(order), np.int64)
    )


def apply_numbers(world: World, seqs: Sequences) -> None:
    """发票号码: consecutive per code for ours (plus planted skips), increasing for theirs."""
    rng = world.rng
    order, code_of = seqs.order, seqs.code_of
    world.no8 = np.full(world.n, -1, np.int64)
    if not len(order):
        return
    base = rng.integers(10_000, 3_000_000, size=len(world.codes))
    step = rng.integers(1, 400, size=len(order))
    ours = np.zeros(len(order), bool)
    for start, end in zip(seqs.starts, seqs.ends, strict=True):
        ours[start:end] = True
    step[ours] = 1
    step += seqs.offsets
    run_start = np.concatenate([[True], np.diff(code_of) != 0])
    cum = np.cumsum(step)
    first = np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))
    world.no8[order] = base[code_of] + cum - cum[first]
