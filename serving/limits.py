"""The upload rules: shared with the intake API, they live in spira_core.uploads."""

from spira_core import audio as A
from spira_core.uploads import (
    BODY_COPIES,
    AudioHeader,
    DecodedUpload,
    Rejected,
    UploadLimits,
    check_header,
    check_size,
    decode_upload,
)

__all__ = [
    "BODY_COPIES",
    "A",
    "AudioHeader",
    "DecodedUpload",
    "Rejected",
    "UploadLimits",
    "check_header",
    "check_size",
    "decode_upload",
]
