"""Write jobs: ``POST /v1/ingest`` (a server folder under an allowed root) and job status."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from polisum.serve.deps import AdminCaller, ReadCaller, ServeState, StateDep
from polisum.serve.jobs import Job, ingest_work
from polisum.serve.models import IngestRequest, JobAccepted, JobList, JobModel
from polisum.serve.problems import ProblemError, problem_doc
from polisum.serve.settings import roots_of

router = APIRouter(tags=["jobs"])


def job_model(state: ServeState, job: Job) -> JobModel:
    return JobModel(
        id=job.id,
        kind=job.kind,  # type: ignore[arg-type]
        state=job.state,  # type: ignore[arg-type]
        position=state.jobs.position(job),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        target=job.target,
        stages=[e.to_dict() for e in job.progress.snapshot()],
        report=job.report,
        files=list(job.files),
        error=job.error,
    )


def allowed_folder(state: ServeState, raw: str) -> Path:
    """``raw`` resolved (symlinks followed) and checked to be inside an allowed root."""
    roots = roots_of(state.settings.allowed_ingest_roots)
    if not roots:
        raise ProblemError(
            403,
            "ingesting server folders is off: start polisum serve with --allow-ingest-root "
            "FOLDER (or POLISUM_INGEST_ROOTS), or upload files with POST /v1/documents",
        )
    if "\x00" in raw:
        raise ProblemError(422, "path: must not contain NUL")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ProblemError(422, "path: give an absolute path (under an allowed root)")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        real = None
    inside = real is not None and any(real == r or r in real.parents for r in roots)
    if not inside:
        # The same answer whether the folder is missing or outside: no probing of the disk.
        raise ProblemError(
            403, f"{raw} is not a folder under an allowed ingest root (symlinks are followed)"
        )
    assert real is not None
    if not real.is_dir():
        raise ProblemError(422, f"{raw} is not a folder")
    return real


@router.post(
    "/ingest",
    status_code=202,
    response_model=JobAccepted,
    responses={403: problem_doc("outside the allowed roots"), 429: problem_doc("queue full")},
)
def ingest(body: IngestRequest, state: StateDep, who: AdminCaller) -> JobAccepted:
    """Bring the index up to date with a folder on the server, as a write job."""
    folder = allowed_folder(state, body.path)
    job = state.jobs.submit(
        "ingest", str(folder), ingest_work(state.index, folder, body.prune, body.retry_failed)
    )
    return JobAccepted(job=job_model(state, job))


@router.get("/jobs", response_model=JobList)
def list_jobs(state: StateDep, who: ReadCaller) -> JobList:
    """Recent write jobs, newest first."""
    return JobList(jobs=[job_model(state, j) for j in state.jobs.jobs()])


@router.get("/jobs/{job_id}", response_model=JobModel)
def get_job(job_id: str, state: StateDep, who: ReadCaller) -> JobModel:
    """A job's state, progress by stage, and per-file report."""
    job = state.jobs.get(job_id)
    if job is None:
        raise ProblemError(404, f"no job {job_id} (jobs are kept in memory until a restart)")
    return job_model(state, job)
