"""Engines train trials. `reference` trains one trial the textbook way (the ground truth);
`fused` trains a group of trials as one stacked model and must match the reference.

This module imports no torch: the planner asks it what the fused engine supports."""

FUSED_MODELS = ("linear", "mlp", "factory")
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

        if plugins.REGISTRY.for_trial(trial).needs_closure:
            return (f"optimizer {trial['optimizer']} needs a closure (its step re-evaluates the loss), which the "
                    "reference engine passes to step()")
    return None
