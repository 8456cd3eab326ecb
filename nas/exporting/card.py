"""The export's model card (README.md): Hub metadata in YAML, then a page a person reads.

``huggingface_hub.ModelCard.from_template`` renders ``model_card.md`` (Jinja) with the facts of
the export's ``architecture.yaml`` document; ``card_data`` is the YAML block (library, tags,
datasets, and a ``model-index`` with every task's scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_modules.config import params_human
from lightning_modules.tasks import TASK_KINDS

TEMPLATE = Path(__file__).with_name("model_card.md")

# The Hub task type (model-index) of a kind without one of its own (generation): by its metric.
HUB_GENERATION = {"chrf": "translation", "bleu": "translation", "rouge_l": "summarization"}


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _hub_task_type(task: dict[str, Any]) -> str:
    kind = TASK_KINDS.get(task["kind"])
    if kind is not None and kind.hub_type:
        return kind.hub_type
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
    tags += ["code-generation"] if any(t["kind"] == "code" for t in doc["tasks"].values()) else []
    return ModelCardData(
        library_name="adaptnas",
        tags=[t for t in tags if t],
        datasets=sorted(set(datasets)) or None,
        model_name=name,
        eval_results=results or None,
    )


def _file_rows(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The ``Files`` table beyond the three files every export has."""
    checks = doc["checks"]["max_abs_diff"]
    rows = []
    for name, rel in doc["files"]["tasks"].items():
        rows.append((rel, f"{name}: fine-tuned backbone + head", "loaded strictly"))
    for name, rel in (doc["files"].get("adapters") or {}).items():
        rows.append(
            (
                rel,
                f"{name}: the adapter + head alone, on top of backbone.safetensors "
                '(`adaptnas.load(folder, weights="adapter")`)',
                "loaded strictly",
            )
        )
    for rel in doc["files"]["onnx"].values():
        if isinstance(rel, dict):  # an encoder_decoder's generation task: two graphs, one check
            folder = rel["encoder"].rsplit("/", 1)[0]
            diff = f"{checks[folder]:.2e}"
            rows.append((rel["encoder"], "ONNX encoder: states and cross-attention K/V", diff))
            rows.append((rel["decoder"], "ONNX decoder step, self-attention KV cache in/out", diff))
            continue
        rows.append((rel, "ONNX, dynamic batch and sequence", f"{checks[rel]:.2e}"))
    for entry in doc["files"]["transformers"].values():
        path = entry["path"]
        rows.append((f"{path}/", f"transformers `{entry['class']}`", f"{checks[path]:.2e}"))
    for what, why in doc["checks"]["skipped"].items():
        rows.append((f"({what})", f"not exported: {why}", "-"))
    return rows


def card_context(doc: dict[str, Any]) -> dict[str, Any]:
    """The template's variables, from an export's ``architecture.yaml`` document."""
    scores, search = doc["scores"], doc.get("search", {})
    score_rows = []
    for name, task in doc["tasks"].items():
        val = scores["validation"].get(name)
        test = (scores.get("test") or {}).get(name, {}).get("score")
        score_rows.append((name, task["kind"], task["metric"], _fmt(val), _fmt(test)))
    flops = int(doc["flops_per_token"])
    first = next(iter(doc["tasks"]), "<task>")
    hf = None
    if doc["files"]["transformers"]:
        name, entry = next(iter(doc["files"]["transformers"].items()))
        hf = {"name": name, "class": entry["class"]}

    def dashes(section: dict[str, Any]) -> dict[str, Any]:
        return {k: section.get(k, "-") for k in ("tokens", "batch_size", "lr", "steps")}

    return {
        "study": doc.get("study"),
        "trial": doc["trial"],
        "describe": doc["describe"],
        "adaptability_rule": (search.get("objective") or {}).get("adaptability", "mean"),
        "adaptability": _fmt(scores.get("adaptability")),
        "score_rows": score_rows,
        "params": f"{params_human(doc['n_params'])} ({doc['n_params']:,}, backbone + LM head)",
        "flops": f"{params_human(flops)} ({flops:,}; matmuls and attention, 2 per multiply-add)",
        "pretrain_val_loss": _fmt(scores.get("pretrain_val_loss")),
        "architecture": doc["architecture"],
        "found": search.get("found"),
        "search_space": search.get("search_space", "-"),
        "sampler": search.get("sampler", "-"),
        "pruner": search.get("pruner", "-"),
        "trial_counts": ", ".join(f"{n} {s}" for s, n in (search.get("trials") or {}).items())
        or "-",
        "pre": dashes(search.get("pretrain") or {}),
        "fin": dashes(search.get("finetune") or {}),
        "seed": search.get("seed", "-"),
        "file_rows": _file_rows(doc),
        "predict_lines": [
            TASK_KINDS[t["kind"]].predict_example.format(n=name)
            for name, t in doc["tasks"].items()
            if t["kind"] in TASK_KINDS and TASK_KINDS[t["kind"]].predict_example
        ],
        "first_task": first,
        "hf": hf,
        "retrain": doc.get("retrain", {}),
    }


def model_card(doc: dict[str, Any]) -> str:
    """The export's README.md: Hub metadata, then scores, size, the search that found it, how to
    use and retrain it."""
    from huggingface_hub import ModelCard

    card = ModelCard.from_template(card_data(doc), template_path=str(TEMPLATE), **card_context(doc))
    return str(card)
