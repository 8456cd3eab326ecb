"""``nas/export.py``'s logic: turn a trial of a study into a self-contained, checked folder.

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
    transformers/<name>/      where the variant maps: ``lm`` and the tasks whose head maps
    README.md                 the model card (Hugging Face metadata: library, tags, datasets,
                              model-index with the task scores)

``push_to_hub=<repo id>`` uploads the folder to the Hugging Face Hub afterwards.

Every format is loaded back and compared with the PyTorch model on real inputs (the study's own
validation examples and held-out pretraining blocks) before the folder appears: it is written
next to its target and renamed into place.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
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
from omegaconf import DictConfig, OmegaConf

from lightning_modules.config import TransformerConfig, params_human
from lightning_modules.data.suite import build_suite
from lightning_modules.data.tokenizer import same_vocabulary, with_task_template
from lightning_modules.export import (
    ADAPTATION_KEY,
    TOLERANCE,
    ExportError,
    TaskModel,
    export_onnx,
    follow_umask,
    hf_family,
    hf_head_problem,
    load_safetensors,
    load_task_weights,
    load_transformers,
    onnx_parity,
    read_metadata,
    save_transformers,
    to_transformers,
    transformers_parity,
)
from lightning_modules.model import LanguageModel
from lightning_modules.tasks.base import make_loader
from nas.checkpoints import FORMAT, WEIGHTS_DIR, trial_weights_dir
from nas.errors import ConfigError
from nas.study import build_storage, check_study_name, mask_url, storage_url

log = logging.getLogger("adaptnas")
State = optuna.trial.TrialState

EXPORT_FORMAT = "adaptnas-export-v1"
# Sections of the run config that decide what a retrain reproduces (compared with train.yaml).
RETRAIN_SECTIONS = ("data", "tasks", "pretrain", "finetune")


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


# ---- the study and its trials -------------------------------------------------------------------
def _studies_root(cfg: DictConfig) -> Path:
    return Path(cfg.paths.studies).expanduser().resolve()


def _known_studies(root: Path) -> list[str]:
    marks = ("config.yaml", "study.db", "journal.log")
    return sorted(p.name for p in root.glob("*") if any((p / m).is_file() for m in marks))


def load_study(cfg: DictConfig) -> tuple[optuna.Study, Path]:
    """Open the study ``cfg.study``; one-line ``ConfigError`` when it does not exist.

    The storage is ``cfg.storage`` when given (``storage=journal``, ``storage.url=...``), else the
    one the search recorded in ``<study folder>/config.yaml``, else the default SQLite file.
    """
    if OmegaConf.is_missing(cfg, "study") or not cfg.get("study"):
        raise ConfigError("study: name the study to export, e.g. study=suite-small")
    name = check_study_name(str(cfg.study))
    root = _studies_root(cfg)
    folder = root / name
    scfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    scfg.study_name = name
    if scfg.get("storage") is None:
        if not folder.is_dir():
            known = ", ".join(_known_studies(root)) or "none"
            raise ConfigError(f"study={name}: no such study in {root} (known: {known})")
        recorded = _study_run_config(folder).get("storage") or {"kind": "sqlite", "url": None}
        if "***" in str(recorded.get("url") or ""):
            raise ConfigError(
                f"study={name} lives in {recorded['url']}: give the storage with its password, "
                "e.g. storage=postgres with ADAPTNAS_STORAGE_URL set, "
                "or storage=postgres storage.url=..."
            )
        scfg.storage = recorded
    if scfg.storage.get("kind") == "sqlite" and not scfg.storage.get("url"):
        if not (folder / "study.db").is_file():
            known = ", ".join(_known_studies(root)) or "none"
            raise ConfigError(f"study={name}: no such study in {root} (known: {known})")
    storage = build_storage(scfg)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError(f"study={name}: not in storage {mask_url(storage_url(scfg))}") from None
    return study, folder


def select_trials(study: optuna.Study, which: Any) -> list[optuna.trial.FrozenTrial]:
    """The trials ``trial=`` names: ``None`` (the best), a number, or ``pareto``.

    Raises:
        ConfigError: An unknown trial, a malformed value, or no completed trial.
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == State.COMPLETE]
    if which is None or which == "best" or which == "pareto":
        if not complete:
            raise ConfigError(f"study '{study.study_name}' has no completed trial to export")
        if len(study.directions) == 1:
            if which == "pareto":
                raise ConfigError(
                    f"trial=pareto: study '{study.study_name}' has one objective; "
                    "export the best trial (no trial=) or trial=<n>"
                )
        from nas.results import best_trials  # the winner by mean over its finalist seeds

        front = best_trials(study)
        return front if which == "pareto" else front[:1]
    if isinstance(which, bool) or not (isinstance(which, int) or str(which).isdigit()):
        raise ConfigError(f"trial={which!r}: give a trial number, pareto, or nothing (the best)")
    number = int(which)
    by_number = {t.number: t for t in trials}
    if number not in by_number:
        span = f"trials 0-{max(by_number)}" if by_number else "no trials"
        raise ConfigError(f"trial={number}: study '{study.study_name}' has no such trial ({span})")
    return [by_number[number]]


