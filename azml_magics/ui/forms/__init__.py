"""Widget forms for connect, fine-tune and deploy.

Each form edits the same object the magics read from YAML or options and checks it with the spec's
own reader; every error carries its key's path, so it is shown at that field (``base``). One module
per form: ``finetune``, ``connect``, ``deploy``.
"""

from .base import Field, Form, _parse_number
from .connect import ConnectForm, connect_form
from .deploy import DeployForm, deploy_form
from .finetune import FinetuneForm, finetune_form

__all__ = ["ConnectForm", "DeployForm", "Field", "FinetuneForm", "Form", "_parse_number", "connect_form",
           "deploy_form", "finetune_form"]
