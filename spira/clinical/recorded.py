"""The champion's recorded result on a holdout, from MLflow: what `spira gate clinical` compares a
candidate against without --baseline-url.

Training's publish stage logs every version's scores on the frozen holdout as `clinical/scores.json` in its
run; the champion is the version the alias `champion` names. A champion recorded on another holdout
version is refused (models are only compared on the same holdout); no champion at all means the floors
alone judge. MLflow is reached as the shell's MLflow user (`MLFLOW_TRACKING_URI`, and the username and
password variables, as `spira stack env` exports them).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from spira.clinical.gate import ScoringError
from spira_core.clinical.holdout import Holdout
from spira_core.clinical.verdict import Scores, scores_from_recorded
from training.stages.publish import CHAMPION, MODEL_NAME

SCORES_ARTIFACT = "clinical/scores.json"


def champion_recorded(holdout: Holdout, tracking_uri: str | None = None) -> Scores | None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ScoringError(
            "without --baseline-url the champion's recorded result is read from MLflow: "
            'set MLFLOW_TRACKING_URI (eval "$(spira stack env)")'
        )
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        try:
            champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = client.download_artifacts(champion.run_id, SCORES_ARTIFACT, tmp)
            except (MlflowException, OSError) as exc:
                raise ScoringError(
                    f"champion v{champion.version} has no recorded clinical result ({SCORES_ARTIFACT}): "
                    "pass --baseline-url"
                ) from exc
            doc = json.loads(Path(path).read_text())
    except MlflowException as exc:
        raise ScoringError(f"MLflow at {uri}: reading the champion failed: {exc}") from exc
    doc["model_version"] = champion.version
    try:
        return scores_from_recorded(holdout, doc, f"recorded (MLflow version {champion.version})")
    except ValueError as exc:
        raise ScoringError(f"champion v{champion.version}: {exc}; pass --baseline-url") from exc
