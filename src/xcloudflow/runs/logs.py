"""A run's log: the plan job's lines, then the apply job's, then the run's own last word.

Cursors are `plan:<seq>`, `apply:<seq>` or `run:1`; they only move forward, so a client resumes
with the last cursor it saw (SSE `Last-Event-ID`).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from xcloudflow.db.pagination import check_limit
from xcloudflow.errors import Invalid
from xcloudflow.jobs import service as jobs
from xcloudflow.runs.models import FINAL_STAGES, Run
from xcloudflow.runs.schemas import RunLogLine, RunLogPage
from xcloudflow.runs.service import get_run

PHASES = ("plan", "apply", "run")


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    """(phase index, seq) after which to read."""
    if not cursor:
        return 0, 0
    phase, _, seq = cursor.partition(":")
    if phase not in PHASES or not seq.isdigit():
        raise Invalid(
            f"cursor {cursor!r} is not a log cursor (plan:<n>, apply:<n> or run:<n>)",
            details={"field": "after"},
        )
    return PHASES.index(phase), int(seq)


def _done(run: Run) -> bool:
    return run.stage in FINAL_STAGES or run.stage == "planned"


def read(
    *, session: Session, org_id: int, run_id: uuid.UUID, after: str | None = None, limit: int = 500
) -> RunLogPage:
    check_limit(limit)
    run, _ws = get_run(session, org_id, run_id)
    phase, seq = parse_cursor(after)
    done = _done(run)  # read before the lines: a line written after this read comes in a later page
    items: list[RunLogLine] = []
    more = False
    for index, job_id in ((0, run.plan_job_id), (1, run.apply_job_id)):
        if index < phase or job_id is None or len(items) >= limit:
            continue
        page = jobs.read_logs(
            session=session,
            org_id=org_id,
            job_id=job_id,
            after=seq if index == phase else 0,
            limit=limit - len(items),
        )
        name = PHASES[index]
        items += [
            RunLogLine(cursor=f"{name}:{line.seq}", at=line.at, text=line.text, phase=name)
            for line in page.items
        ]
        more = more or page.more
    if done and not more and run.error and phase < 2 and len(items) < limit:
        at = run.finished_at or run.created_at
        items.append(
            RunLogLine(
                cursor="run:1", at=at, text=f"run #{run.number} {run.stage}: {run.error}\n", phase="run"
            )
        )
    last = items[-1].cursor if items else (after or "plan:0")
    return RunLogPage(items=items, last_cursor=last, more=more, done=done and not more, stage=run.stage)
