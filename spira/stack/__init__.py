"""The local stack: real OpenBao, SeaweedFS, MLflow and a container registry on 127.0.0.1.

`LocalStack(StackConfig.load(home)).up()` starts (or reuses) every service and returns a `StackInfo`.
"""

from spira.stack.config import StackConfig
from spira.stack.errors import StackError
from spira.stack.info import StackInfo
from spira.stack.stack import LocalStack

__all__ = ["LocalStack", "StackConfig", "StackError", "StackInfo"]
