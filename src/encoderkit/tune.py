"""`encoderkit tune`: an Optuna search over config fields; each trial is an ordinary run folder.

The study lives in an Optuna storage (`DIR/study.db`, SQLite, unless `--storage` names another),
so an interrupted search resumes with `--resume`, and processes on several machines pointing at
one database share one study (Optuna's own distributed mode). Trials report every evaluation, so
a median or Hyperband pruner stops a bad one early (it ends like early stopping: a finished run).

Trial k trains with seed + k (`--same-seed`: all with the seed); the sampler is seeded with the
seed, so an uninterrupted search is reproducible. `DIR/best.yaml` re-runs the best trial:
`encoderkit train --config DIR/best.yaml`.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from encoderkit.atomic import write_atomic, write_json
from encoderkit.config import FIELD_NAMES, TrainConfig, build_config, read_yaml_mapping
from encoderkit.errors import UserError, brief
from encoderkit.registry import entry
from encoderkit.training import faults

STUDY = "encoderkit"
PRUNERS = ("median", "hyperband", "none")
# Fields a search cannot vary: where the data and the runs are, how a run starts, the seed (set
# per trial) and the task (another task is another search).
FIXED = frozenset(
    {"task", "train", "eval", "output", "resume", "resume_force", "overwrite", "seed", "cache"}
    | {"report_to", "run_name", "tracking_dir", "multi_label"}
)
LOWER_IS_BETTER = ("loss", "mse", "perplexity")


@dataclass(frozen=True)
class Param:
    """One searched field: `choices`, or a range [low, high] (log-scaled, integer, stepped)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The values a trial may take at the edges: each checked by the config before trial 0."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass
class Search:
    folder: Path
    metric: str
    best_number: int | None
    best_value: float | None
    counts: dict[str, int]  # trials by state: COMPLETE, PRUNED, FAIL
    report: Path


def read_space(path: str, base: TrainConfig) -> list[Param]:
    """The search space file: `field: [choices]` or `field: {low, high, log?, step?}` per line.

    Raises:
        UserError: the file, a field name or a range is wrong, or a value the config refuses.
    """
    data = read_yaml_mapping(path, "search space file", "config fields to choices or ranges")
    if not data:
        raise UserError(f"{path}: an empty search space (field: [choices] or field: {{low, high}})")
    params = [_param(path, str(name).replace("-", "_"), spec) for name, spec in data.items()]
    for param in params:  # every edge of the space is a valid config, before any trial trains
        for value in param.corners():
            try:
                build_config({}, {**base.to_dict(), param.name: value})
            except UserError as exc:
                raise UserError(f"{path}: {param.name} = {brief(value)}: {exc}") from None
    return params


def _param(path: str, name: str, spec: Any) -> Param:
    if name not in FIELD_NAMES:
        raise UserError(f"{path}: '{name}' is not a config field")
    if name in FIXED:
        raise UserError(f"{path}: '{name}' cannot be searched (it is fixed for the whole search)")
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{path}: {name}: no choices")
        return Param(name, choices=tuple(spec))
    if (
        not isinstance(spec, dict)
        or not {"low", "high"} <= set(spec)
        or set(spec) - {"low", "high", "log", "step"}
    ):
        raise UserError(f"{path}: {name}: expected [choices] or {{low, high, log, step}}, got {brief(spec)}")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise UserError(f"{path}: {name}: low, high and step must be numbers")
    log = bool(spec.get("log", False))
    if not low < high or (log and low <= 0) or (step is not None and step <= 0):
        raise UserError(f"{path}: {name}: needs low < high (and low > 0 with log, step > 0)")
    integer = all(isinstance(v, int) for v in numbers) and name not in ("lr", "warmup_ratio")
    return Param(name, low=float(low), high=float(high), log=log, step=step, integer=integer)


def metric_of(config: TrainConfig) -> tuple[str, Literal["minimize", "maximize"]]:
    """(metric, direction) of the search: --metric-for-best, else the task's default."""
    task = entry(config.task)
    metric = config.metric_for_best or (task.metrics[0] if task and task.metrics else "loss")
    return metric, "minimize" if metric.endswith(LOWER_IS_BETTER) else "maximize"