# ---- commands ------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out |= _flatten(v, key)
        else:
            out[key] = v
    return out


def _hydra_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    text = str(v)
    if isinstance(v, str) and not re.fullmatch(r"[\w./:+-]+", text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def retrain_overrides(run: dict[str, Any], task_names: list[str], seed: int) -> list[str]:
    """Overrides that make ``nas/train.py`` see the data, tasks and budgets of the search.

    Every leaf of ``run``'s ``data``, ``tasks``, ``pretrain`` and ``finetune`` sections that
    differs from what ``conf/train.yaml`` composes with the same tasks becomes ``key=value``.
    """
    from nas.cli import CONF_DIR

    task_arg = task_names[0] if len(task_names) == 1 else "[" + ",".join(task_names) + "]"
    args = [f"task={task_arg}"]
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        overrides = [f"task={task_arg}"]
        if GlobalHydra.instance().is_initialized():  # inside nas/export.py's Hydra main: conf/
            base = OmegaConf.to_container(compose("train", overrides=overrides), resolve=False)
        else:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                base = OmegaConf.to_container(compose("train", overrides=overrides), resolve=False)
    except Exception:  # a task without a conf/task file: list the tasks, not the diff
        base = {}
    want = _flatten({k: run.get(k) for k in RETRAIN_SECTIONS if run.get(k) is not None})
    have = _flatten({k: base.get(k) for k in RETRAIN_SECTIONS if base.get(k) is not None})
    for key, value in want.items():
        if key == "pretrain.tokens" or (key in have and have[key] == value):
            continue
        args.append(f"{'' if key in have else '+'}{key}={_hydra_value(value)}")
    args.append(f"seed={seed}")
    return args


def retrain_commands(
    arch_path: Path, run: dict[str, Any], task_names: list[str], seed: int, init_from: Path | None
) -> dict[str, str]:
    """``reproduce`` (the search's budget) and ``longer`` (10x pretraining) commands."""
    args = retrain_overrides(run, task_names, seed)
    tokens = (run.get("pretrain") or {}).get("tokens")
    if tokens is None:  # a run that recorded no budget: the default config's, not a literal
        from nas.cli import CONF_DIR

        tokens = yaml.safe_load((CONF_DIR / "pretrain" / "default.yaml").read_text())["tokens"]
    tokens = int(tokens)
    base = ["python", "nas/train.py", f"arch={arch_path}", *args]
    cmds = {"reproduce": shlex.join([*base, f"pretrain.tokens={tokens}"])}
    longer = [*base, f"pretrain.tokens={tokens * 10}"]
    if init_from is not None:
        longer.append(f"init_from={init_from}")
    cmds["longer"] = shlex.join(longer)
    return cmds


# ---- the export ----------------------------------------------------------------------------------
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
        weights: ``<study>/weights/trial_<n>`` (written by ``nas.checkpoints.KeepWeights``).
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
    meta_path = weights / "meta.json"
    if not meta_path.is_file():
        raise ConfigError(f"{weights}: no meta.json, not a folder of kept weights")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT}")
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
        models: dict[str, TaskModel] = {}
        for name, task in suite.tasks.items():
            src = weights / "tasks" / f"{name}.safetensors"
            rel = f"tasks/{name}.safetensors"
            (tmp / "tasks").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / rel)
            model = load_task_weights(arch, task, tmp / rel).eval()
            models[name] = model
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

        if onnx:
            for name, model in models.items():
                batches = _batches(suite.tasks[name])
                rel = f"onnx/{name}.onnx"
                t1 = time.perf_counter()
                export_onnx(model, tmp / rel, batches[0])
                diff = onnx_parity(tmp / rel, model, batches)
                log.info(
                    "%s: onnxruntime vs PyTorch max abs diff %.2e (%.1fs)",
                    rel,
                    diff,
                    time.perf_counter() - t1,
                )
                result.parity[rel] = diff
                files["onnx"][name] = rel
                if diff > TOLERANCE:
                    raise ExportError(f"{rel}: onnxruntime differs from PyTorch by {diff:.2e}")
        else:
            result.skipped["onnx"] = "onnx=false"

        if transformers:
            family, reason = hf_family(arch)
            if family is None:
                result.skipped["transformers"] = reason
                log.info("transformers: not exported: %s", reason)
            else:
                lm_batches = [
                    {
                        "input_ids": suite.val_blocks[:4, :-1],
                        "attention_mask": torch.ones_like(suite.val_blocks[:4, :-1]),
                    }
                ]
                todo: list[tuple[str, Any, list, list | None]] = [("lm", lm, lm_batches, None)]
                for name, model in models.items():
                    method = json.loads(
                        read_metadata(tmp / files["tasks"][name]).get(ADAPTATION_KEY) or "{}"
                    ).get("method")
                    if method == "adapter":  # no transformers class has bottleneck adapters
                        problem = "finetune.method=adapter: adapters do not merge (full or lora)"
                        result.skipped[f"transformers/{name}"] = problem
                        log.info("transformers/%s: not exported: %s", name, problem)
                        continue
                    if problem := hf_head_problem(model.kind):
                        result.skipped[f"transformers/{name}"] = problem
                        log.info("transformers/%s: not exported: %s", name, problem)
                        continue
                    labels = tasks_doc[name]["labels"] if model.kind == "token" else None
                    todo.append((name, model, _batches(suite.tasks[name]), labels))
                for name, model, batches, labels in todo:
                    rel = f"transformers/{name}"
                    kind = model.kind if isinstance(model, TaskModel) else None
                    # The task models read [CLS] ... [SEP]; the language model reads raw text.
                    tok = task_tokenizer if isinstance(model, TaskModel) else tokenizer
                    save_transformers(to_transformers(model, labels), tmp / rel, tok)
                    hf = load_transformers(tmp / rel, family, kind)
                    diff = transformers_parity(hf, model, batches)
                    log.info(
                        "%s (%s): transformers vs PyTorch max abs diff %.2e",
                        rel,
                        type(hf).__name__,
                        diff,
                    )
                    result.parity[rel] = diff
                    files["transformers"][name] = {"path": rel, "class": type(hf).__name__}
                    if diff > TOLERANCE:
                        raise ExportError(f"{rel}: transformers differs from PyTorch by {diff:.2e}")
        else:
            result.skipped["transformers"] = "transformers=false"

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
        from lightning_modules.export import hf_tokenizer

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
    arch = trial.user_attrs.get("architecture")
    if arch is None:
        raise ConfigError(
            f"trial={trial.number} of study '{study.study_name}' has no architecture "
            f"({trial.user_attrs.get('fail_reason', trial.state.name.lower())})"
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
            "validation": trial.user_attrs.get("task_scores", {}),
        },
        "weights": None,
        "search": run,
    }
    path = out / "architecture.yaml"
    path.write_text(yaml.safe_dump(_plain(doc), sort_keys=False))
    return path


