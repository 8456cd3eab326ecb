"""A new task kind is its class and its task block: searched, exported, loaded and predicting.

The kind below is registered only here (``TASK_KINDS``, monkeypatched), with no entry in the
schema, the data readers, the heads or the export formats: each of them asks the class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import adaptnas
from lightning_modules.config import TransformerConfig
from lightning_modules.heads import SequenceClassificationHead
from lightning_modules.tasks import TASK_KINDS, SequenceTask
from nas.engine.run import run_search
from nas.exporting import run_export
from tests.conftest import compose_config, tiny_overrides
from tests.nas.test_export import SPACE


class OrdinalTask(SequenceTask):
    """Graded labels regressed as one number per text, predicted as the nearest label."""

    kind = "ordinal"
    example = "text"
    metrics = ("accuracy", "macro_f1")

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        return SequenceClassificationHead(cfg, 1)  # one scalar: the grade

    def _grade(self, backbone, head, batch) -> Tensor:
        return self._logits(backbone, head, batch).float().squeeze(-1)  # (B,)

    def loss(self, backbone, head, batch) -> Tensor:
        return F.mse_loss(self._grade(backbone, head, batch), batch["label"].float())

    @torch.no_grad()
    def predict(self, backbone, head, batch) -> list[tuple[int, int]]:
        pred = self._grade(backbone, head, batch).round().clamp(0, self.num_labels - 1).long()
        return list(zip(batch["index"].tolist(), pred.tolist(), strict=True))


def test_a_kind_registered_alone_searches_exports_loads_and_predicts(tmp_path, monkeypatch):
    monkeypatch.setitem(TASK_KINDS, OrdinalTask.kind, OrdinalTask)
    space = tmp_path / "gpt2.yaml"
    space.write_text(SPACE)
    extra = [
        "tasks.sentiment.kind=ordinal",
        "n_trials=2",
        "study_name=ord",
        f"search_space={space}",
        "pruner=none",
        "tasks.sentiment.steps=8",
        "export.keep_top_k=1",
    ]
    search = run_search(compose_config("search", tiny_overrides(tmp_path, "sentiment", extra)))
    scores = [t.user_attrs["task_scores"]["sentiment"] for t in search.study.trials]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    (result,) = run_export(compose_config("export", ["study=ord", f"paths.root={tmp_path}"]))
    assert any(name.startswith("onnx/sentiment") for name in result.parity)
    assert "no transformers counterpart" in result.skipped["transformers/sentiment"]
    model = adaptnas.load(result.folder)
    assert model.tasks["sentiment"]["kind"] == "ordinal"
    labels = model.predict("sentiment", ["a truly wonderful day", "a dull and awful film"])
    assert len(labels) == 2 and set(labels) <= {"negative", "positive", 0, 1}
