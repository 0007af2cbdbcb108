"""The search engine: space, model assembly, feature store, training and the Optuna study."""