def _study_run_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}  # type: ignore[return-value]


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
    study, folder = load_study(cfg)
    which = cfg.get("trial")
    trials = select_trials(study, which)
    out_root = Path(str(cfg.out)).expanduser().resolve() if cfg.get("out") else folder / "export"
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    results: list[ExportResult] = []
    missing: list[str] = []
    for t in trials:
        out = out_root / f"trial_{t.number}" if which == "pareto" else out_root
        weights = trial_weights_dir(folder, t.number)
        if t.state != State.COMPLETE or not (weights / "meta.json").is_file():
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


def push_export(folder: Path, repo_id: str, path_in_repo: str | None = None) -> str:
    """Upload an export folder to the Hugging Face Hub (``push_to_hub=<repo id>``).

    The repository is created when missing (a model repo, private per the account's default);
    the token is huggingface_hub's own (``hf auth login`` or ``HF_TOKEN``).

    Args:
        folder: The export folder.
        repo_id: ``<user or org>/<name>``.
        path_in_repo: A subfolder of the repository (``trial=pareto``: one per trial).

    Returns:
        The URL of the commit.

    Raises:
        ConfigError: A malformed repo id, or the Hub refused (no token, no rights, offline).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"push_to_hub={repo_id}: {str(err).splitlines()[0]}") from None
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            path_in_repo=path_in_repo,
            repo_type="model",
            commit_message=f"adaptnas export of {folder.name}",
        )
    except (OSError, ValueError) as err:  # HfHubHTTPError is an OSError; offline mode a ValueError
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ConfigError(f"push_to_hub={repo_id}: {lines[0]}") from None
    url = str(getattr(info, "commit_url", None) or info)
    log.info("pushed %s to the Hub: %s", folder, url)
    return url


def _no_weights(t: optuna.trial.FrozenTrial, study: optuna.Study, folder: Path, out: Path) -> str:
    """Write the trial's architecture to ``out``; the one-line message with the retrain command."""
    run = _study_run_config(folder)
    arch_path = write_architecture_only(t, study, out, run)
    tasks = list(t.user_attrs.get("task_scores", {})) or list(run.get("tasks") or {})
    seed = int(run.get("seed", 0) or 0) + t.number
    cmd = retrain_commands(arch_path, run, tasks, seed, None)["reproduce"]
    if t.state != State.COMPLETE:
        why = f"was {t.state.name.lower()}"
        if reason := t.user_attrs.get("fail_reason"):
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


