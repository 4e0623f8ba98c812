"""dlbench: sweep optimizers, learning rates and batch sizes; exact, resumable, fast."""

__version__ = "0.1.0"

# Bump when the on-disk layout of results/<sweep>/ changes; readers refuse newer versions and
# read older ones (dlbench.store.read_results).
#   1: the first layout.
#   2: a validation split (val_* history columns; validation, best_val_*, best_epoch,
#      test_*_at_best_val, final_train_* trial columns); stage (tune / confirm) and
#      fallback_reason per trial; spec.toml may hold [[grid]], [search] points and [protocol].
#   3: task, n_train, n_val and n_test per trial (the data it was measured on); trials.parquet's
#      configuration columns include every optimizer keyword a trial set.
#   4: spec.toml may hold [extensions] points (the values a range with `extend` grew by beyond
#      the edge the tuning stage chose), trained as tune-stage trials like the grid's own.
#   5: status `stopped` (successive halving stopped the trial at its rung) and the `rung` column;
#      a halving trial's `halving` field (part of its id; spec.toml's [search] kind = "halving");
#      [search] kind = "optuna" keeps Optuna's journal in optuna-journal.log beside the tables.
#   6: sequence datasets: the task language_model, the knob columns context, p and train_fraction,
#      bits per character (val_bpc, test_bpc history columns; best_val_bpc, test_bpc_at_best_val,
#      final_test_bpc, test_ppl_at_best_val trial columns); the model column reads every key of a
#      model table (cnn[16-32] hidden=64 relu, was cnn[16-32]).
SCHEMA_VERSION = 6
