"""Training beyond the first head: the hyperparameter searches, the end-to-end recipes and
the choice of the model to keep (notebook 04), every attribute at once (notebook 06)."""
