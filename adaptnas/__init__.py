"""adaptnas as a library: load an exported architecture and predict with it.

```python
import adaptnas

model = adaptnas.load("outputs/studies/suite-small/export")
model.predict("qa", ("Where does Ada live?", "Ada lives in Paris. Bo lives in Rome."))
model.predict("sentiment", ["not bad at all", "a dull, joyless film"])
```

Loading reads safetensors and YAML only: nothing is unpickled.
"""

from __future__ import annotations

from adaptnas.model import ExportedModel, load, predict

__all__ = ["ExportedModel", "load", "predict"]
