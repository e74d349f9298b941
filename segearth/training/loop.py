"""The training run, on one CPU or many GPUs and nodes through accelerate.

The authors' recipe: the Swin encoder frozen but left in train mode (its drop-path stays
active, as in their code), everything else trained; AdamW, a warmed-up schedule, the effective
batch reached by gradient accumulation whatever the process count; the mask loss on every
decoder prediction, plus the answer cross-entropy for reasoning data. Distribution (DDP,
DeepSpeed ZeRO-2), mixed precision and the process count come from ``accelerate launch`` and
its config file, not from this code.

Resuming: `accelerate.Accelerator.save_state` keeps model, optimiser, RNG, the scheduler and
the step counter (`Progress`); the batch stream restarts at the same position (see
`StepBatchSampler`), so a resumed run continues the step count and the learning-rate schedule.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import torch

from .. import checkpoints
from ..data.registry import load_dataset
from ..errors import InputError
from ..losses import training_loss
from ..model import SegEarthR1
from ..tokenization import prompt_segments
from .config import TrainConfig
from .data import SegmentationDataset, StepBatchSampler, collate
from .initialise import initialise, rebuild, write_run_files
from .logbook import MetricsLog, plot_metrics

STATE_DIR = "state"
FINAL_DIR = "final"
METRICS_FILE = "metrics.csv"
PLOT_FILE = "metrics.png"
CONFIG_FILE = "train_config.json"


class Progress:
    """The optimiser-step counter, saved and restored with the accelerate state."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def find_resume_state(output_dir: Path, resume: str | None) -> Path | None:
    """``latest`` -> the newest saved state of this run (None if there is none yet); a path ->
    that state folder."""
    if resume is None:
        return None
    if resume == "latest":
        states = sorted((output_dir / STATE_DIR).glob("step-*"))
        return states[-1] if states else None
    path = Path(resume)
    if not path.is_dir():
        raise InputError(f"Cannot resume from {path}: not a folder. Give a {STATE_DIR}/step-N folder or 'latest'.")
    return path


def train(config: TrainConfig, resume: str | None = None) -> Path:
    """Run (or continue) training; returns the folder of the final model checkpoint."""
    from tqdm.auto import tqdm

    accelerator, accumulation = _accelerator(config)
    run_dir = Path(config.output_dir)
    _prepare_data(config, accelerator)
    train_samples = load_dataset(config.dataset, config.data_root, config.train_split, config.all_questions)
    val_samples = load_dataset(config.dataset, config.data_root, config.val_split)[: config.val_limit]
    resume_state = find_resume_state(run_dir, resume)
    model, tokenizer = _model_and_tokenizer(config, accelerator, run_dir, resume_state, train_samples)
    parameters, optimizer, scheduler = _optimisation(config, model)
    _configure_deepspeed(accelerator, config)
    model, optimizer = accelerator.prepare(model, optimizer)
    progress = Progress()
    accelerator.register_for_checkpointing(scheduler, progress)
    if resume_state is not None:
        accelerator.load_state(str(resume_state))
        accelerator.print(f"Resumed from {resume_state} at step {progress.step}.")

    unwrapped = accelerator.unwrap_model(model)
    segments = prompt_segments(tokenizer, config.task)
    dataset = SegmentationDataset(train_samples, tokenizer, unwrapped.config.image_size, config.answer_loss,
                                 config.answer_empty_targets)
    sampler = StepBatchSampler(len(dataset), config.per_device_batch_size, accelerator.num_processes,
                               accelerator.process_index, config.seed, start=progress.step * accumulation)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.num_workers,
                                         persistent_workers=config.num_workers > 0)
    log = MetricsLog(run_dir / METRICS_FILE) if accelerator.is_main_process else None
    bar = tqdm(total=config.max_steps, initial=progress.step, desc="train", unit="step",
               disable=not accelerator.is_local_main_process)
    input_dtype = next(unwrapped.encoder.parameters()).dtype  # bf16 under DeepSpeed, else fp32
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=accelerator.device))
    micro_batches, started, grad_norm = 0, time.perf_counter(), None
    validation: dict[str, float] = {}

    model.train()
    batches = iter(loader)
    while progress.step < config.max_steps:
        batch = next(batches).to(accelerator.device, input_dtype)
        with accelerator.accumulate(model):
            result = model(batch.pixel_values, segments, batch.prompts)
            losses = training_loss(result, batch.targets, config.loss, config.answer_loss)
            accelerator.backward(losses["loss"])
            if accelerator.sync_gradients and config.max_grad_norm:
                grad_norm = accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        for name, value in losses.items():
            sums[name] += value.detach().float()
        micro_batches += 1
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        progress.step += 1
        step, last = progress.step, progress.step == config.max_steps
        bar.update(1)
        if last or step % config.log_every == 0:
            row = {name: accelerator.reduce(total / micro_batches, "mean").item() for name, total in sums.items()}
            row.update(step=step, epoch=round(sampler.epoch_of(step * accumulation), 4),
                       lr=scheduler.get_last_lr()[0], seconds=round(time.perf_counter() - started, 2))
            if grad_norm is not None:
                row["grad_norm"] = float(grad_norm)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            if log is not None:
                log.write(row)
            sums.clear()
            micro_batches = 0
        if last or (config.eval_every and step % config.eval_every == 0):
            validation = {"step": step, **validate(accelerator, model, tokenizer, val_samples)}
            if log is not None and "gIoU" in validation:
                log.write({"step": step, "val_gIoU": validation["gIoU"], "val_cIoU": validation["cIoU"]})
                bar.write(f"step {step}: validation gIoU {validation['gIoU']:.4f} cIoU {validation['cIoU']:.4f}")
        if last or (config.save_every and step % config.save_every == 0):
            accelerator.save_state(str(run_dir / STATE_DIR / f"step-{step:06d}"))
            folder = run_dir / (FINAL_DIR if last else f"checkpoint-{step:06d}")
            save_model(accelerator, model, tokenizer, folder, config, step, validation)
    bar.close()
    if accelerator.is_main_process:
        plot_metrics(run_dir / METRICS_FILE, run_dir / PLOT_FILE)
    accelerator.wait_for_everyone()
    print(f"process {accelerator.process_index + 1}/{accelerator.num_processes} finished at step "
          f"{progress.step}; final model: {run_dir / FINAL_DIR}", flush=True)
    accelerator.end_training()
    return run_dir / FINAL_DIR