# ---- the model card ----------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# Hub task types (model-index) of the task kinds; generation by its metric.
HUB_TASK_TYPES = {
    "span": "question-answering",
    "sequence": "text-classification",
    "token": "token-classification",
}
HUB_GENERATION = {"chrf": "translation", "bleu": "translation", "rouge_l": "summarization"}


def _hub_task_type(task: dict[str, Any]) -> str:
    if task["kind"] in HUB_TASK_TYPES:
        return HUB_TASK_TYPES[task["kind"]]
    return HUB_GENERATION.get(str(task.get("metric")), "text-generation")


def card_data(doc: dict[str, Any]):
    """The model card's metadata (``huggingface_hub.ModelCardData``) for an export's ``doc``.

    ``library_name`` adaptnas, tags for what the folder holds, ``datasets`` the Hub datasets the
    tasks were read from (``source.type: hf``), and a ``model-index`` with one result per task:
    its validation score (and test score when the finalist had one).
    """
    from huggingface_hub import EvalResult, ModelCardData

    name = f"{doc.get('study')}-trial{doc['trial']}"
    datasets: list[str] = []
    results = []
    for task_name, task in doc["tasks"].items():
        source = (task.get("config") or {}).get("source") or {}
        if source.get("type") == "hf" and source.get("path"):
            datasets.append(str(source["path"]))
            dataset_type = str(source["path"])
        else:
            dataset_type = f"adaptnas/{source.get('type', 'builtin')}-{task_name}"
        splits = {"validation": doc["scores"]["validation"].get(task_name)}
        test = (doc["scores"].get("test") or {}).get(task_name) or {}
        splits["test"] = test.get("score")
        for split, value in splits.items():
            if value is None:
                continue
            results.append(
                EvalResult(
                    task_type=_hub_task_type(task),
                    task_name=task_name,
                    dataset_type=dataset_type,
                    dataset_name=f"{task_name} ({source.get('type', 'builtin')})",
                    dataset_split=split,
                    metric_type=str(task["metric"]),
                    metric_name=f"{task['metric']} (score in [0, 1])",
                    metric_value=round(float(value), 4),
                )
            )
    tags = ["adaptnas", "neural-architecture-search", doc["architecture"].get("family", "")]
    tags += ["safetensors"] + (["onnx"] if doc["files"].get("onnx") else [])
    tags += ["transformers"] if doc["files"].get("transformers") else []
    return ModelCardData(
        library_name="adaptnas",
        tags=[t for t in tags if t],
        datasets=sorted(set(datasets)) or None,
        model_name=name,
        eval_results=results or None,
    )


def model_card(doc: dict[str, Any]) -> str:
    """The export's README.md: Hub metadata, then scores, size, the search that found it, how to
    use and retrain it."""
    from huggingface_hub import ModelCard

    body = _card_body(doc)
    return str(ModelCard(f"---\n{card_data(doc).to_yaml()}\n---\n\n{body}"))


