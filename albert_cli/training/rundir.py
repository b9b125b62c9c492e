"""The run directory: OUT, the OUT.partial it is built in, and what training keeps there.

One object owns the paths and the rules: the checks before any work (`check`), a fresh or resumed staging
directory (`open`), where checkpoints and logs go, what is kept after a failure (`discard_if_empty`) and the
atomic rename into place (`commit`), which drops the resumable training state unless it is to be kept.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from albert_cli.artifacts.modeldir import check_output, commit, discard_if_empty, make_staging, partial_dir

CHECKPOINTS = "checkpoints"
LOGS = "logs"


class RunDir:
    """OUT and OUT.partial of one training run.

    Args:
        out: the directory to write.
        overwrite: replace an existing OUT.
        resume: continue from OUT.partial (or from a finished OUT's checkpoints).
        worker: for a non-chief worker of a multi-worker run: its index; it builds in a temporary directory
            and reads the chief's checkpoints.

    Example:
        >>> run = RunDir(Path("model"), overwrite=False, resume=False)
        >>> run.check()            # before reading data: fails fast on an unwritable OUT
        >>> staging = run.open()   # model.partial/, fresh
        >>> run.commit(keep_checkpoints=False)
    """

    def __init__(self, out: Path, overwrite: bool = False, resume: bool = False, worker: int | None = None):
        self.out = Path(out)
        self.overwrite, self.resume = overwrite, resume
        self.is_chief = not worker
        self.staging = (
            partial_dir(self.out) if self.is_chief
            else Path(tempfile.mkdtemp(prefix=f"albert-pretrain-worker{worker}-"))
        )

    @property
    def checkpoints(self) -> Path:
        """Where this run writes checkpoints."""
        return self.staging / CHECKPOINTS

    @property
    def resume_checkpoints(self) -> Path:
        """Where this run reads the checkpoint it resumes from (the chief's, for other workers)."""
        return partial_dir(self.out) / CHECKPOINTS

    @property
    def logs(self) -> Path:
        return self.staging / LOGS

    def check(self) -> None:
        """Fail early (before any work) if OUT may not be written or there is nothing to resume."""
        check_output(self.out, self.overwrite, self.resume)

    def open(self) -> Path:
        """Create (or, resuming, keep) the staging directory; returns it. Call `check` first."""
        if not self.is_chief:
            return self.staging
        make_staging(self.out, self.resume)
        finished_logs = self.out / LOGS
        if self.resume and finished_logs.is_dir() and not self.logs.exists():
            shutil.copytree(finished_logs, self.logs)  # continuing a finished run
        return self.staging

    def discard_if_empty(self) -> None:
        """After a failure: remove the staging directory unless it holds a checkpoint to resume from."""
        if self.is_chief:
            discard_if_empty(self.staging)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, keep_checkpoints: bool = True) -> None:
        """Rename the finished staging directory to OUT; without `keep_checkpoints` the training state goes first."""
        if not self.is_chief:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        if not keep_checkpoints:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        commit(self.staging, self.out)
