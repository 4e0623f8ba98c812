"""Engines train trials. `reference` trains one trial the textbook way (the ground truth);
`fused` trains a group of trials as one stacked model and must match the reference.

This module imports no torch: the planner asks it what the fused engine supports."""

FUSED_MODELS = ("linear", "mlp", "cnn", "factory")
# A CPU cache budget, in parameters (1 MiB of float32): the planner keeps a fused unit's stacked
# weights near it, and the fused engine updates optimizer state in row blocks of about this size.
CPU_CACHE_PARAMETERS = 1 << 18


def fused_supports(trial: dict) -> str | None:
    """None when the fused engine can train this trial, else the reason it cannot."""
    if trial["model"]["kind"] not in FUSED_MODELS:
        return f"model kind {trial['model']['kind']!r} runs on the reference engine"
    if trial["device"] == "mps":
        return "mps runs on the reference engine"
    if trial["model"]["kind"] == "factory":
        from dlbench import plugins
        from dlbench.data import dataset_info

        why = plugins.model_fused_reason(trial["model"], dataset_info(trial["dataset"]))
        if why is not None:
            return f"model {trial['model']['factory']}: {why}"
    from dlbench.optim import OPTIMIZERS

    if trial["optimizer"] not in OPTIMIZERS:
        from dlbench import plugins

        if plugins.REGISTRY.describe_trial(trial).needs_closure:
            return (f"optimizer {trial['optimizer']} needs a closure (its step re-evaluates the loss), which the "
                    "reference engine passes to step()")
    return None


SLOWER_FUSED = ("on the CPU, max pooling under vmap (torch.func) measures slower than the reference engine's plain "
                "loop (benchmarks/fused_vs_loops.py --models); --engine fused trains it fused anyway")


def fused_slower(trial: dict) -> str | None:
    """Why --engine auto leaves a trial the fused engine could train to the reference engine: it
    measures faster there (a reason), or None. Only max-pooling models on the CPU, where vmap's
    batching rule for max pooling costs 17 times a plain call (measured on this project's CPU)."""
    if trial["device"] != "cpu":
        return None
    kind = trial["model"]["kind"]
    if kind == "cnn":
        return SLOWER_FUSED
    if kind == "factory":
        from dlbench import plugins
        from dlbench.data import dataset_info

        if plugins.model_max_pools(trial["model"], dataset_info(trial["dataset"])):
            return SLOWER_FUSED
    return None
