"""What ``%azml_models`` shows: one model's card, or the list of fine-tunable models with their state.

Kept out of magics.py so the card reads the same wherever it is drawn; takes any object with the
``ModelInfo`` fields (no backend import).
"""

from __future__ import annotations

from .display import Table

NOT_PUBLISHED = "not published by the registry"


def _sizes(sizes) -> str:
    return ", ".join(sizes) if sizes else NOT_PUBLISHED


def card(m) -> Table:
    """Every fact of one model, and which ones the registry did not publish."""
    rows = [["id", m.id], ["version", m.version], ["state", m.state], ["fine-tune tasks", ", ".join(m.tasks)],
            ["fine-tune VMs", _sizes(m.finetune_allow_list)], ["inference VMs", _sizes(m.inference_allow_list)],
            ["minimum SKU", m.min_sku or NOT_PUBLISHED],
            ["deployment options", ", ".join(m.deployment_options)],
            ["model defaults", ", ".join(f"{k}={v}" for k, v in m.model_defaults.items())]]
    notes = []
    if m.unpublished:
        notes.append("not published for this version: " + ", ".join(m.unpublished)
                     + " (a VM size is then not checked: the fine-tune says so)")
    notes += [f"could not read: {p}" for p in m.problems]
    if m.archived or m.deprecated:
        notes.append("this model cannot be fine-tuned; %azml_models lists the live ones.")
    return Table(["", ""], rows, title=m.name, notes=notes)


def listing(models, task: str) -> Table:
    """One row per model: state, allowed fine-tune and inference sizes, minimum SKU."""
    rows = [[m.name, m.version, m.state, _sizes(m.finetune_allow_list), _sizes(m.inference_allow_list),
             m.min_sku or NOT_PUBLISHED] for m in models]
    live = sum(1 for m in models if not (m.archived or m.deprecated))
    return Table(["model", "version", "state", "fine-tune VMs", "inference VMs", "minimum SKU"], rows,
                 title=f"Models for {task} fine-tuning", notes=[f"{live} of {len(models)} can be fine-tuned now."])
