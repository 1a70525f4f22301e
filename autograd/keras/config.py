"""Checking a Keras model configuration (the JSON of ``to_json``) before anything is built.

:func:`model_from_json` and :func:`load_model` read text that may come from anywhere. Every
value is checked here for its type and range, the nesting depth is capped, and the total number
of weights the model would allocate is computed and held under a cap the caller can raise, so a
few hundred bytes of JSON cannot ask for gigabytes. Every problem raises
:class:`ModelConfigError`, whose message names the place in the JSON (``$.config.layers[1]
.config.units``) and the reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .layers import _INIT_CLASSES, ACTIVATIONS, INITIALIZERS

__all__ = ["DEFAULT_MAX_PARAMS", "MAX_DEPTH", "MAX_LAYERS", "ModelConfigError", "parse_model_json"]

DEFAULT_MAX_PARAMS = 10_000_000  # 40 MB of float32 weights; raise with max_params=
MAX_DEPTH = 16  # a Keras Sequential config nests 5 levels; anything deeper is not one
MAX_LAYERS = 10_000
_MAX_DIM = 2**31 - 1
_MAX_NAME = 256


class ModelConfigError(ValueError):
    """A Keras model configuration is malformed, unsupported or too large.

    ``path`` is the place in the JSON (``"$"`` is the whole document, ``"$.config.layers[0]
    .config.units"`` one value); ``reason`` says what is wrong there. A ValueError, so code that
    caught ValueError from ``model_from_json`` keeps working.
    """

    def __init__(self, path: str, reason: str, source: str = "model_from_json") -> None:
        self.path, self.reason, self.source = path, reason, source
        super().__init__(f"{source}: {path}: {reason}")


@dataclass
class LayerSpec:
    """One checked layer: its class name, constructor arguments and place in the JSON."""
    class_name: str
    kwargs: dict[str, Any]
    path: str


@dataclass
class ModelSpec:
    """A checked Sequential configuration and the number of weights it allocates (counting
    only the bias of a first Dense whose input width is left to the first batch)."""
    name: str | None
    layers: list[LayerSpec]
    params: int


# Keras config keys accepted only with their default (harmless) values.
_IGNORED = {"trainable": True, "dtype": "float32", "bias_initializer": None,
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, "noise_shape": None,
            "seed": None}
_COMMON = {"name", "batch_input_shape", "input_shape", "input_dim"}
_KEYS = {"Dense": _COMMON | {"units", "activation", "use_bias", "kernel_initializer"},
         "Activation": _COMMON | {"activation"},
         "Dropout": _COMMON | {"rate"}}
_REQUIRED = {"Dense": {"units"}, "Activation": {"activation"}, "Dropout": {"rate"}}


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _show(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (dict, list)) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, reason: str) -> ModelConfigError:
        return ModelConfigError(path, reason, self.source)

    def obj(self, v: Any, path: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(path, f"must be a JSON object, got {_show(v)}")
        return v

    def pos_int(self, v: Any, path: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _MAX_DIM:
            raise self.fail(path, f"must be an integer in [1, {_MAX_DIM}], got {_show(v)}")
        return v

    def width(self, cfg: dict, path: str) -> int | None:
        """The input width a layer declares (batch_input_shape, input_shape or input_dim)."""
        found = None
        if cfg.get("batch_input_shape") is not None:
            shape, p = cfg["batch_input_shape"], f"{path}.batch_input_shape"
            if not isinstance(shape, list) or len(shape) != 2 or shape[0] is not None:
                raise self.fail(p, f"must be [null, width] (flat inputs only), got "
                                   f"{_show(shape)}")
            found = self.pos_int(shape[1], f"{p}[1]")
        if cfg.get("input_shape") is not None:
            shape, p = cfg["input_shape"], f"{path}.input_shape"
            if not isinstance(shape, list) or len(shape) != 1:
                raise self.fail(p, f"must be [width] (flat inputs only), got {_show(shape)}")
            found = self._agree(found, self.pos_int(shape[0], f"{p}[0]"), p)
        if cfg.get("input_dim") is not None:
            p = f"{path}.input_dim"
            found = self._agree(found, self.pos_int(cfg["input_dim"], p), p)
        return found

    def _agree(self, a: int | None, b: int, path: str) -> int:
        if a is not None and a != b:
            raise self.fail(path, f"declares input width {b}, but the layer also declares {a}")
        return b

    def initializer(self, v: Any, path: str) -> str:
        if isinstance(v, dict):
            self.obj(v.get("config", {}), f"{path}.config")
            extra = sorted(set(v) - {"class_name", "config", "module", "registered_name"})
            if extra:
                raise self.fail(f"{path}.{extra[0]}", f"unexpected key {extra[0]!r}")
            name = v.get("class_name")
            name = _INIT_CLASSES.get(name, name) if isinstance(name, str) else name
            path = f"{path}.class_name"
        else:
            name = v
        if not isinstance(name, str) or name not in INITIALIZERS:
            raise self.fail(path, f"unknown kernel_initializer {_show(name)}; supported: "
                                  f"{sorted(INITIALIZERS)} (or their Keras class names)")
        return name

    def layer(self, spec: Any, path: str) -> tuple[LayerSpec, int | None]:
        spec = self.obj(spec, path)
        kind = spec.get("class_name")
        if not isinstance(kind, str) or kind not in _KEYS:
            raise self.fail(f"{path}.class_name", f"unsupported layer {_show(kind)}; "
                                                  f"supported: {sorted(_KEYS)}")
        cfg = self.obj(spec.get("config", {}), f"{path}.config")
        path = f"{path}.config"
        for key, default in _IGNORED.items():
            if key not in cfg or cfg[key] is None or cfg[key] == default:
                continue
            if key == "bias_initializer" and cfg[key] in ("zeros", {"class_name": "Zeros",
                                                                    "config": {}}):
                continue
            raise self.fail(f"{path}.{key}", f"{key}={_show(cfg[key])} is not supported "
                                             f"(only {default!r})")
        unknown = sorted(k for k in cfg if k not in _KEYS[kind] and k not in _IGNORED)
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}", f"bad config for {kind}: unknown key "
                                                    f"{unknown[0]!r}")
        missing = sorted(_REQUIRED[kind] - set(cfg))
        if missing:
            raise self.fail(path, f"bad config for {kind}: missing {missing[0]!r}")
        kwargs: dict[str, Any] = {}
        name = cfg.get("name")
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME:
                raise self.fail(f"{path}.name", f"must be a string of 1 to {_MAX_NAME} "
                                                f"characters, got {_show(name)}")
            kwargs["name"] = name
        width = self.width(cfg, path)
        if width is not None:
            kwargs["input_dim"] = width
        if "activation" in cfg:
            act = cfg["activation"]
            if act is not None and (not isinstance(act, str) or act not in ACTIVATIONS):
                raise self.fail(f"{path}.activation", f"unknown activation {_show(act)}; "
                                                      f"supported: {sorted(ACTIVATIONS)}")
            if kind == "Activation" and act is None:
                raise self.fail(f"{path}.activation", "must name an activation, got null")
            kwargs["activation"] = act
        if kind == "Dense":
            kwargs["units"] = self.pos_int(cfg["units"], f"{path}.units")
            if "use_bias" in cfg:
                if not isinstance(cfg["use_bias"], bool):
                    raise self.fail(f"{path}.use_bias", f"must be true or false, got "
                                                        f"{_show(cfg['use_bias'])}")
                kwargs["use_bias"] = cfg["use_bias"]
            if "kernel_initializer" in cfg:
                kwargs["kernel_initializer"] = self.initializer(
                    cfg["kernel_initializer"], f"{path}.kernel_initializer")
        if kind == "Dropout":
            rate = cfg["rate"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                    or not math.isfinite(rate) or not 0.0 <= rate < 1.0:
                raise self.fail(f"{path}.rate", f"must be a number in [0, 1), got {_show(rate)}")
            kwargs["rate"] = float(rate)
        return LayerSpec(kind, kwargs, path), width

    def model(self, spec: Any, max_params: int) -> ModelSpec:
        spec = self.obj(spec, "$")
        if spec.get("class_name") != "Sequential":
            raise self.fail("$.class_name", f"only Sequential models are supported, got "
                                            f"{_show(spec.get('class_name'))}")
        config, path = spec.get("config"), "$.config"
        if isinstance(config, dict):
            name = config.get("name")
            if name is not None and (not isinstance(name, str) or len(name) > _MAX_NAME):
                raise self.fail("$.config.name", f"must be a string of at most {_MAX_NAME} "
                                                 f"characters, got {_show(name)}")
            config, path = config.get("layers"), "$.config.layers"
        else:
            name = None  # Keras 1 wrote the layer list as the config itself
        if not isinstance(config, list):
            raise self.fail(path, f"the config has no layer list (got {_show(config)})")
        if len(config) > MAX_LAYERS:
            raise self.fail(path, f"{len(config)} layers, over the limit of {MAX_LAYERS}")
        layers, params, width = [], 0, None
        for i, raw in enumerate(config):
            layer, declared = self.layer(raw, f"{path}[{i}]")
            if declared is not None and width is not None and declared != width:
                raise self.fail(f"{layer.path}.input_dim", f"declares input width {declared}, "
                                                           f"but the layer before outputs "
                                                           f"{width}")
            width = declared if declared is not None else width
            if layer.class_name == "Dense":
                units = layer.kwargs["units"]
                bias = units if layer.kwargs.get("use_bias", True) else 0
                params += (width or 0) * units + bias
                width = units
                if params > max_params:
                    raise self.fail(f"{layer.path}.units",
                                    f"the model would hold {params} weights by this layer, "
                                    f"over max_params={max_params} (raise it to build larger "
                                    f"models)")
            layers.append(layer)
        return ModelSpec(name, layers, params)


def parse_model_json(text: Any, max_params: int = DEFAULT_MAX_PARAMS,
                     source: str = "model_from_json") -> ModelSpec:
    """Parse and check a Keras Sequential configuration; raise :class:`ModelConfigError`.

    ``max_params`` caps the total number of weights the model would allocate; ``source`` is
    the prefix of error messages (the function, or the file the JSON came from).
    """
    if isinstance(max_params, bool) or not isinstance(max_params, int) or max_params < 0:
        raise ValueError(f"{source}: max_params must be a non-negative integer, got "
                         f"{max_params!r}")
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"{source}: expected the JSON text (str), got {type(text).__name__}")
    try:
        spec = json.loads(text)
    except RecursionError:
        raise ModelConfigError("$", f"nested more than {MAX_DEPTH} levels deep", source) \
            from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8 in bytes, an over-long integer
        raise ModelConfigError("$", f"not valid JSON ({exc})", source) from None
    if _depth(spec) > MAX_DEPTH:
        raise ModelConfigError("$", f"nested more than {MAX_DEPTH} levels deep", source)
    return _Checker(source).model(spec, max_params)
