# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""What every training objective shares: a random generator of its own per process, and its checkpointed state."""

import torch

from ..metrics import LN2


class SeededObjective:
    """
    Base of the objectives of [`train_loop`]: each process draws from its own `torch.Generator` on the accelerator's
    device, seeded with `seed + process_index` in `setup`, and checkpointed with `state_dict`, so a resumed run
    continues the same draws. Subclasses implement `__call__(model, batch, accelerator) -> (loss, logs)` and extend
    `state_dict` / `load_state_dict` with their own state.
    """

    def __init__(self, seed: int = 0, bits_name: str = "bpc"):
        self.seed = seed
        self.bits_name = bits_name
        self.generator = torch.Generator().manual_seed(seed)

    def setup(self, accelerator) -> None:
        self.generator = torch.Generator(device=accelerator.device).manual_seed(self.seed + accelerator.process_index)

    def logs(self, nats: torch.Tensor, batch, **extra) -> dict:
        """The logs of a step: the bound in nats per token (`loss`) and in bits per unit (`bits_name`), and any
        `extra` values. With subword tokens the batch says how many characters its rows cover (`num_characters`),
        and the bits are per character."""
        nats = nats.detach()
        bits = nats / LN2
        if "num_characters" in batch:
            bits = bits * batch["input_ids"].numel() / batch["num_characters"].sum()
        return {"loss": nats, self.bits_name: bits, **extra}

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

