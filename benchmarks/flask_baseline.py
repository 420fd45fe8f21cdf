"""The baseline server: the eager model behind a one-process Flask app, as the public blueprint serves it.

    python -m benchmarks.flask_baseline --port 5057 [--core 0]

One process, one request at a time (Flask's development server, threaded=False), reference MFCC and the eager
PyTorch module with one torch thread. Listens on 127.0.0.1 only. POST /predict with the WAV in the multipart
field "audio" answers {"probability": p}; GET /health answers 200 once the model is loaded.
"""

from __future__ import annotations

import argparse


def create_app(model, params):
    from flask import Flask, jsonify, request

    from benchmarks.pipelines import reference_pipeline

    run = reference_pipeline(model, params)
    app = Flask("spira-eager-baseline")

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.post("/predict")
    def predict():
        data = request.files["audio"].read()
        return jsonify({"probability": run(data)})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--core", type=int, default=None, help="pin to this core (default: the last one)")
    args = parser.parse_args(argv)
    from benchmarks.common import eager_model, pin_to_one_core
    from spira_core.params import FeatureParams

    pin_to_one_core(args.core)
    create_app(eager_model(), FeatureParams()).run(
        host="127.0.0.1", port=args.port, threaded=False, use_reloader=False
    )


if __name__ == "__main__":
    main()
