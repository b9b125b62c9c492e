"""ALBERT hyper-parameters: Google `albert_config.json` and HF `config.json`.

`AlbertConfig` holds every field of Google's `albert_config.json` plus
`layer_norm_eps`. Activation names follow Google's convention: `"gelu"` is
the tanh approximation used by the original TF1 code. HF's `"gelu"` is the
exact (erf) GELU, so HF configs are translated on the way in and out.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albert_cli.errors import ModelError

# Supported activation names -> the HF `hidden_act` name with the same function.
ACTIVATIONS: dict[str, str] = {
    "gelu": "gelu_new",  # tanh approximation (Google's original)
    "gelu_new": "gelu_new",
    "gelu_fast": "gelu_fast",
    "gelu_exact": "gelu",
    "relu": "relu",
}
TANH_GELUS = frozenset({"gelu", "gelu_new", "gelu_fast"})

# HF `hidden_act` -> our name (HF "gelu" is the exact erf GELU).
_HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_new": "gelu_new",
    "gelu_fast": "gelu_fast",
    "gelu_pytorch_tanh": "gelu_new",
    "relu": "relu",
}

# Fields that must keep their defaults: the corresponding Google research
# variants (down-scaling, memory blocks, ...) are not implemented.
_FIXED_FIELDS = {"down_scale_factor": 1, "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0}

_V2 = dict(
    vocab_size=30000,
    embedding_size=128,
    max_position_embeddings=512,
    type_vocab_size=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(_V2, embedding_size=64, hidden_size=128, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=512),
    "small": dict(_V2, hidden_size=312, num_hidden_layers=4,
                  num_attention_heads=12, intermediate_size=1248),
    "base": dict(_V2, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072),
    "large": dict(_V2, hidden_size=1024, num_hidden_layers=24,
                  num_attention_heads=16, intermediate_size=4096),
    "xlarge": dict(_V2, hidden_size=2048, num_hidden_layers=24,
                   num_attention_heads=32, intermediate_size=8192),
    "xxlarge": dict(_V2, hidden_size=4096, num_hidden_layers=12,
                    num_attention_heads=64, intermediate_size=16384),
}


@dataclass
class AlbertConfig:
    """Architecture of an ALBERT encoder (field names as in `albert_config.json`)."""

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    down_scale_factor: int = 1
    net_structure_type: int = 0
    gap_size: int = 0
    num_memory_blocks: int = 0

    # ------------------------------------------------------------------ dicts
    def to_dict(self) -> dict[str, Any]:
        """All fields, Google naming (loadable by `from_dict` and by Google's `modeling.py`,
        which knows the tanh GELU only as "gelu")."""
        data = dataclasses.asdict(self)
        if data["hidden_act"] in TANH_GELUS:
            data["hidden_act"] = "gelu"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AlbertConfig":
        """Build from a Google, HF or albert-cli config dict (auto-detected).

        HF configs are recognised by `model_type`; their `hidden_act` is
        translated (HF "gelu" = exact GELU). Keys that are not ALBERT
        architecture fields (e.g. HF `architectures`, `id2label`) are ignored.
        """
        if not isinstance(data, dict):
            raise ModelError(f"model config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        if "model_type" in data:
            if data["model_type"] != "albert":
                raise ModelError(f"config model_type is {data['model_type']!r}, expected 'albert'")
            act = data.get("hidden_act", "gelu_new")
            data["hidden_act"] = _HF_ACTIVATIONS.get(act, act)
        names = {f.name for f in dataclasses.fields(cls)}
        if "vocab_size" not in data:
            raise ModelError("model config has no vocab_size field (not an ALBERT config)")
        config = cls(**{k: v for k, v in data.items() if k in names})
        config.validate()
        return config

    def to_hf_dict(
        self,
        architectures: list[str] | None = None,
        classifier_dropout_prob: float = 0.1,
        **extra: Any,
    ) -> dict[str, Any]:
        """Content of an HF `config.json` (model_type "albert"); `extra` keys are merged in."""
        data = self.to_dict()
        for key in _FIXED_FIELDS:
            data.pop(key)
        data.update(
            model_type="albert",
            architectures=list(architectures or ["AlbertModel"]),
            hidden_act=ACTIVATIONS[self.hidden_act],
            classifier_dropout_prob=classifier_dropout_prob,
            position_embedding_type="absolute",
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        )
        data.update(extra)
        return data

    # ------------------------------------------------------------------ files
    def to_json(self, path: str | Path) -> None:
        """Write `to_dict()` as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> "AlbertConfig":
        """Read a Google `albert_config.json` or an HF `config.json`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot read config JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ModelError(f"{path}: invalid config: {exc}") from None
        except ModelError as exc:
            raise ModelError(f"{path}: {exc.message}") from None

    @classmethod
    def resolve(cls, name: str) -> "AlbertConfig":
        """`--config`: a preset name, else a JSON file (a preset name wins over a same-named directory)."""
        path = Path(name)
        if name in PRESETS and not path.is_file():
            return cls.preset(name)
        if path.suffix == ".json" or path.exists():
            return cls.from_json(path)
        return cls.preset(name)

    @classmethod
    def preset(cls, name: str) -> "AlbertConfig":
        """A published ALBERT v2 shape (`base` ... `xxlarge`) or `tiny` / `small`."""
        if name not in PRESETS:
            raise ModelError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**PRESETS[name])

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ModelError (one line) if the architecture is inconsistent."""
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                     "num_hidden_groups", "inner_group_num", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ModelError(f"invalid model config: {name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ModelError(f"invalid model config: {name} must be in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ModelError(f"invalid model config: layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if self.num_hidden_layers % self.num_hidden_groups:
            raise ModelError(
                f"invalid model config: num_hidden_layers ({self.num_hidden_layers}) is not divisible "
                f"by num_hidden_groups ({self.num_hidden_groups})"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ModelError(
                f"invalid model config: hidden_size ({self.hidden_size}) is not divisible "
                f"by num_attention_heads ({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ModelError(
                f"invalid model config: unknown hidden_act {self.hidden_act!r}; "
                f"supported: {', '.join(ACTIVATIONS)}"
            )
        for name, default in _FIXED_FIELDS.items():
            if getattr(self, name) != default:
                raise ModelError(
                    f"unsupported model config: {name}={getattr(self, name)!r} (only {default} is implemented)"
                )
