"""The trained network as an MLflow pyfunc model: `mlflow.pyfunc.load_model("runs:/<id>/model")`.

The model folder holds the weights (a state_dict, loaded with weights_only=True: no pickled code runs),
the config sections that build the network (model, cell, norm, loss) and the task's scaling, if any, as
JSON, plus seqlab's source (code_paths), so it loads, and `mlflow models serve` serves it, wherever
torch and Hydra are installed. A cell, norm or loss defined outside seqlab must be importable where the
model is loaded.
"""

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

WEIGHTS, NETWORK, SCALING = "weights", "network", "scaling"


class SequenceNetModel(PythonModel):
    """Input: (batch, time, features) float32, or (batch, time) int64 symbols; output: the network's.

    Where the task standardized its data, the scaling is saved beside the weights and the model takes
    and returns the data's own units: inputs are scaled before the network, outputs unscaled after it.

    The model's explicit signature validates input, so MLflow's type-hint validation is switched off: its
    class-definition check would warn that predict has no type hints on every run, and a warnings filter
    cannot stop it (MLflow re-enables the warning around the check). The attribute is MLflow's own switch,
    the one its ChatModel subclasses use (mlflow/pyfunc/model.py, PythonModel.__init_subclass__).
    """

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from seqlab.assemble import network
        from seqlab.spec import TaskKind, TaskSpec

        saved = json.loads(Path(context.artifacts[NETWORK]).read_text())
        spec = TaskSpec(**(saved["spec"] | {"kind": TaskKind(saved["spec"]["kind"])}))
        self.net = network(saved["sections"], spec)
        self.net.load_state_dict(torch.load(context.artifacts[WEIGHTS], weights_only=True))
        self.net.eval()
        self.scaling = load_scaling(context.artifacts.get(SCALING))

    def predict(self, context, model_input, params=None):  # no type hints: the signature validates input
        return predict_in_data_units(self.net, self.scaling, np.asarray(model_input))


def load_scaling(path: str | None) -> Any:
    from seqlab.tasks.windows import Scaling

    return Scaling.from_dict(json.loads(Path(path).read_text())) if path else None


def predict_in_data_units(net: torch.nn.Module, scaling: Any, x: np.ndarray) -> np.ndarray:
    """The network's output for `x`; with a scaling, `x` and the output are in the data's units."""
    inputs = torch.as_tensor(x)
    with torch.no_grad():
        if scaling is None:
            return net(inputs).numpy()
        return scaling.unscale_targets(net(scaling.scale_inputs(inputs))).numpy()


def save_served_model(
    net: torch.nn.Module,
    spec: Any,
    sections: dict[str, Any],
    example: np.ndarray,
    folder: Path,
    scaling: Any = None,
) -> Path:
    """Write the pyfunc model into folder/model (signature and input example included); returns that path.

    With a `scaling` (seqlab.tasks.windows.Scaling), `example` is in the data's units and so is the
    model's input and output.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights, network = folder / "weights.pt", folder / "network.json"
    torch.save(net.state_dict(), weights)
    network.write_text(json.dumps({"spec": asdict(spec), "sections": sections}))
    artifacts = {WEIGHTS: str(weights), NETWORK: str(network)}
    if scaling is not None:
        saved_scaling = folder / "scaling.json"
        saved_scaling.write_text(json.dumps(scaling.to_dict(), indent=1))
        artifacts[SCALING] = str(saved_scaling)
    net.eval()
    output = predict_in_data_units(net, scaling, example)
    target = folder / "model"
    shutil.rmtree(target, ignore_errors=True)  # a job rerun in the same folder writes it afresh
    # Quiet for sweep logs: MLflow warns that the PythonModel is cloudpickled (it holds no state: the
    # weights load with weights_only), and draws progress bars while it copies the artifacts.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        _save(target, artifacts, example, output, per_step=spec.per_step)
    finally:
        pyfunc_log.setLevel(level)
    return target


def any_length(signature: Any, per_step: bool) -> Any:
    """The signature with the time axis (axis 1) of the input, and of a per-step output, left free.

    A recurrent network reads a sequence of any length, but a signature inferred from the example fixes
    every axis but the batch to the example's, and MLflow enforces it on every request: a music piece
    of any other length than the example's padded one would be refused.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def free(schema: Any) -> Any:
        return Schema([TensorSpec(t.type, (t.shape[0], -1, *t.shape[2:]), t.name) for t in schema.inputs])

    return ModelSignature(free(signature.inputs), free(signature.outputs) if per_step else signature.outputs)


def _save(
    target: Path, artifacts: dict[str, str], example: np.ndarray, output: np.ndarray, per_step: bool
) -> None:
    import hydra
    import lightning
    import omegaconf
    import torchmetrics
    from mlflow.models import infer_signature

    import seqlab

    mlflow.pyfunc.save_model(
        path=str(target),
        python_model=SequenceNetModel(),
        artifacts=artifacts,
        signature=any_length(infer_signature(example, output), per_step),
        input_example=example,
        code_paths=[str(Path(seqlab.__file__).parent)],
        pip_requirements=[  # explicit: inferring them would run the model in a subprocess
            f"torch=={torch.__version__.split('+')[0]}",
            f"lightning=={lightning.__version__}",
            f"torchmetrics=={torchmetrics.__version__}",
            f"mlflow=={mlflow.__version__}",
            f"hydra-core=={hydra.__version__}",
            f"omegaconf=={omegaconf.__version__}",
            f"numpy=={np.__version__}",
        ],
    )