def _accelerator(config: TrainConfig):
    """(accelerator, gradient accumulation steps for the launched process count)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, GradientAccumulationPlugin, set_seed

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        # The batch stream is endless, so accumulation never has to end with an epoch.
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=1, sync_with_dataloader=False),
        # Without an answer loss the LM head gets no gradient.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=not config.answer_loss)],
    )
    accumulation = config.accumulation_steps(accelerator.num_processes)  # known once launched
    accelerator.gradient_accumulation_steps = accumulation
    set_seed(config.seed)
    return accelerator, accumulation


def _model_and_tokenizer(config: TrainConfig, accelerator, run_dir: Path, resume_state: Path | None,
                         train_samples) -> tuple[SegEarthR1, object]:
    """A fresh start (whose tokenizer and architecture are written into the run folder), or the
    run's own model to resume; encoder frozen unless ``train_encoder``, gradient checkpointing as configured."""
    if resume_state is not None:
        model, tokenizer = rebuild(run_dir)
    else:
        model, tokenizer = initialise(config, train_samples)
        if accelerator.is_main_process:
            write_run_files(run_dir, model, tokenizer)
            (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    model.encoder.requires_grad_(config.train_encoder)  # frozen by default; `model.train()` keeps its drop-path on
    if config.gradient_checkpointing:
        model.llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def _optimisation(config: TrainConfig, model: SegEarthR1):
    """(trainable parameters, AdamW, schedule). The schedule is stepped once per optimiser step
    here; handing it to `accelerator.prepare` would step it once per process."""
    from transformers import get_scheduler

    parameters = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for all parameters; on CPU PyTorch otherwise updates them one at a time
    # (18 ms a step for the demo model's 288 tensors, 5 ms fused).
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.adam_betas,
                                  eps=config.adam_epsilon, weight_decay=config.weight_decay, fused=True)
    scheduler = get_scheduler(config.lr_schedule, optimizer, num_warmup_steps=config.warmup_steps,
                              num_training_steps=config.max_steps)
    return parameters, optimizer, scheduler


def validate(accelerator, model, tokenizer, samples) -> dict[str, float]:
    """gIoU/cIoU on the padded canvas (the authors' frame), through the same `Predictor` and
    `segearth.evaluation.evaluate` that score released checkpoints; processes share the items."""
    from ..evaluation import evaluate
    from ..predictor import Predictor

    if not samples:
        return {}
    unwrapped = accelerator.unwrap_model(model)
    dtype = next(unwrapped.parameters()).dtype
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")  # never casts
    predictor = Predictor(unwrapped, tokenizer, precision=precision, device=str(accelerator.device))
    result = evaluate(predictor, samples, progress=accelerator.is_local_main_process,
                      accelerator=accelerator if accelerator.num_processes > 1 else None)
    unwrapped.train()
    return result.summary()["canvas"]


def save_model(accelerator, model, tokenizer, folder: Path, config: TrainConfig, step: int,
               validation: dict[str, float]) -> None:
    """Our checkpoint layout (what `segearth.checkpoints.load` and the app read), with the run's
    provenance in config.json under ``training``."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        extra = {"training": {"step": step, "validation": validation, "config": config.to_dict()}}
        checkpoints.save(accelerator.unwrap_model(model), folder, tokenizer, extra=extra)
    accelerator.wait_for_everyone()


def _prepare_data(config: TrainConfig, accelerator) -> None:
    """Generate the synthetic dataset the config asks for, once, on the main process."""
    if config.synthetic is None:
        return
    from ..data.synthetic import generate_dataset

    root = Path(config.data_root)
    marker = root / "synthetic.json"
    if accelerator.is_main_process:
        if marker.is_file():
            written = json.loads(marker.read_text())
            differ = {k: (written.get(k), v) for k, v in config.synthetic.items() if written.get(k) != v}
            if differ:
                raise InputError(f"{root} holds a synthetic dataset made with other settings {differ}; "
                                 "delete it or point data_root elsewhere.")
        else:
            generate_dataset(root, **config.synthetic)
    accelerator.wait_for_everyone()


def _configure_deepspeed(accelerator, config: TrainConfig) -> None:
    """DeepSpeed reads batch size and clipping from its own config; ours are the truth."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.per_device_batch_size
    plugin.deepspeed_config["gradient_clipping"] = config.max_grad_norm or 0.0
