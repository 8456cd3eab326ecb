"""Turn a trial of a study into a self-contained, checked folder: what ``nas/export.py`` runs.

One export folder holds::

    architecture.yaml         loads with TransformerConfig.from_yaml; plus tasks, scores, search
                              settings, the files written and their parity checks, retrain commands
    tokenizer.json            the run's tokenizer (``tokenizers``), with the tasks' [CLS]/[SEP]
                              layout as post-processor; tokenizer_config.json beside it, so
                              ``AutoTokenizer.from_pretrained(folder)`` loads it
    backbone.safetensors      the pretrained language model (backbone + LM head)
    tasks/<task>.safetensors  per task: the fine-tuned backbone + head (LoRA merged into it)
    tasks/<task>.adapter.safetensors  finetune.method=lora/adapter: the adapter + head alone
    onnx/<task>.onnx          per task: the graph, dynamic batch and sequence axes
    onnx/<task>/encoder.onnx  an encoder_decoder's generation/code task: the encoder graph and
    onnx/<task>/decoder.onnx  the decoder-step graph (self-attention cache in and out)
    transformers/<name>/      where the variant maps: ``lm`` and the tasks whose head maps
    README.md                 the model card (``card.py``)

The safetensors files are the weights the search kept (``nas.study.kept_weights.KeepWeights``),
copied and loaded strictly; every other format (an ``ExportFormat`` of ``lightning_modules.export``)
is written, loaded back and compared with the PyTorch model on real inputs (the study's own
validation examples and held-out pretraining blocks) before the folder appears: it is written
next to its target and renamed into place.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from omegaconf import DictConfig

from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import with_task_template
from lightning_modules.export import (
    ADAPTATION_KEY,
    EXPORT_FORMAT,
    TOLERANCE,
    ExportError,
    ExportFormat,
    HFFormat,
    OnnxFormat,
    follow_umask,
    hf_tokenizer,
    load_safetensors,
    load_task_weights,
    read_metadata,
)
from lightning_modules.model import LanguageModel
from lightning_modules.suite import build_suite
from lightning_modules.tasks.base import make_loader
from nas.config.errors import ConfigError
from nas.exporting.card import model_card
from nas.exporting.hub import push_export
from nas.exporting.retrain import retrain_commands
from nas.exporting.selection import select_trials, trial_record
from nas.study.kept_weights import FORMAT, WEIGHTS_DIR, trial_weights_dir
from nas.study.lr_calibration import with_rates
from nas.study.storage import open_existing_study, recorded_run_config
from nas.trial.record import State

log = logging.getLogger("adaptnas")
COMPLETE = State.COMPLETE


@dataclass
class ExportResult:
    """One exported trial.

    Attributes:
        folder: The export folder.
        trial: The trial number.
        parity: Largest abs difference per checked file (``onnx/qa.onnx``, ``transformers/lm``).
        skipped: Formats not produced, with the reason (``transformers``: the knob).
        retrain: ``reproduce`` and ``longer`` commands.
    """

    folder: Path
    trial: int
    parity: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    retrain: dict[str, str] = field(default_factory=dict)
    hub_url: str | None = None


def _prepare_out(out: Path) -> Path:
    """A fresh temp folder beside ``out``; refuses to replace a folder that is not an export."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / "architecture.yaml").is_file()):
            raise ConfigError(
                f"out={out}: exists and is not an adaptnas export; pick another folder"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    follow_umask(tmp, folder=True)  # mkdtemp makes 0700: an export is there to be shared
    return tmp


def _finish_out(tmp: Path, out: Path) -> None:
    # Every writer's files follow the umask, whatever it does itself (transformers' save_pretrained
    # writes model.safetensors 0600): an export is there to be shared.
    for path in tmp.rglob("*"):
        follow_umask(path, folder=path.is_dir())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _batches(task, n: int = 8) -> list[dict[str, torch.Tensor]]:
    """Two real validation batches of different shapes (dynamic axes get exercised)."""
    loader = iter(make_loader(task.encoded("validation"), n, shuffle=False))
    first = next(loader)
    second = next(loader, None)
    out = [first]
    if second is not None:
        cut = max(2, len(second["input_ids"]) // 2)
        out.append({k: v[:cut] for k, v in second.items()})
    return out


def requested_formats(onnx: bool = True, transformers: bool = True) -> dict[str, Any]:
    """The formats beyond safetensors, in the order they are written: each an ``ExportFormat``,
    or the reason it is not written (``onnx=false``)."""
    return {
        "onnx": OnnxFormat() if onnx else "onnx=false",
        "transformers": HFFormat() if transformers else "transformers=false",
    }


@dataclass
class _Job:
    """One model for the formats: ``lm`` or a task, with its check inputs and writer options."""

    name: str
    model: torch.nn.Module
    batches: list[dict[str, torch.Tensor]]
    method: str | None = None  # the task's finetune.method (full, lora, adapter)
    options: dict[str, Any] = field(default_factory=dict)


def write_format(
    fmt: ExportFormat, jobs: list[_Job], folder: Path, result: ExportResult
) -> dict[str, Any]:
    """Write every job ``fmt`` takes into ``folder`` and check it; its ``files`` entries.

    Raises:
        ExportError: A copy differs from the PyTorch model by more than ``TOLERANCE``.
    """
    checked = fmt.checked_with or fmt.name
    entries: dict[str, Any] = {}
    for job in jobs:
        if problem := fmt.problem(job.model, job.method):
            result.skipped[f"{fmt.name}/{job.name}"] = problem
            log.info("%s/%s: not exported: %s", fmt.name, job.name, problem)
            continue
        t0 = time.perf_counter()
        path = fmt.write(job.model, folder, job.name, job.batches[0], **job.options)
        diff = fmt.parity(path, job.model, job.batches)
        rel = path.relative_to(folder).as_posix()
        log.info(
            "%s: %s vs PyTorch max abs diff %.2e (%.1fs)",
            rel,
            checked,
            diff,
            time.perf_counter() - t0,
        )
        result.parity[rel] = diff
        entries[job.name] = fmt.entry(path, folder, job.model)
        if diff > TOLERANCE:
            raise ExportError(f"{rel}: {checked} differs from PyTorch by {diff:.2e}")
    return entries


def read_kept_weights(weights: Path) -> dict[str, Any]:
    """``meta.json`` of a folder of kept weights (``nas.study.kept_weights.KeepWeights``)."""
    meta_path = weights / "meta.json"
    if not meta_path.is_file():
        raise ConfigError(f"{weights}: no meta.json, not a folder of kept weights")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def export_trial(
    weights: Path,
    out: Path,
    cache_dir: Path | None = None,
    onnx: bool = True,
    transformers: bool = True,
    search: dict[str, Any] | None = None,
) -> ExportResult:
    """Export the weights a search kept for one trial into ``out``, checking every format.

    Args:
        weights: ``<study>/weights/trial_<n>`` (written by ``nas.study.kept_weights.KeepWeights``).
        out: The export folder (replaced if it is an earlier export).
        cache_dir: Tokenizer cache for rebuilding the study's data.
        onnx: Write and check ONNX graphs.
        transformers: Write and check ``transformers`` models where the variant maps.
        search: Facts about the search for the model card (sampler, pruner, trials, storage).

    Returns:
        What was written and the parity figures.

    Raises:
        ExportError: A format does not reproduce the PyTorch model within ``TOLERANCE``.
        ConfigError: ``weights`` is not a kept-weights folder.
    """
    meta = read_kept_weights(weights)
    arch = TransformerConfig.from_dict(meta["architecture"])
    run = meta.get("config") or {}
    t0 = time.perf_counter()
    suite = build_suite(run["data"], run["tasks"], cache_dir)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(weights / "tokenizer.json"))
    if tokenizer.to_str() != suite.tokenizer.to_str():
        raise ExportError(
            f"{weights}: the study's data no longer builds the tokenizer these weights were "
            "trained with (data files or settings changed since the search)"
        )
    log.info("rebuilt the study's data in %.1fs", time.perf_counter() - t0)

    result = ExportResult(folder=out, trial=int(meta["trial"]))
    tmp = _prepare_out(out)
    # What AutoTokenizer users get: the tasks' [CLS] ... [SEP] layout added on encoding.
    task_tokenizer = with_task_template(tokenizer)
    try:
        _write_tokenizer(task_tokenizer, tmp, suite.seq_len)
        shutil.copy2(weights / "backbone.safetensors", tmp / "backbone.safetensors")
        lm = load_safetensors(LanguageModel(arch), tmp / "backbone.safetensors").eval()
        files: dict[str, Any] = {
            "tokenizer": "tokenizer.json",
            "backbone": "backbone.safetensors",
            "tasks": {},
            "adapters": {},
            "onnx": {},
            "transformers": {},
        }
        tasks_doc: dict[str, Any] = {}
        # The language model reads raw text (held-out blocks); the task models [CLS] ... [SEP].
        blocks = suite.val_blocks[:4, :-1]
        lm_batches = [{"input_ids": blocks, "attention_mask": torch.ones_like(blocks)}]
        lm_job = _Job("lm", lm, lm_batches, options={"tokenizer": tokenizer})
        task_jobs: list[_Job] = []
        for name, task in suite.tasks.items():
            src = weights / "tasks" / f"{name}.safetensors"
            rel = f"tasks/{name}.safetensors"
            (tmp / "tasks").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / rel)
            model = load_task_weights(arch, task, tmp / rel).eval()
            files["tasks"][name] = rel
            adapter = weights / "tasks" / f"{name}.adapter.safetensors"
            if adapter.is_file():
                shutil.copy2(adapter, tmp / "tasks" / adapter.name)
                files["adapters"][name] = f"tasks/{adapter.name}"
            info = meta.get("task_info", {}).get(name, {})
            tasks_doc[name] = {
                "kind": task.kind,
                "metric": task.metric,
                "labels": info.get("labels") or list(getattr(task.splits, "labels", []) or []),
                "config": run["tasks"][name],
            }
            spec = json.loads(read_metadata(tmp / rel).get(ADAPTATION_KEY) or "{}")
            labels = tasks_doc[name]["labels"] if task.kind == "token" else None
            options = {"tokenizer": task_tokenizer, "labels": labels}
            task_jobs.append(_Job(name, model, _batches(task), spec.get("method"), options))

        for fmt_name, fmt in requested_formats(onnx, transformers).items():
            if isinstance(fmt, str):  # not asked for: the reason
                result.skipped[fmt_name] = fmt
                continue
            if reason := fmt.unsupported(arch):
                result.skipped[fmt_name] = reason
                log.info("%s: not exported: %s", fmt_name, reason)
                continue
            jobs = [lm_job, *task_jobs] if fmt.language_model else task_jobs
            files[fmt_name] = write_format(fmt, jobs, tmp, result)

        arch_path = out / "architecture.yaml"
        seed = int(run.get("seed", 0) or 0) + result.trial
        result.retrain = retrain_commands(arch_path, run, list(suite.tasks), seed, out)
        doc = {
            "format": EXPORT_FORMAT,
            "architecture": arch.to_dict(),
            "describe": arch.describe(),
            "study": meta.get("study"),
            "trial": result.trial,
            "n_params": arch.num_params(),
            "flops_per_token": arch.flops_per_sequence(suite.seq_len) / suite.seq_len,
            "scores": {
                "adaptability": meta.get("adaptability"),
                "validation": meta.get("task_scores", {}),
                "validation_metrics": meta.get("task_metrics", {}),
                "test": meta.get("test_metrics", {}),
                "pretrain_val_loss": meta.get("pretrain_val_loss"),
            },
            "tasks": tasks_doc,
            "search": {**run, **(search or {})},
            "files": files,
            "checks": {
                "tolerance": TOLERANCE,
                "max_abs_diff": result.parity,
                "skipped": result.skipped,
            },
            "retrain": result.retrain,
        }
        text = yaml.safe_dump(_plain(doc), sort_keys=False)
        (tmp / "architecture.yaml").write_text(text)
        (tmp / "README.md").write_text(model_card(doc))
        _finish_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _write_tokenizer(tok, folder: Path, max_len: int) -> None:
    """``tokenizer.json`` and, when ``transformers`` is installed, its ``tokenizer_config.json``."""
    try:
        hf = hf_tokenizer(tok)
    except ImportError:  # transformers is the export extra: the tokenizers file still serves
        tok.save(str(folder / "tokenizer.json"))
        return
    hf.model_max_length = max_len
    hf.save_pretrained(str(folder))


