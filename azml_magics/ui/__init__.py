"""The notebook UI: widget forms, the live job view, the chat box.

Imported only when a magic needs it (``%%azml_finetune --form``, a job view, ``%azml_chat``), so
``import azml_magics`` stays light. The UI reads the dataclasses in
:mod:`azml_magics.backends.base` and calls :class:`azml_magics.api.Session`; it never imports a
backend.
"""

from __future__ import annotations