def tune(
    base: TrainConfig,
    space: list[Param],
    trials: int,
    storage: str | None = None,
    pruner: str = "median",
    same_seed: bool = False,
    timeout: float | None = None,
    echo: Callable[[str], None] = print,
) -> Search:
    """Run (or, with `base.resume`, continue) a search of `trials` finished trials into base.output.

    Raises:
        UserError: bad folder or storage, or the first trial's input was refused (the data).
        Interrupted: Ctrl-C / SIGTERM; the trial running is failed and re-run by `--resume`.
    """
    import optuna
    from optuna.trial import TrialState

    from encoderkit.reporting.search import write_search_report
    from encoderkit.training.run import train

    assert base.output is not None
    folder = Path(base.output)
    _prepare_folder(folder, base.resume, base.overwrite, storage)
    folder.mkdir(parents=True, exist_ok=True)
    metric, direction = metric_of(base)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trials' own lines say what happens
    try:
        store = optuna.storages.RDBStorage(storage or f"sqlite:///{folder.resolve() / 'study.db'}")
        study = optuna.create_study(
            storage=store,
            study_name=STUDY,
            direction=direction,
            sampler=optuna.samplers.TPESampler(seed=base.seed),
            pruner=_pruner(pruner),
            load_if_exists=True,
        )
    except Exception as exc:  # a bad URL, an unreachable database: the library's message, one line
        raise UserError(f"--storage: cannot open the study ({_first_line(exc)})") from None
    if study.direction.name.lower() != direction:
        raise UserError(
            f"{folder}: the stored study {study.direction.name.lower()}s; this one would {direction}"
        )
    _requeue_stale(study, store, folder, echo)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    first_error: list[UserError] = []

    def objective(trial: Any) -> float:
        values = {p.name: p.suggest(trial) for p in space}
        run_dir = folder / "trials" / f"{trial.number:03d}"
        trial.set_user_attr("folder", str(run_dir))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        seed = base.seed if same_seed else base.seed + trial.number
        trial.set_user_attr("seed", seed)
        config = build_config(
            {},
            {
                **base.to_dict(),
                **values,
                "output": str(run_dir),
                "seed": seed,
                "resume": False,
                "overwrite": True,
            },
        )
        echo(f"== trial {trial.number}: {', '.join(f'{k} {v}' for k, v in values.items())} -> {run_dir}")
        pruned: list[int] = []

        def judge(step: int, value: float) -> bool:
            faults.kill_point("trial", trial.number)
            trial.report(value, step)
            if trial.should_prune():
                pruned.append(step)
                return True
            return False

        try:
            result = train(config, echo=echo, judge=judge)
        except UserError as exc:
            if not any(t.state in finished for t in study.get_trials(deepcopy=False)):
                first_error.append(exc)  # before any trial finished: most likely the data; stop
                study.stop()
            echo(f"== trial {trial.number} failed: {exc}")
            raise
        except BaseException:
            trial.set_user_attr("interrupted", True)  # `--resume` runs these parameters again
            raise
        if pruned:
            echo(f"== trial {trial.number} pruned at step {pruned[0]}")
            raise optuna.TrialPruned()
        value = float(result.metrics[metric])
        echo(f"== trial {trial.number}: {metric} {value:.4f}")
        return value

    done = sum(t.state in finished for t in study.get_trials(deepcopy=False))
    if done < trials:
        study.optimize(
            objective,
            n_trials=trials - done,
            timeout=timeout,
            catch=(UserError,),
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)],
        )
    if first_error:
        raise first_error[0]
    return _finish(study, base, folder, metric, write_search_report)


def _finish(
    study: Any, base: TrainConfig, folder: Path, metric: str, write_report: Callable[..., Path]
) -> Search:
    from optuna.trial import TrialState

    all_trials = study.get_trials(deepcopy=False)
    counts = {
        s.name: sum(t.state == s for t in all_trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(f"{folder}: no trial finished ({counts['PRUNED']} pruned, {counts['FAIL']} failed)")
    best = study.best_trial
    _write_best(best, base, folder)
    rows = [trial_row(t) for t in all_trials]
    write_json(
        folder / "trials.json", {"metric": metric, "direction": study.direction.name.lower(), "trials": rows}
    )
    report = write_report(folder, study, rows, metric)
    return Search(folder, metric, best.number, float(best.value), counts, report)


def trial_row(trial: Any) -> dict[str, Any]:
    """One trial as trials.json and the report's table list it."""
    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else None
    )
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        **trial.params,
        "last_step": trial.last_step,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "folder": Path(trial.user_attrs.get("folder", "")).name,
    }


def _write_best(best: Any, base: TrainConfig, folder: Path) -> None:
    """DIR/best.yaml: the best trial's resolved config (its config.yaml), writing to DIR/best when
    re-run; the search's config with the trial's parameters and seed when the trial ran on
    another machine of a shared study (its folder is there)."""
    saved = Path(best.user_attrs.get("folder", "")) / "config.yaml"
    if saved.is_file():
        values = yaml.safe_load(saved.read_text(encoding="utf-8"))
    else:
        values = {**base.to_dict(), **best.params, "seed": best.user_attrs.get("seed", base.seed)}
    values.update(output=str(folder / "best"), resume=False, overwrite=False)
    write_atomic(folder / "best.yaml", yaml.safe_dump(values, sort_keys=False).encode("utf-8"))


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        # Two finished trials before any judging: one bad first trial must not set the bar.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def _requeue_stale(study: Any, store: Any, folder: Path, echo: Callable[[str], None]) -> None:
    """A trial left RUNNING by a process of this machine that is gone (kill -9), or one a signal
    interrupted: failed, its folder removed, and its parameters queued to run again."""
    from optuna.trial import TrialState

    host, study_id = socket.gethostname(), store.get_study_id_from_name(STUDY)
    requeued = list(study.user_attrs.get("requeued", []))  # on the study: a finished trial is read-only
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        attrs = trial.user_attrs
        if trial.number in requeued:
            continue
        here = attrs.get("host") == host
        stale = trial.state == TrialState.RUNNING and here and not _alive(attrs.get("pid"))
        if not (stale or attrs.get("interrupted")):
            continue
        if trial.state == TrialState.RUNNING:
            trial_id = store.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            store.set_trial_state_values(trial_id, state=TrialState.FAIL)
        requeued.append(trial.number)
        study.set_user_attr("requeued", requeued)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        if attrs.get("folder") and Path(attrs["folder"]).is_relative_to(folder):
            shutil.rmtree(attrs["folder"], ignore_errors=True)
        echo(f"== trial {trial.number} was interrupted: its parameters run again")


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()  # this process is a new one: an old trial of this pid is gone


def _prepare_folder(folder: Path, resume: bool, overwrite: bool, storage: str | None) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: --output exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (resume or overwrite):
        raise UserError(f"{folder}: --output already holds a search (try --resume or --overwrite)")
    if overwrite:
        if storage:
            raise UserError("--overwrite with --storage: delete the study in its storage instead")
        shutil.rmtree(folder, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