def _card_body(doc: dict[str, Any]) -> str:
    arch = doc["architecture"]
    scores = doc["scores"]
    search = doc.get("search", {})
    lines = [
        f"# {doc.get('study')} / trial {doc['trial']}: {doc['describe']}",
        "",
        "Exported by adaptnas from a neural architecture search for Transformers that adapt best: "
        "each candidate was pretrained briefly as a language model, then fine-tuned on every task "
        "below.",
        "",
        "## Scores",
        "",
        f"Adaptability ({(search.get('objective') or {}).get('adaptability', 'mean')} of the "
        f"task scores): **{_fmt(scores.get('adaptability'))}**",
        "",
        "| task | kind | metric | validation | test |",
        "|---|---|---|---|---|",
    ]
    for name, task in doc["tasks"].items():
        val = scores["validation"].get(name)
        test = (scores.get("test") or {}).get(name, {}).get("score")
        lines.append(f"| {name} | {task['kind']} | {task['metric']} | {_fmt(val)} | {_fmt(test)} |")
    flops = doc["flops_per_token"]
    lines += [
        "",
        "## Size and cost",
        "",
        f"- Parameters: {params_human(doc['n_params'])} ({doc['n_params']:,}, backbone + LM head)",
        f"- Forward FLOPs per token: {params_human(int(flops))} ({int(flops):,}; "
        "matmuls and attention, 2 per multiply-add)",
        f"- Pretraining validation loss: {_fmt(scores.get('pretrain_val_loss'))}",
        "",
        "## Architecture",
        "",
        "| knob | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in arch.items()]
    pre = search.get("pretrain") or {}
    fin = search.get("finetune") or {}
    trials = search.get("trials") or {}
    lines += [
        "",
        "## The search that found it",
        "",
        f"- Study `{doc.get('study')}`, trial {doc['trial']}"
        + (f", completed {search['found']}" if search.get("found") else ""),
        f"- Search space: `{search.get('search_space', '-')}`; "
        f"sampler `{search.get('sampler', '-')}`; pruner `{search.get('pruner', '-')}`",
        "- Trials: " + (", ".join(f"{n} {s}" for s, n in trials.items()) or "-"),
        f"- Budgets per candidate: pretraining {pre.get('tokens', '-')} tokens "
        f"(batch {pre.get('batch_size', '-')}, lr {pre.get('lr', '-')}); fine-tuning "
        f"{fin.get('steps', '-')} steps per task (batch {fin.get('batch_size', '-')}, lr "
        f"{fin.get('lr', '-')}; per-task overrides in architecture.yaml)",
        f"- Seed: {search.get('seed', '-')} (this trial's models: seed + trial number)",
        "",
        "## Files",
        "",
        "| file | format | check (max abs diff vs PyTorch, fp32) |",
        "|---|---|---|",
        "| architecture.yaml | architecture (`TransformerConfig.from_yaml`), tasks, scores, search "
        "| - |",
        "| tokenizer.json | Hugging Face `tokenizers` | - |",
        "| backbone.safetensors | pretrained language model (backbone + LM head) "
        "| loaded strictly |",
    ]
    checks = doc["checks"]["max_abs_diff"]
    for name, rel in doc["files"]["tasks"].items():
        lines.append(f"| {rel} | {name}: fine-tuned backbone + head | loaded strictly |")
    for name, rel in (doc["files"].get("adapters") or {}).items():
        lines.append(
            f"| {rel} | {name}: the adapter + head alone, on top of backbone.safetensors "
            '(`adaptnas.load(folder, weights="adapter")`) | loaded strictly |'
        )
    for rel in doc["files"]["onnx"].values():
        lines.append(f"| {rel} | ONNX, dynamic batch and sequence | {checks[rel]:.2e} |")
    for entry in doc["files"]["transformers"].values():
        lines.append(
            f"| {entry['path']}/ | transformers `{entry['class']}` | {checks[entry['path']]:.2e} |"
        )
    for what, why in doc["checks"]["skipped"].items():
        lines.append(f"| ({what}) | not exported: {why} | - |")
    task_names = list(doc["tasks"])
    first = task_names[0] if task_names else "<task>"
    lines += [
        "",
        "## Use it",
        "",
        "```python",
        "import adaptnas",
        "",
        'model = adaptnas.load("<this folder>")',
    ]
    examples = {
        "span": 'model.predict("{n}", [("Where does Ada live?", "Ada lives in Paris.")])',
        "sequence": 'model.predict("{n}", ["a truly wonderful day"])',
        "token": 'model.predict("{n}", ["Ada visited Paris"])',
        "generation": 'model.predict("{n}", ["the source sentence"])',
    }
    for name, task in doc["tasks"].items():
        if task["kind"] in examples:
            lines.append(examples[task["kind"]].format(n=name))
    lines += [
        "```",
        "",
        "The tokenizer adds the tasks' layout: `tokenizer(question, context)` is "
        "`[CLS] question [SEP] context [SEP]`, `tokenizer(text)` is `[CLS] text [SEP]` "
        "(generation tasks read `[BOS] source [SEP]`: encode with `add_special_tokens=False`):",
        "",
        "```python",
        "from transformers import AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("<this folder>")',
        'batch = tokenizer(["Where does Ada live?"], ["Ada lives in Paris."], return_tensors="np")',
        "```",
        "",
        "ONNX (inputs `input_ids`, `attention_mask`: int64, right-padded, `[CLS] ... [SEP]` "
        "as the task encodes them):",
        "",
        "```python",
        "import onnxruntime as ort",
        "",
        f'session = ort.InferenceSession("onnx/{first}.onnx")',
        'outputs = session.run(None, {"input_ids": ids, "attention_mask": mask})',
        "```",
        "",
    ]
    if doc["files"]["transformers"]:
        name, entry = next(iter(doc["files"]["transformers"].items()))
        lines += [
            "transformers (loads offline from the folder):",
            "",
            "```python",
            f"from transformers import AutoTokenizer, {entry['class']}",
            "",
            f'model = {entry["class"]}.from_pretrained("transformers/{name}")',
            f'tokenizer = AutoTokenizer.from_pretrained("transformers/{name}")',
            "```",
            "",
        ]
    retrain = doc.get("retrain", {})
    lines += [
        "## Retrain it",
        "",
        "Reproduce this trial (same data, budgets and seed):",
        "",
        "```bash",
        retrain.get("reproduce", "-"),
        "```",
        "",
        "Train longer, starting from the exported pretrained weights (10x the pretraining "
        "tokens; change `pretrain.tokens` at will):",
        "",
        "```bash",
        retrain.get("longer", "-"),
        "```",
        "",
    ]
    return "\n".join(lines)


# ---- retraining from an export ------------------------------------------------------------------
def init_from_export(folder: Any, arch: TransformerConfig, suite) -> Any:
    """``init_model`` for ``run_candidate`` that loads an export's pretrained weights.

    Args:
        folder: ``init_from=`` (an export folder, or a study's ``weights/trial_<n>``); ``None``
            or empty: no initialisation.
        arch: The architecture about to be trained (with this run's data fields).
        suite: This run's data: its tokenizer must be the export's.

    Returns:
        ``None``, or a function that loads the weights into a freshly built model.

    Raises:
        ConfigError: No weights there, another tokenizer, or another architecture (the message
            names the differing knobs).
    """
    if not folder:
        return None
    path = Path(str(folder)).expanduser()
    weights = path / "backbone.safetensors"
    if not weights.is_file():
        raise ConfigError(
            f"init_from={folder}: no backbone.safetensors there (give a folder written by "
            "nas/export.py)"
        )
    tok = path / "tokenizer.json"
    if tok.is_file():
        from tokenizers import Tokenizer

        if not same_vocabulary(Tokenizer.from_file(str(tok)), suite.tokenizer):
            raise ConfigError(
                f"init_from={folder}: its tokenizer differs from this run's; use the search's "
                f"data settings (the retrain command in {path / 'README.md'} has them)"
            )
    saved = None
    if (path / "architecture.yaml").is_file():
        saved = TransformerConfig.from_yaml(path / "architecture.yaml")
    elif (path / "meta.json").is_file():
        saved = TransformerConfig.from_dict(
            json.loads((path / "meta.json").read_text())["architecture"]
        )
    if saved is not None:
        mine, theirs = arch.to_dict(), saved.to_dict()
        # max_seq_len only sizes learned position tables; the weights decide whether it fits.
        differ = [k for k in mine if k not in ("max_seq_len", "dropout") and mine[k] != theirs[k]]
        if differ:
            shown = ", ".join(f"{k}={mine[k]!r} (export: {theirs[k]!r})" for k in differ)
            raise ConfigError(f"init_from={folder}: another architecture: {shown}")

    def init_model(model) -> None:
        load_safetensors(model, weights)
        log.info("pretraining starts from %s", weights)

    return init_model
