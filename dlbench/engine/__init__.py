"""Engines train trials. `reference` trains one trial the textbook way (the ground truth);
`fused` trains a group of trials as one stacked model and must match the reference.

This module imports no torch: the planner asks it what the fused engine supports, and it asks
the trial's records (dlbench.catalogue), never which kind made them."""

from dlbench import catalogue

# A CPU cache budget, in parameters (1 MiB of float32): the planner keeps a fused unit's stacked
# weights near it, and the fused engine updates optimizer state in row blocks of about this size.
CPU_CACHE_PARAMETERS = 1 << 18


def fused_supports(trial: dict) -> str | None:
    """None when the fused engine can train this trial, else the reason it cannot."""
    model = catalogue.model_of(trial)
    if model.fused_reason is not None:
        return model.fused_reason
    if trial["device"] == "mps":
        return "mps runs on the reference engine"
    opt = catalogue.optimizer_of(trial)
    if opt.needs_closure:
        return (f"optimizer {trial['optimizer']} needs a closure (its step re-evaluates the loss), which the "
                "reference engine passes to step()")
    if opt.second_order:
        return (f"optimizer {trial['optimizer']} needs second-order gradients (create_graph = true), which the "
                "stacked parameters of the fused engine do not carry to its step")
    return None


SLOWER_FUSED = ("on the CPU, max pooling under vmap (torch.func) measures slower than the reference engine's plain "
                "loop (benchmarks/fused_vs_loops.py --models); --engine fused trains it fused anyway")


def fused_slower(trial: dict) -> str | None:
    """Why --engine auto leaves a trial the fused engine could train to the reference engine: it
    measures faster there (a reason), or None. On the CPU only: models that max-pool (vmap's
    batching rule for max pooling costs 17 times a plain call), and what a model's record says
    (an LSTM, a gpt past the lesson size: benchmarks/sequence_models.py)."""
    if trial["device"] != "cpu":
        return None
    model = catalogue.model_of(trial)
    if model.max_pools:
        return SLOWER_FUSED
    if model.slower_fused_on_cpu:
        return model.slower_fused_on_cpu + "; --engine fused trains it fused anyway"
    return None
