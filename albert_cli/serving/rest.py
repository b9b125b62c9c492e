"""TensorFlow Serving's REST API in JSON: the predict request, its answer, model status and metadata, errors.

The reference is tensorflow/serving ``g3doc/api_rest.md``. Nothing here knows HTTP: `app` reads the body, calls
`parse_predict`, hands the texts to the model and formats its outputs with `predictions` / `outputs`.

The ``serving_default`` signature of an albert-cli SavedModel takes ``text`` (and ``text_pair`` for pair models),
strings of shape ``[-1]``, and returns the outputs of ``albert_cli.inference.base.serving_outputs``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

import numpy as np

from albert_cli.artifacts.modeldir import ModelMeta

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# /v1/models/{name}[/versions/{version}][/metadata | :predict | :classify | :regress]
MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<what>/metadata|:[A-Za-z]+)?$"
)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with HTTP `status` (TensorFlow Serving's error body)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, " ".join(str(message).split())


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


@dataclass(frozen=True)
class Target:
    """What a ``/v1/models/...`` path asks for: a model, maybe a version, and ``status``, ``metadata`` or ``predict``."""

    name: str
    version: int | None
    what: str


def parse_path(path: str, method: str) -> Target:
    """The `Target` of a request path, or a 404/405 `ApiError`."""
    m = MODEL_PATH.match(path)
    if m is None:
        raise not_found(f"Malformed request: {method} {path}")
    version = None
    if m["version"] is not None:
        if not (m["version"].isdigit() and m["version"].isascii()):
            raise not_found(f"Malformed request: {method} {path} (a version is a number)")
        version = int(m["version"])
    what = m["what"] or ""
    if what in ("", "/metadata"):
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"Malformed request: {method} {path} (use GET)")
        return Target(m["name"], version, "metadata" if what else "status")
    if what == ":predict":
        if method != "POST":
            raise ApiError(405, f"Malformed request: {method} {path} (use POST)")
        return Target(m["name"], version, "predict")
    if what in (":classify", ":regress"):
        raise bad_request(f"{what[1:]}: the model's signature is a predict signature ({PREDICT_METHOD}); use :predict")
    raise not_found(f"Malformed request: {method} {path}")


# ----- the predict request -----


def _text(value, where: str) -> str:
    """A text of the request: a JSON string or ``{"b64": ...}`` (UTF-8), not empty."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            value = base64.b64decode(value["b64"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise bad_request(f"{where}: 'b64' is not base64 of UTF-8 text") from None
    if not isinstance(value, str):
        raise bad_request(f"{where}: expected a string, got {_json_kind(value)}")
    if not value.strip():
        raise bad_request(f"{where}: empty text")
    if "\x00" in value:
        raise bad_request(f"{where}: text contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but no text
        raise bad_request(f"{where}: text is not valid Unicode (a lone surrogate)") from None
    return value


def _json_kind(value) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def _input_names(meta: ModelMeta) -> tuple[str, ...]:
    return ("text", "text_pair") if meta.pair else ("text",)


def _is_named(value) -> bool:
    """An object of named inputs (``{"text": ...}``), not one ``{"b64": ...}`` string."""
    return isinstance(value, dict) and set(value) != {"b64"}


def _check_names(value: dict, names: tuple[str, ...], where: str) -> None:
    """A 400 `ApiError` unless the object `value` has exactly the model's inputs `names`."""
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise bad_request(f"{where}: unknown input '{unknown[0]}' (this model's inputs: {', '.join(names)})")
    missing = [n for n in names if n not in value]
    if missing:
        raise bad_request(f"{where}: missing input '{missing[0]}'")


def _instance(value, index: int, names: tuple[str, ...]) -> tuple[str, str | None]:
    where = f"instances[{index}]"
    if _is_named(value):
        _check_names(value, names, where)
        return _text(value["text"], f"{where}.text"), (
            _text(value["text_pair"], f"{where}.text_pair") if len(names) > 1 else None
        )
    if len(names) > 1:
        raise bad_request(f"{where}: a pair model takes objects {{\"text\": ..., \"text_pair\": ...}}")
    return _text(value, where), None


def _instances(values, names) -> tuple[list[str], list[str] | None]:
    if not isinstance(values, list):
        raise bad_request(f"'instances' must be a list, got {_json_kind(values)}")
    if not values:
        raise bad_request("'instances' is empty")
    rows = [_instance(v, i, names) for i, v in enumerate(values)]
    return [t for t, _ in rows], ([p for _, p in rows] if len(names) > 1 else None)


def _column(values, where: str) -> list[str]:
    if not isinstance(values, list):
        raise bad_request(f"{where} must be a list of strings, got {_json_kind(values)}")
    if not values:
        raise bad_request(f"{where} is empty")
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(values)]


