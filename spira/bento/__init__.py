"""The model's way into serving: import from MLflow, pin, build the Bento, serve and predict locally."""
