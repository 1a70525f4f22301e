"""The Keras ``Sequential`` model over an ``nn.Sequential``, and JSON / weight round trips.

The model is a thin driver: its layers' nn modules form one ``nn.Sequential`` (so Linear +
activation pairs run fused), ``compile`` picks a loss and binds a Keras optimizer (which wraps
an :mod:`autograd.optim` one), and ``fit`` loops over an :class:`autograd.data.DataLoader`.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import nn, serialization
from ..data import DataLoader, TensorDataset
from ..grad_mode import no_grad
from ..jit import compile as _compile
from ..tensor import Tensor
from . import hdf5, losses
from . import optimizers as keras_optimizers
from . import parallel as _parallel
from .callbacks import Callback, History
from .config import DEFAULT_MAX_PARAMS, ModelConfigError, ModelSpec, parse_model_json
from .layers import Activation, Dense, Dropout, Layer

__all__ = ["ModelConfigError", "Sequential", "load_model", "model_from_json"]


class Sequential:
    """A linear stack of Keras layers: ``add``, ``compile``, ``fit``, ``evaluate``,
    ``predict``, ``summary``, ``to_json``, ``save_weights`` / ``load_weights``.

    The first layer needs ``input_dim`` (or ``input_shape``) unless the model is built by its
    first ``fit`` / ``predict`` from the data's width.
    """

    def __init__(self, layers: list[Layer] | None = None, name: str | None = None) -> None:
        self.name = name or "sequential"
        self.layers: list[Layer] = []
        self.stop_training = False
        self.history: History | None = None
        self._loss: str | None = None
        self._optimizer: keras_optimizers.Optimizer | None = None
        self._metrics: list[str] = []
        self._jit = True
        self._steps: dict[Any, Any] = {}
        self.module = nn.Sequential()
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> None:
        """Append ``layer``, building it from the previous layer's output width if known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a Keras layer (Dense, Activation, "
                            f"Dropout), got {type(layer).__name__}")
        prev = self.layers[-1].output_dim if self.layers else None
        if prev is not None:
            layer.build(prev)  # raises if the layer declared a different input width
        self.layers.append(layer)
        self._sync()

    def _build(self, input_dim: int) -> None:
        width = input_dim
        for layer in self.layers:
            if not layer.built:
                layer.build(width)
            elif layer.input_dim != width:
                raise ValueError(f"layer {layer.name} expects inputs of width "
                                 f"{layer.input_dim}, got {width}")
            width = layer.output_dim
        self._sync()

    def _sync(self) -> None:
        mods = [m for layer in self.layers for m in layer.modules]
        self.module = nn.Sequential(*mods)
        # Softmax + a categorical loss: train on the logits before it (log-softmax, stable).
        self._trunk = nn.Sequential(*mods[:-1]) if mods and type(mods[-1]) is nn.Softmax \
            else None

    @property
    def built(self) -> bool:
        """Whether every layer has its weights."""
        return bool(self.layers) and all(layer.built for layer in self.layers)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; give the first layer "
                             f"input_dim or call fit/predict on data first")

    # ------------------------------------------------------------------ training
    def compile(self, optimizer: Any = None, loss: str | None = None,
                metrics: list[str] | None = None, jit_compile: bool = True) -> None:
        """Choose the loss (see :mod:`autograd.keras.losses`), the optimizer (a Keras
        optimizer or 'sgd' / 'adam') and the metrics (['accuracy'] or none).

        ``jit_compile`` (Keras 3's name, default True): ``fit``, ``evaluate`` and ``predict``
        run their steps through :func:`autograd.compile` (traced once per batch shape, then
        replayed); False runs them eagerly. Both give the same numbers."""
        if optimizer is None or loss is None:
            raise ValueError("compile: both optimizer= and loss= are required")
        losses.get(loss)
        for m in metrics or []:
            if m not in losses.METRICS:
                raise ValueError(f"compile: unknown metric {m!r}; supported: "
                                 f"{list(losses.METRICS)}")
        self._loss, self._metrics = loss, list(metrics or [])
        self._optimizer = keras_optimizers.get(optimizer)
        self._jit = bool(jit_compile)
        self._steps: dict[str, Any] = {}

    @property
    def optimizer(self) -> keras_optimizers.Optimizer | None:
        """The Keras optimizer chosen in ``compile``."""
        return self._optimizer

    def _dtype(self) -> np.dtype:
        for p in self.module.parameters():
            return p.dtype
        return np.dtype(np.float32)

    def _arrays(self, x: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.asarray(x.numpy() if isinstance(x, Tensor) else x)
        if x.ndim != 2:
            raise ValueError(f"expected inputs of shape (samples, features), got {x.shape}")
        if not self.built:
            self._build(x.shape[1])
        x = x.astype(self._dtype(), copy=False)
        if y is None:
            return x, None
        y = np.asarray(y.numpy() if isinstance(y, Tensor) else y)
        if len(y) != len(x):
            raise ValueError(f"inputs and targets differ in length: {len(x)} vs {len(y)}")
        if self._loss == "sparse_categorical_crossentropy":
            y = y.astype(np.int64)
        else:
            y = y.astype(self._dtype())
            if y.ndim == 1:
                y = y[:, None]
        return x, y

    def _forward_loss(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, np.ndarray]:
        """The loss and the predicted probabilities for one batch."""
        loss, out = self._loss_and_output(xb, yb)
        return loss, self._probabilities(out)

    def _uses_logits(self) -> bool:
        return self._trunk is not None and self._loss in losses.LOGIT_LOSSES

    def _loss_and_output(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """The loss and the network's output (the logits when the loss takes them)."""
        fn = losses.get(self._loss)
        if self._uses_logits():
            logits = self._trunk(xb)
            return fn(logits, yb, from_logits=True), logits
        out = self.module(xb)
        return fn(out, yb), out

    def _probabilities(self, out: Tensor) -> np.ndarray:
        """The predicted probabilities from _loss_and_output's output (softmax of logits)."""
        if not self._uses_logits():
            return out.numpy()
        z = out.numpy()
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def _step(self, kind: str) -> Any:
        """The train / test / predict step, through autograd.compile unless jit_compile=False
        (one compiled function per kind and per model setup, cached)."""
        steps = getattr(self, "_steps", None)
        if steps is None:
            steps = self._steps = {}
        key = (kind, self._loss, self._optimizer, self._uses_logits())
        fn = steps.get(key)
        if fn is None:
            if kind == "train":
                def fn(xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
                    loss, out = self._loss_and_output(xb, yb)
                    loss.backward()
                    self._optimizer.step()
                    return loss, out
            elif kind == "test":
                fn = self._loss_and_output
            else:
                module = self.module

                def fn(xb: Tensor) -> Tensor:
                    return module(xb)
            if getattr(self, "_jit", True):
                fn = _compile(fn)
            steps[key] = fn
        return fn

    def _metric_values(self, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {m: losses.accuracy(pred, y, losses.accuracy_kind(m, self._loss, pred.shape[-1]))
                for m in self._metrics}

    def fit(self, x: Any, y: Any, batch_size: int | None = 32, epochs: int = 1,
            verbose: int = 1, callbacks: list[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple | None = None,
            shuffle: bool = True, initial_epoch: int = 0, nb_epoch: int | None = None
            ) -> History:
        """Train for ``epochs`` epochs of mini-batches; returns the :class:`History`.

        ``validation_split`` holds out the last fraction of the data (before shuffling, as
        Keras). ``verbose``: 0 silent, 1 a tqdm progress bar per epoch (one line per epoch
        when standard output is not a terminal, e.g. piped to a file or a CI log), 2 one line
        per epoch.
        Shuffling draws from autograd's default generator (seed with ``manual_seed``).

        Under an initialised process group of several processes (:mod:`autograd.distributed`)
        training is data-parallel: rank 0's weights are broadcast, ``batch_size`` is the global
        batch, split across the ranks, gradients are averaged, logs are reduced over the ranks
        and only rank 0 prints (see :mod:`autograd.keras.parallel`).
        """
        if self._optimizer is None:
            raise RuntimeError("fit: call compile(optimizer=..., loss=...) first")
        epochs = nb_epoch if nb_epoch is not None else epochs  # Keras 1 spelling
        x, y = self._arrays(x, y)
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            split = int(len(x) * (1.0 - validation_split))
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            validation_data = self._arrays(*validation_data)
        self._optimizer.bind(self.module.parameters())
        ddp = None
        if _parallel.active():
            _parallel.check_same_data(x, y)
            ddp = _parallel.broadcast_weights(self.module)
        if ddp is None:
            loader = DataLoader(TensorDataset(x, y), batch_size=batch_size or 32,
                                shuffle=shuffle)
        else:
            loader = _parallel.ShardedBatches(x, y, batch_size or 32, shuffle)
        history = History()
        cbs = [history] + list(callbacks or [])
        try:
            for cb in cbs:
                cb.set_model(self)
                cb.params = {"epochs": epochs, "steps": len(loader), "verbose": verbose}
                cb.on_train_begin()
            self.stop_training = False
            for epoch in range(initial_epoch, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
                logs = self._train_epoch(loader, epoch, epochs, verbose, validation_data, ddp)
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            for cb in cbs:
                cb.on_train_end()
        finally:
            if ddp is not None:
                ddp.remove_hooks()
        self.history = history
        return history

    def _train_epoch(self, loader: Any, epoch: int, epochs: int, verbose: int,
                     validation_data: tuple | None, ddp: Any = None) -> dict[str, float]:
        self.module.train()
        printing = ddp is None or _parallel.is_rank0()
        # Decided from the argument, which every rank has alike (its terminal may differ).
        reduce_each_step = ddp is not None and verbose == 1
        # A progress bar only on a terminal: piped to a file or a CI log, tqdm's redraws would
        # land as several copies of the bar, so verbose=1 prints verbose=2's one line instead.
        if verbose == 1 and not _stdout_is_terminal():
            verbose = 2
        bar = tqdm(total=len(loader), desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=verbose != 1 or not printing, file=sys.stdout, leave=True,
                   dynamic_ncols=True)
        total, seen, preds, targets = 0.0, 0, [], []
        for batch in loader:
            xb, yb = batch[0], batch[1]
            if ddp is None:
                loss, out = self._step("train")(xb, yb)
                pred = self._probabilities(out) if self._metrics else None
            elif len(xb):
                loss, pred = self._forward_loss(xb, yb)
                (loss * batch[2]).backward()  # weighted: the average is the global mean's
            else:  # no sample of this global batch falls to this rank
                loss = None
                ddp.join_without_data()
            if ddp is not None:
                self._optimizer.step()
            if loss is not None:
                total += loss.item() * len(xb)
                seen += len(xb)
                if self._metrics:
                    preds.append(pred)
                    targets.append(yb.numpy())
            shown = total / max(seen, 1)
            if reduce_each_step:
                total_all, seen_all = _parallel.reduce_sums([total, seen])
                shown = total_all / max(seen_all, 1)
            bar.update(1)
            bar.set_postfix(loss=f"{shown:.4f}", refresh=False)
        logs = self._epoch_logs(total, seen, preds, targets, ddp is not None)
        if validation_data is not None:
            values = self._evaluate_arrays(*validation_data, batch_size=loader.batch_size)
            logs.update({"val_" + k: v for k, v in values.items()})
        bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=True)
        bar.close()
        if verbose == 2 and printing:
            print(f"Epoch {epoch + 1}/{epochs} - " + _format(logs))
        return logs

    def _epoch_logs(self, total: float, seen: int, preds: list, targets: list,
                    parallel: bool) -> dict[str, float]:
        """Mean loss and metrics over the samples seen (by every rank, when parallel)."""
        metrics = {}
        if self._metrics and preds:
            metrics = self._metric_values(np.concatenate(preds), np.concatenate(targets))
        if parallel:  # metrics are means over samples: reduce them weighted by the count
            names = list(self._metrics)
            sums = _parallel.reduce_sums([total, seen] +
                                         [metrics.get(m, 0.0) * seen for m in names])
            total, seen = sums[0], sums[1]
            metrics = {m: v / max(seen, 1) for m, v in zip(names, sums[2:])}
        logs = {"loss": total / max(seen, 1)}
        logs.update(metrics)
        return logs

    # ------------------------------------------------------------------ inference
    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int
                         ) -> dict[str, float]:
        parallel = _parallel.active()
        if parallel:  # each rank evaluates its share of the rows; the sums are reduced
            mine = _parallel.shard_of(np.arange(len(x)))
            x, y = x[mine], y[mine]
        self.module.eval()
        total, preds = 0.0, []
        with no_grad():
            if len(x):
                step = self._step("test")
                for xb, yb in DataLoader(TensorDataset(x, y), batch_size=batch_size):
                    loss, out = step(xb, yb)
                    total += loss.item() * len(xb)
                    preds.append(self._probabilities(out))
        self.module.train()
        return self._epoch_logs(total, len(x), preds, [y] if preds else [], parallel)

    def evaluate(self, x: Any, y: Any, batch_size: int | None = 32, verbose: int = 1
                 ) -> float | list[float]:
        """The loss (and metrics) on ``x``, ``y`` with dropout off: a float without metrics,
        else ``[loss, metric, ...]`` as Keras."""
        if self._loss is None:
            raise RuntimeError("evaluate: call compile first")
        x, y = self._arrays(x, y)
        values = self._evaluate_arrays(x, y, batch_size or 32)
        if verbose and (not _parallel.active() or _parallel.is_rank0()):
            print(f"{len(x)}/{len(x)} - " + _format(values))
        return values["loss"] if not self._metrics else list(values.values())

    def predict(self, x: Any, batch_size: int | None = 32, verbose: int = 0) -> np.ndarray:
        """The model's outputs for ``x`` (dropout off) as a NumPy array."""
        x, _ = self._arrays(x)
        self.module.eval()
        with no_grad():
            step = self._step("predict")
            outs = [step(xb).numpy() for (xb,) in
                    DataLoader(TensorDataset(x), batch_size=batch_size or 32)]
        self.module.train()
        return np.concatenate(outs) if outs else np.zeros((0, self.layers[-1].output_dim))

    predict_proba = predict

    def predict_classes(self, x: Any, batch_size: int | None = 32, verbose: int = 0
                        ) -> np.ndarray:
        """Class predictions: (p > 0.5) as int32 of shape (n, 1) for one output, else the
        argmax of each row (as Keras 2's ``predict_classes``)."""
        p = self.predict(x, batch_size)
        if p.shape[-1] == 1:
            return (p > 0.5).astype(np.int32)
        return p.argmax(axis=-1)

    # ------------------------------------------------------------------ inspection
    def count_params(self) -> int:
        """The number of scalar weights."""
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, line_length: int = 65, print_fn: Any = None) -> None:
        """Print each layer's name (type), output shape and parameter count, then totals."""
        self._require_built("summary")
        emit = print_fn or print
        cols = [int(line_length * f) for f in (0.45, 0.85, 1.0)]

        def row(*fields: str) -> str:
            line = ""
            for text, stop in zip(fields, cols):
                line = (line + text)[:stop].ljust(stop)
            return line.rstrip()

        emit(f'Model: "{self.name}"')
        emit("_" * line_length)
        emit(row("Layer (type)", "Output Shape", "Param #"))
        emit("=" * line_length)
        for i, layer in enumerate(self.layers):
            emit(row(f"{layer.name} ({type(layer).__name__})", f"(None, {layer.output_dim})",
                     str(layer.count_params())))
            emit(("=" if i == len(self.layers) - 1 else "_") * line_length)
        total = self.count_params()
        trainable = sum(int(p.size) for p in self.module.parameters() if p.requires_grad)
        emit(f"Total params: {total:,}")
        emit(f"Trainable params: {trainable:,}")
        emit(f"Non-trainable params: {total - trainable:,}")
        emit("_" * line_length)

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights in order, in Keras's layout (kernels are (in, out))."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set the weights from a list like :meth:`get_weights` returns."""
        weights = list(weights)
        need = sum(len(layer.get_weights()) for layer in self.layers)
        if len(weights) != need:
            raise ValueError(f"set_weights: the model has {need} weight arrays, got "
                             f"{len(weights)}")
        for layer in self.layers:
            n = len(layer.get_weights())
            layer.set_weights(weights[:n])
            weights = weights[n:]

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """The architecture as Keras's config dict."""
        return {"name": self.name, "layers": [{"class_name": type(layer).__name__,
                                               "config": layer.get_config()}
                                              for layer in self.layers]}

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as Keras JSON (no weights), which Keras 3's
        ``keras.models.model_from_json`` reads as well as ours: each entry names its Keras
        module, and the first layer carries its input width as ``input_shape``."""
        config = self.get_config()
        layers = []
        for spec in config["layers"]:
            cfg = dict(spec["config"])
            if "batch_input_shape" in cfg:
                cfg["input_shape"] = cfg.pop("batch_input_shape")[1:]
            layers.append({"module": "keras.layers", **spec, "config": cfg})
        return json.dumps({"module": "keras", "class_name": "Sequential",
                           "config": {**config, "layers": layers}, "backend": "autograd"},
                          **kwargs)

    def save_weights(self, filepath: Any) -> None:
        """Write the weights: a safetensors file (with the architecture JSON in its
        metadata), or, for a ``.h5`` / ``.hdf5`` / ``.weights.h5`` name, Keras's own HDF5
        file (needs h5py), which Keras loads into the same architecture. In data-parallel
        training only rank 0 writes (every rank holds the same weights)."""
        self._require_built("save_weights")
        if _parallel.active() and not _parallel.is_rank0():
            return
        if hdf5.is_hdf5(filepath):
            hdf5.save_weights(self, filepath)
            return
        serialization.save(self.module.state_dict(), filepath,
                           metadata={"keras_model": self.to_json()})

    def load_weights(self, filepath: Any) -> None:
        """Read weights written by :meth:`save_weights` (or by Keras, for a .h5 name) into
        this (same-shaped) model."""
        self._require_built("load_weights")
        if hdf5.is_hdf5(filepath):
            hdf5.load_weights(self, filepath)
            return
        state = serialization.load(filepath)
        if not isinstance(state, dict) or not all(isinstance(v, np.ndarray)
                                                  for v in state.values()):
            raise ValueError(f"load_weights: {filepath} does not hold a weights file")
        try:
            self.module.load_state_dict(state)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"load_weights: {filepath} does not fit this model: "
                             f"{exc}") from None

    def save(self, filepath: Any) -> None:
        """Architecture and weights in one file; read it back with :func:`load_model` (a
        ``.h5`` name gives Keras's HDF5 model file, which ``keras.models.load_model`` reads).
        """
        if hdf5.is_hdf5(filepath):
            self._require_built("save")
            if not _parallel.active() or _parallel.is_rank0():
                hdf5.save_model(self, filepath)
            return
        self.save_weights(filepath)


def _stdout_is_terminal() -> bool:
    """Whether a redrawn progress bar reads well: a terminal, or a Jupyter kernel (whose
    output widget redraws in place although it is not a tty), as Keras's own Progbar decides."""
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return "ipykernel" in sys.modules


def _format(values: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in values.items())


_LAYERS: dict[str, type] = {"Dense": Dense, "Activation": Activation, "Dropout": Dropout}


def _from_spec(spec: ModelSpec, source: str) -> Sequential:
    model = Sequential(name=spec.name)
    width = None
    for layer in spec.layers:
        try:  # checked already; this only guards a layer rule the checker does not know
            built = _LAYERS[layer.class_name](**layer.kwargs)
            if width is not None:
                built.build(width)
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(layer.path, str(exc), source) from None
        model.layers.append(built)  # as add() does, but one _sync for all: linear, not n**2
        width = built.output_dim
    model._sync()
    return model


def model_from_json(json_string: str, custom_objects: Any = None, *,
                    max_params: int = DEFAULT_MAX_PARAMS) -> Sequential:
    """Rebuild a Sequential model (new random weights) from :meth:`Sequential.to_json`.

    Only Dense, Activation and Dropout layers are read; anything else is refused. The whole
    configuration is checked before a layer is built: types, ranges, nesting depth and the
    total number of weights, at most ``max_params`` (default 10 million; raise it for larger
    models). Any problem raises :class:`~autograd.keras.config.ModelConfigError` (a
    ValueError) naming the place in the JSON, e.g. ``$.config.layers[0].config.units``.
    ``custom_objects`` is accepted for Keras compatibility and must be empty: no code is ever
    looked up by a name read from the JSON.
    """
    if custom_objects:
        raise ValueError("model_from_json: custom_objects are not supported (only Dense, "
                         "Activation and Dropout layers)")
    return _from_spec(parse_model_json(json_string, max_params), "model_from_json")


def load_model(filepath: Any, *, max_params: int = DEFAULT_MAX_PARAMS) -> Sequential:
    """A model saved with :meth:`Sequential.save`: architecture, then weights.

    The architecture is checked as in :func:`model_from_json` (errors name the file and the
    place in its JSON); ``max_params`` caps the weights it may allocate. A Keras HDF5 file
    (``.h5``, needs h5py) is read the same way.
    """
    if hdf5.is_hdf5(filepath):
        source = f"load_model: {filepath} (HDF5 attribute 'model_config')"
        model = _from_spec(parse_model_json(hdf5.read_model_config(filepath), max_params,
                                            source), source)
        model.load_weights(filepath)
        return model
    meta = serialization.load_metadata(filepath)
    if "keras_model" not in meta:
        raise ValueError(f"load_model: {filepath} has no model architecture in its metadata")
    source = f"load_model: {filepath} (metadata 'keras_model')"
    model = _from_spec(parse_model_json(meta["keras_model"], max_params, source), source)
    model.load_weights(filepath)
    return model
