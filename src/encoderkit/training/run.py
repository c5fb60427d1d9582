"""`encoderkit.train(config)`: data -> model -> loop -> best model, metrics, report.

Everything that can be wrong with the user's input is checked before the run folder is touched.
Under `torchrun` / `accelerate launch` every process runs this; only the main one (rank 0) holds
the lock and writes the run folder, log, best weights, model, report and metrics. Checkpoints are
saved by all (each its RNG state), published by the main one between barriers.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from accelerate import Accelerator
from accelerate.utils import TorchDynamoPlugin, gather_object, set_seed
from transformers import get_linear_schedule_with_warmup

from encoderkit import packing
from encoderkit.atomic import write_json
from encoderkit.config import TrainConfig, default_lr, save_yaml
from encoderkit.errors import UserError
from encoderkit.features.batches import length_grouped_batches, sorted_batches, token_budget_batches
from encoderkit.features.collate import Collator, device_collator
from encoderkit.features.forward import ForwardPass, forward_all, merge_shards
from encoderkit.model_folder.save import save_model
from encoderkit.modeling import (
    build_model,
    is_peft,
    load_config,
    load_tokenizer,
    lora_settings,
    lora_warning,
    model_max_length,
    parameter_counts,
)
from encoderkit.tasks import Evaluation, PreparedData, Task, get_task
from encoderkit.training import checkpoints, failures, faults, run_folder, signals, tracking
from encoderkit.training.callbacks import (
    Callback,
    Checkpointer,
    Evaluator,
    LossLogger,
    ProgressBar,
    RunLog,
)
from encoderkit.training.distributed import (
    Launch,
    check_data,
    check_launch,
    check_world,
    launch_from_env,
)
from encoderkit.training.fingerprint import fingerprint
from encoderkit.training.lock import RunFolderLock
from encoderkit.training.loop import fit
from encoderkit.training.objective import TrainingModel
from encoderkit.training.optim import adamw, mixed_precision
from encoderkit.training.outputs import final_metrics, metadata, model_card, write_run_report
from encoderkit.training.prepare import prepare_cached
from encoderkit.training.sharding import shard_eval_batches
from encoderkit.training.state import (
    AUTO_BATCH_RULE,
    AUTO_RULE,
    LoopState,
    Plan,
    auto_batch_size,
    auto_epochs,
    make_plan,
)
from encoderkit.training.watch import LearningWatch, steps_warning
from encoderkit.version import __version__

LOWER_IS_BETTER = ("loss", "mse", "perplexity")
Judge = Callable[[int, float], bool]  # (step, eval metric) -> stop now


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    report: Path
    main_process: bool = True  # False on the other processes of a distributed run: they print nothing


def train(config: TrainConfig, echo: Any = print, judge: Judge | None = None) -> RunResult:
    """Fine-tune `config.model` on `config.train` and write the run folder `config.output`.

    `judge(step, value)` is called after each evaluation with the `metric_for_best` value; True
    stops the run there, as early stopping does (`encoderkit tune`'s pruner).

    Raises:
        UserError: bad data, model name, config or run folder (nothing is left behind); or, once
            training started, a diverged loss or a failed write (the newest checkpoint is kept).
        Interrupted: SIGINT/SIGTERM (a checkpoint is saved when it came during the steps).
    """
    assert config.output is not None
    launch = launch_from_env()
    if config.batch_tokens is None and config.batch_size != "auto":  # (auto makes one that divides)
        check_launch(int(config.batch_size), config.grad_accum, launch.world)  # on every process: all exit 2
    if not launch.is_main:
        # The main process owns the folder; the others only read checkpoints from it.
        with signals.sigterm_raises():
            return _train(config, None, _silent, launch, judge)
    # One writer per folder. SIGTERM unwinds like Ctrl-C, so the lock and cleanup still run.
    with signals.sigterm_raises(), RunFolderLock(Path(config.output)) as lock:
        return _train(config, lock, echo, launch, judge)


def epoch_batches(config: TrainConfig, lengths: list[int], epoch: int) -> list[list[int]]:
    """The micro-batches of one epoch: a token budget each (`--batch-tokens`), or a fixed number
    of examples (`--batch-size / --grad-accum`), grouped by length unless told not to."""
    if config.batch_tokens is not None:
        return token_budget_batches(lengths, config.batch_tokens, config.seed, epoch)
    micro = int(config.batch_size) // config.grad_accum
    return length_grouped_batches(lengths, micro, config.seed, epoch, config.group_by_length)


def check_budget(batch_tokens: int | None, lengths: list[int]) -> None:
    """A token budget must hold the longest training example (else that batch would exceed it)."""
    if batch_tokens is not None and batch_tokens < max(lengths):
        raise UserError(
            f"field 'batch_tokens': {batch_tokens} is below the longest training example "
            f"({max(lengths)} tokens); raise it or lower --max-length"
        )


def _silent(*args: Any, **kwargs: Any) -> None:
    """`echo` of the non-main processes: one process speaks for the run."""


def _train(
    config: TrainConfig, lock: RunFolderLock | None, echo: Any, launch: Launch, judge: Judge | None
) -> RunResult:
    task = get_task(config.task)
    if lock is None:
        run_dir = Path(str(config.output))
    else:
        run_dir = run_folder.claim(lock.run_dir, config.resume, config.overwrite, lock.existed)
    model_config = load_config(config.model)
    tokenizer = task.tokenizer_for(config, load_tokenizer(config.model))
    # Tokenized data comes from the on-disk cache when this data, tokenizer and settings were seen
    # before; otherwise the first process to get there tokenizes and stores it, the others wait.
    data = prepare_cached(task, config, tokenizer, model_max_length(model_config, tokenizer), echo)
    check_data(len(data.train), launch.world)
    check_budget(config.batch_tokens, data.train.lengths)
    if config.batch_size == "auto":
        size = auto_batch_size(len(data.train), config.grad_accum * launch.world)
        config = config.replace(batch_size=size)
        if config.batch_tokens is None:  # (a token budget replaces the batch size)
            echo(f"batch size: auto -> {size} ({len(data.train)} examples; {AUTO_BATCH_RULE})")
    epochs = config.epochs
    if epochs == "auto":
        per_epoch = math.ceil(len(epoch_batches(config, data.train.lengths, 0)) / config.grad_accum)
        epochs = auto_epochs(len(data.train), per_epoch)
        echo(
            f"epochs: auto -> {epochs} ({len(data.train)} examples, {per_epoch} steps an epoch; {AUTO_RULE})"
        )
    metric = config.metric_for_best or task.default_metric
    lr = config.lr if config.lr is not None else default_lr(config.strategy)
    config = config.replace(max_length=data.max_length, metric_for_best=metric, epochs=epochs, lr=lr)
    if data.eval is None and config.early_stopping_patience:
        raise UserError("field 'early_stopping_patience': needs --eval data")
    for key, value in task.model_config(data).items():
        setattr(model_config, key, value)
    decoding = task.decoding(config, data)  # what evaluation decodes with, and the saved model too

    current = fingerprint(config)
    if config.resume and launch.is_main:
        checkpoints.check_resume(run_dir, current, config.resume_force, echo)

    run = _Run.create(config, task, data, tokenizer, model_config, run_dir, echo)
    run.fingerprint, run.decoding, run.judge = current, decoding, judge
    trainable, total = run.counts
    if launch.is_main:
        need = run_folder.space_needed(total, trainable, config.keep_checkpoints)
        run_folder.prepare(run_dir, config.overwrite, need)
    run.accelerator.wait_for_everyone()  # the folder is ready (and --overwrite emptied it) for all
    run.start_tracking()
    try:
        with failures.explained(run_dir, config.lr):
            if config.resume:
                run.restore()
            if launch.is_main:
                save_yaml(config, run_dir / "config.yaml")
            started = time.perf_counter()
            run.run_loop()
            return run.finish(time.perf_counter() - started)
    finally:
        run.accelerator.end_training()  # closes the tracker runs (none without --report-to)


@dataclass
class _Run:
    """One training run's objects, and the side effects the callbacks trigger on them."""

    config: TrainConfig
    task: Task
    data: PreparedData
    tokenizer: Any
    run_dir: Path
    accelerator: Accelerator
    model: torch.nn.Module  # the TrainingModel (model + loss) as Accelerate prepared it
    optimizer: torch.optim.Optimizer
    scheduler: Any
    plan: Plan
    echo: Any
    counts: tuple[int, int]  # (trainable, total) parameters
    packed: bool  # training batches are packed sequences (packing.py), not padded
    position_offset: int  # packed batches: where the model's position ids start (RoBERTa: pad + 1)
    state: LoopState = field(default_factory=LoopState)
    latest: Evaluation | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # stored in each checkpoint
    decoding: dict[str, Any] = field(default_factory=dict)  # the task's decoding settings
    judge: Judge | None = None  # train(judge=...): may stop the run after an evaluation

    @classmethod
    def create(
        cls, config: TrainConfig, task: Task, data: PreparedData, tokenizer: Any, model_config: Any,
        run_dir: Path, echo: Any,
    ) -> _Run:  # fmt: skip
        launch = launch_from_env()
        # torchrun on a CPU-only machine: Accelerate takes the gloo (MULTI_CPU) path only when told
        # `cpu=True`; a plain 1-process run keeps Accelerate's own device choice (CUDA, MPS, CPU).
        cpu = launch.world > 1 and not torch.cuda.is_available()
        precision = mixed_precision(config.precision)
        compiled = config.compile == "on" or (config.compile == "auto" and torch.cuda.is_available())
        # Shapes vary from batch to batch: compiled once with symbolic sizes, not once per shape.
        dynamo = TorchDynamoPlugin(backend="inductor", dynamic=True) if compiled else None
        trackers = tracking.build_trackers(config, run_dir) if launch.is_main else []
        accelerator = Accelerator(
            mixed_precision=precision, cpu=cpu, dynamo_plugin=dynamo, log_with=trackers or None
        )
        check_world(accelerator.num_processes, launch.world)
        set_seed(config.seed)
        lora = lora_settings(config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
        model = build_model(task.model_class, config.model, model_config, config.strategy, lora)
        trainable, total = parameter_counts(model)
        echo(
            f"{config.model} ({config.strategy}): {trainable:,} of {total:,} parameters train "
            f"({100 * trainable / total:.2f}%)"
        )
        packed, how = packing.choose_unpad(config.unpad, model, accelerator.device, precision)
        if packed:
            packing.enable(model)
        echo(f"training batches: {how}" + ("; step compiled (torch.compile)" if compiled else ""))
        plan = make_plan(
            len(data.train), int(config.batch_size), config.grad_accum, config.epochs,
            config.max_steps, config.logging_steps, config.eval_steps, config.save_steps,
            batches_per_epoch=len(epoch_batches(config, data.train.lengths, 0)),
        )  # fmt: skip
        assert config.lr is not None  # resolved by train()
        optimizer = adamw(model, config.lr, config.weight_decay)
        warmup = round(config.warmup_ratio * plan.total_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, plan.total_steps)
        training, optimizer = accelerator.prepare(TrainingModel(model, task), optimizer)
        run = cls(
            config, task, data, tokenizer, run_dir, accelerator, training, optimizer, scheduler, plan, echo,
            (trainable, total), packed, packing.position_offset(model),
        )  # fmt: skip
        # The scheduler is stepped by hand (once per optimizer step at any world size) and saved
        # with the loop state, instead of being wrapped by `prepare`.
        accelerator.register_for_checkpointing(scheduler, run.state)
        return run

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def log(self) -> RunLog:
        return RunLog(self.run_dir / "log.jsonl", self.state, write=self.is_main, sink=self.track)

    def start_tracking(self) -> None:
        """Start the --report-to trackers' runs, the resolved config as their hyperparameters.

        Raises:
            UserError: a tracker could not start (an unreachable MLflow server, say).
        """
        if not self.accelerator.log_with:
            return
        # On --resume the runs hold their hyperparameters already (MLflow refuses to change one,
        # which a --resume-force run may have done).
        hyperparameters = None if self.config.resume else tracking.hyperparameters(self.config)
        try:
            self.accelerator.init_trackers(tracking.PROJECT, config=hyperparameters)
        except Exception as exc:  # whatever the tracker's library raises: one line, not its traceback
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"field 'report_to': {self.config.report_to} could not start: {reason}") from None
        tracking.save_ids(self.accelerator.trackers, self.run_dir)

    def track(self, entry: dict[str, Any]) -> None:
        """One log.jsonl entry's numbers to the trackers, at its step."""
        if self.accelerator.trackers:
            step, values = tracking.scalars(entry)
            if values:
                self.accelerator.log(values, step=step)

    @property
    def best_path(self) -> Path:
        assert self.state.best_step is not None
        return checkpoints.best_weights(self.run_dir, self.state.best_step)

    @property
    def pad_left(self) -> bool:
        return bool(self.tokenizer.padding_side == "left")

    @property
    def network(self) -> Any:
        """The model itself (transformers, or PEFT around it): no DDP, compile or loss wrapper."""
        training = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        return training.model

    def collator(self, evaluation: bool = False) -> Collator:
        cuda = self.accelerator.device.type == "cuda"
        pad_id, offset = self.tokenizer.pad_token_id, self.position_offset
        return device_collator(pad_id, self.pad_left, cuda, self.packed, offset, evaluation)

    def make_batch(self, indices: list[int], width: int | None) -> dict[str, Any]:
        """A training batch: packed, or padded to the longest feature (or `width`)."""
        features, picked = self.task.training_features(self.data, indices, self.state.epoch, self.config.seed)
        batch = self.collator()(features, picked, width)
        if self.accelerator.device.type == "cuda":
            # Pinned host memory: the copy to the GPU runs without blocking the host.
            batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch

    def restore(self) -> None:
        """Load the newest checkpoint and cut log.jsonl back (checkpoints.restore)."""
        acc, main = self.accelerator, self.is_main
        checkpoint = checkpoints.restore(
            self.run_dir, acc.load_state, acc.num_processes, acc.wait_for_everyone,
            truncate_log=(lambda: self.log.truncate(self.state.log_lines)) if main else None,
            reset=(lambda: self.log.truncate(0)) if main else None, echo=self.echo,
        )  # fmt: skip
        if checkpoint is not None:
            self.echo(
                f"resuming from {checkpoint} (step {self.state.global_step} of {self.plan.total_steps})"
            )

    def evaluate(self) -> dict[str, float]:
        """Metrics on the eval set; every process gets the same, so all take the same decisions."""
        assert self.data.eval is not None
        acc, data = self.accelerator, self.data.eval
        if acc.num_processes == 1:
            outputs = forward_all(
                self.network, data, self.config.eval_batch_size, acc.device, self.collator(evaluation=True),
                acc.autocast, self.task.reduce_outputs(self.data),
            )  # fmt: skip
        else:
            # Each process forwards a disjoint share of the batches; the shards (feature indices
            # and outputs) are gathered on all, so metrics and QA post-processing see each feature
            # exactly once and run on the whole set.
            batches = sorted_batches(data.lengths, self.config.eval_batch_size)
            mine = shard_eval_batches(batches, acc.process_index, acc.num_processes)
            # The DDP wrapper is not needed without gradients (and would sync buffers).
            collator = self.collator(evaluation=True)
            reduce = self.task.reduce_outputs(self.data)
            shard = ForwardPass(self.network, acc.device, collator, acc.autocast, reduce).shard(data, mine)
            outputs = merge_shards(gather_object([shard]), self.pad_left)
        faults.kill_point("eval", self.state.global_step)
        self.latest = self.task.evaluate(outputs, self.data, self.decoding)
        return self.latest.metrics

    def save_best(self) -> None:
        assert self.state.best_step is not None
        if self.is_main:  # the weights are the same on every process
            # safetensors save_model (not save_file) keeps one copy of tied weights (an MLM decoder shares
            # the input embeddings) and load_model ties them back.
            network, step = self.network, self.state.best_step

            def write(path: Path) -> None:
                safetensors.torch.save_model(network, str(path))

            checkpoints.save_best(self.run_dir, step, write)
        self.accelerator.wait_for_everyone()  # others may read them (finish) only once written

    def save_checkpoint(self, step: int) -> None:
        meta = {
            "best_step": self.state.best_step,
            "world_size": self.accelerator.num_processes,
            **self.fingerprint,
        }
        acc = self.accelerator
        checkpoints.save_checkpoint(
            self.run_dir, step, lambda folder: acc.save_state(str(folder)), meta,
            self.config.keep_checkpoints, main=self.is_main, barrier=acc.wait_for_everyone,
        )  # fmt: skip

    def callbacks(self) -> list[Callback]:
        log, plan, config = self.log, self.plan, self.config
        assert config.lr is not None and not isinstance(config.epochs, str)
        examples = len(self.data.train)
        upfront = [steps_warning(plan.total_steps, examples, int(config.batch_size), config.epochs)]
        if config.strategy == "lora":
            upfront.append(lora_warning(config.lora_r, config.lora_alpha, config.lr))
        callbacks: list[Callback] = [LossLogger(log, plan)]
        judged_by = None
        if self.data.eval is not None:
            metric = str(config.metric_for_best)
            greater = not metric.endswith(LOWER_IS_BETTER)
            judged_by = (metric, greater)
            patience = config.early_stopping_patience
            evaluator = Evaluator(
                self.evaluate, self.save_best, log, plan, metric, greater, patience, self.echo,
                at_start=config.eval_at_start, judge=self.judge,
            )  # fmt: skip
            callbacks.append(evaluator)
        warmup = round(config.warmup_ratio * plan.total_steps)
        # After the Evaluator: the learning check at the end reads the final evaluation too.
        watch = LearningWatch(log, plan, [w for w in upfront if w], self.echo, judged_by, warmup)
        return [
            *callbacks,
            watch,
            Checkpointer(self.save_checkpoint, plan),
            ProgressBar(plan, enabled=self.is_main, echo=self.echo),
        ]

    def run_loop(self) -> None:
        c = self.config
        fit(
            self.accelerator, self.model, self.optimizer, self.scheduler, self.data.train, self.plan,
            self.state, self.callbacks(), grad_accum=c.grad_accum, max_grad_norm=c.max_grad_norm,
            make_batch=self.make_batch, epoch_batches=lambda e: epoch_batches(c, self.data.train.lengths, e),
            loss_units=lambda indices: self.task.loss_units(self.data, indices, self.state.epoch, c.seed),
        )  # fmt: skip

    def finish(self, wall_s: float) -> RunResult:
        """Select the best weights, save model and report, then mark the run finished."""
        unwrapped = self.network
        final: Evaluation | None = None
        if self.data.eval is not None:
            # `latest` is None when a run resumed after its last evaluation: evaluate the best again.
            if self.latest is None or self.state.best_step != self.state.last_eval_step:
                safetensors.torch.load_model(unwrapped, str(self.best_path))
                self.evaluate()  # on every process: the evaluation is collective
            final = self.latest
        config, data, task = self.config, self.data, self.task
        metrics = final_metrics(final, self.state, *self.counts, wall_s)
        metrics["unpadded"] = self.packed  # which path the figures above were measured on
        if not self.is_main:
            self.accelerator.wait_for_everyone()  # the main process may now remove the checkpoints
            return RunResult(self.run_dir, metrics, self.run_dir / "report.html", main_process=False)
        card = model_card(config, data, task, metrics, __version__)
        settings = {**self.decoding, **task.tuned(self.decoding, final)}
        if is_peft(unwrapped) and config.merge:
            unwrapped = unwrapped.merge_and_unload()  # plain HF weights: loadable without PEFT
        save_model(
            unwrapped, self.tokenizer, self.run_dir / "model", metadata(config, data, task, settings), card
        )
        report = write_run_report(self.run_dir, config, data, task, metrics, final)
        faults.kill_point("finish")
        write_json(self.run_dir / "metrics.json", metrics)  # marks the run finished
        self.track({"step": self.state.global_step, **{f"final_{k}": v for k, v in metrics.items()}})
        # Only then: a crash before metrics.json must leave the checkpoints to resume from; and
        # only once every process is past reading the best weights.
        self.accelerator.wait_for_everyone()
        shutil.rmtree(self.run_dir / run_folder.CHECKPOINTS, ignore_errors=True)
        return RunResult(self.run_dir, metrics, report)
