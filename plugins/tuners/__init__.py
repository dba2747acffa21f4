"""Built-in λ tuners: choose the penalty weight on the validation rows."""