def _plain(x: Any) -> Any:
    """Make ``x`` safe for ``yaml.safe_dump`` (tuples, numpy/torch scalars, paths)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def write_architecture_only(
    trial: optuna.trial.FrozenTrial, study: optuna.Study, out: Path, run: dict[str, Any]
) -> Path:
    """For a trial without kept weights: its ``architecture.yaml`` so that it can be retrained."""
    record = trial_record(trial)
    arch = record.architecture
    if arch is None:
        raise ConfigError(
            f"trial={trial.number} of study '{study.study_name}' has no architecture "
            f"({record.fail_reason or trial.state.name.lower()})"
        )
    if out.exists() and any(out.iterdir()) and not (out / "architecture.yaml").is_file():
        raise ConfigError(f"out={out}: exists and is not an adaptnas export; pick another folder")
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": EXPORT_FORMAT,
        "architecture": arch,
        "study": study.study_name,
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "scores": {
            "adaptability": trial.values[0] if trial.values else None,
            "validation": record.task_scores,
        },
        "weights": None,
        "search": run,
    }
    path = out / "architecture.yaml"
    path.write_text(yaml.safe_dump(_plain(doc), sort_keys=False))
    return path


def _search_facts(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    done = trial.datetime_complete
    return {
        "study": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "trials": counts,
        "found": done.isoformat(timespec="seconds") if done else None,
        "exported": datetime.now().isoformat(timespec="seconds"),
    }


def run_export(cfg: DictConfig) -> list[ExportResult]:
    """Export the trial(s) ``cfg`` names; what ``python nas/export.py`` runs.

    Config keys: ``study`` (required), ``trial`` (``null``: the best; a number; ``pareto``),
    ``out`` (default ``<study folder>/export``; ``pareto``: ``.../export/trial_<n>``), ``onnx``,
    ``transformers``, ``paths.*``, ``storage.*``.

    Raises:
        ConfigError: Unknown study or trial, or a trial without kept weights (the message holds
            the command that retrains it).
    """
    study, folder = open_existing_study(cfg, "export")
    which = cfg.get("trial")
    trials = select_trials(study, which)
    out_root = Path(str(cfg.out)).expanduser().resolve() if cfg.get("out") else folder / "export"
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    results: list[ExportResult] = []
    missing: list[str] = []
    for t in trials:
        out = out_root / f"trial_{t.number}" if which == "pareto" else out_root
        weights = trial_weights_dir(folder, t.number)
        if t.state != COMPLETE or not (weights / "meta.json").is_file():
            missing.append(_no_weights(t, study, folder, out))
            continue
        facts = _search_facts(study, t)
        results.append(
            export_trial(
                weights,
                out,
                cache_dir=cache,
                onnx=bool(cfg.get("onnx", True)),
                transformers=bool(cfg.get("transformers", True)),
                search=facts,
            )
        )
        log.info("exported trial %d to %s", t.number, out)
        if cfg.get("push_to_hub"):
            where = f"trial_{t.number}" if which == "pareto" else None
            results[-1].hub_url = push_export(out, str(cfg.push_to_hub), where)
    if missing and not results:
        raise ConfigError("; ".join(missing))
    for line in missing:
        log.warning("%s", line)
    return results


def _no_weights(t: optuna.trial.FrozenTrial, study: optuna.Study, folder: Path, out: Path) -> str:
    """Write the trial's architecture to ``out``; the one-line message with the retrain command."""
    # finetune.lr_choice=family: the retrain adapts at the rates the trial adapted at.
    run = with_rates(recorded_run_config(folder), trial_record(t).lr_rates)
    arch_path = write_architecture_only(t, study, out, run)
    tasks = list(trial_record(t).task_scores) or list(run.get("tasks") or {})
    seed = int(run.get("seed", 0) or 0) + t.number
    cmd = retrain_commands(arch_path, run, tasks, seed, None)["reproduce"]
    if t.state != COMPLETE:
        why = f"was {t.state.name.lower()}"
        if reason := trial_record(t).fail_reason:
            why += f" ({reason})"
    else:
        kept = sorted(
            int(p.name.removeprefix("trial_"))
            for p in (folder / WEIGHTS_DIR).glob("trial_*")
            if p.name.removeprefix("trial_").isdigit()
        )
        why = (
            "has no kept weights (export.keep_top_k keeps the best trials only; kept: "
            f"{', '.join(map(str, kept)) or 'none'})"
        )
    return (
        f"trial {t.number} of study '{study.study_name}' {why}; its architecture is in "
        f"{arch_path}; retrain it with: {cmd}"
    )