def _inputs(values, names) -> tuple[list[str], list[str] | None]:
    if _is_named(values):
        _check_names(values, names, "'inputs'")
        cols = [_column(values[n], f"'inputs'.{n}") for n in names]
        if len(cols) > 1 and len(cols[0]) != len(cols[1]):
            raise bad_request(f"'inputs': text has {len(cols[0])} entries, text_pair {len(cols[1])}")
        return cols[0], (cols[1] if len(cols) > 1 else None)
    if len(names) > 1:
        raise bad_request("'inputs': a pair model takes {\"text\": [...], \"text_pair\": [...]}")
    if not isinstance(values, list):  # one named input may be given as its value alone
        values = [values]
    return _column(values, "'inputs'"), None


@dataclass(frozen=True)
class PredictRequest:
    """A parsed predict request: the texts (and pairs) and whether the answer is in row format."""

    texts: list[str]
    pairs: list[str] | None
    rows: bool


def parse_predict(body: bytes, meta: ModelMeta) -> PredictRequest:
    """The texts of a ``:predict`` body for a model with metadata `meta`, or a 400 `ApiError` saying what is wrong."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"JSON Parse error: {exc}") from None
    if not isinstance(request, dict):
        raise bad_request(f"the request must be a JSON object, got {_json_kind(request)}")
    signature = request.get("signature_name", SIGNATURE)
    if signature not in (SIGNATURE, ""):
        raise bad_request(f'Serving signature name: "{signature}" not found in signature def')
    has_rows, has_cols = "instances" in request, "inputs" in request
    if has_rows and has_cols:
        raise bad_request("Not both of 'instances' and 'inputs' can be specified")
    if not (has_rows or has_cols):
        raise bad_request("Missing 'inputs' or 'instances' key")
    names = _input_names(meta)
    texts, pairs = _instances(request["instances"], names) if has_rows else _inputs(request["inputs"], names)
    return PredictRequest(texts, pairs, rows=has_rows)


# ----- the answer -----


def _jsonable(array: np.ndarray) -> list:
    if array.dtype == object or array.dtype.kind == "S":
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.tolist()]
    return array.tolist()


def output_order(meta: ModelMeta) -> tuple[str, ...]:
    """The ``serving_default`` outputs of a model, in the order they are written."""
    if meta.task == "regression":
        return ("value",)
    if meta.task == "multi_label":
        return ("label", "score", "probabilities", "predicted")
    return ("label", "score", "probabilities")


def answer(outputs: dict[str, np.ndarray], meta: ModelMeta, rows: bool) -> dict:
    """``{"predictions": [...]}`` (row format) or ``{"outputs": ...}`` (column format) of a predict request.

    As TensorFlow Serving does, a signature with one output gives its values bare (regression: numbers).
    """
    names = output_order(meta)
    cols = {name: _jsonable(outputs[name]) for name in names}
    if len(names) == 1:
        values = cols[names[0]]
        return {"predictions": values} if rows else {"outputs": values}
    if not rows:
        return {"outputs": cols}
    n = len(cols[names[0]])
    return {"predictions": [{name: cols[name][i] for name in names} for i in range(n)]}


# ----- status and metadata -----


def version_status(versions: list[tuple[int, str, str]]) -> dict:
    """``GetModelStatus``'s answer from (version, state, error message) triples."""
    return {
        "model_version_status": [
            {"version": str(v), "state": state,
             "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}
            for v, state, error in versions
        ]
    }


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict:
    return {
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
        "name": name,
    }


def signature_def(meta: ModelMeta) -> dict:
    """The ``serving_default`` SignatureDef as TensorFlow Serving's metadata API writes it."""
    inputs = {name: _tensor_info(f"{SIGNATURE}_{name}:0", "DT_STRING", [-1]) for name in _input_names(meta)}
    n = len(meta.labels or [])
    shapes = {
        "label": ("DT_STRING", [-1]), "score": ("DT_FLOAT", [-1]), "probabilities": ("DT_FLOAT", [-1, n]),
        "predicted": ("DT_INT32", [-1, n]), "value": ("DT_FLOAT", [-1]),
    }
    outputs = {
        name: _tensor_info(f"StatefulPartitionedCall:{i}", *shapes[name])
        for i, name in enumerate(sorted(output_order(meta)))
    }
    return {"inputs": inputs, "outputs": outputs, "method_name": PREDICT_METHOD, "defaults": {}}


def metadata(name: str, version: int, meta: ModelMeta) -> dict:
    """``GetModelMetadata``'s answer: the model spec and its signature_def map."""
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature_def(meta)}}},
    }


def error_body(message: str) -> dict:
    return {"error": message}
